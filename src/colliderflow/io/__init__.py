"""Readers and writers: simulation ROOT files, Parquet shards, TFDS shards, atomic file output."""

"""TFDS builds of any size without TensorFlow, with the same bytes in every process.

Two things TFDS (``tensorflow-datasets==4.9.10``) does not do on its own, both applied by `tfds_build`
for the duration of one build:

**The shuffle spill goes through plain files.**

TFDS (``tensorflow-datasets==4.9.10``) orders a split's records by an md5 hash of their keys. A split
whose serialized records stay under ``shuffle.MAX_MEM_BUFFER_SIZE`` (1 GB) is sorted in memory; a
larger one is spilled into 1000 bucket files by hash range, each sorted on its own. Those bucket files
are written and read through ``tf.io.gfile``, i.e. TensorFlow, which this project does not install: a
production-size dataset (a million PF events is ~10 GB) could not be built.

`tfds_build` swaps TFDS's bucket class for one that does the same with plain files, for the duration
of one build. Nothing else changes: buckets split the hash range in order (``get_bucket_number`` is
monotone in the hash), so reading the sorted buckets one after another gives the same global order as
the in-memory sort, and shard boundaries depend only on the record count and total size. A spilled
build therefore writes the same bytes as an in-memory one (tests/test_tfds.py builds both and compares
the files). The in-memory threshold is lowered to `SPILL_ABOVE_BYTES`, so that a build holds at most
that much serialized data (plus one bucket, 1/1000 of the split, while it is sorted).

**Records are serialized deterministically.** TFDS serializes each record as a ``tf.train.Example``,
whose features are a protobuf map; protobuf writes a map in an order that changes from process to
process, so the same dataset built twice gave array_record files with the same records but different
bytes. `tfds_build` serializes with ``deterministic=True`` (map entries sorted by feature name). Records
read back the same; only the bytes on disk changed once, when this was introduced.

This relies on TFDS's private ``shuffle._Bucket`` (add / flush / read_values / del_file, and the
``_hkey_to_bytes`` / ``_read_hkey`` record framing) and ``ExampleSerializer.get_tf_example``; `tfds_build` checks those are there and names the
pinned version if not.
"""

from __future__ import annotations

import errno
import os
import resource
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

SPILL_ABOVE_BYTES: Final = 256 << 20  # serialized bytes of one split kept in memory before spilling
_NEEDED: Final = ("_Bucket", "_hkey_to_bytes", "_read_hkey", "HKEY_SIZE_BYTES", "BUCKETS_NUMBER",
                  "MAX_MEM_BUFFER_SIZE")


def _bucket_class(shuffle: Any) -> type:
    """A `shuffle._Bucket` that writes and reads its file with open() instead of tf.io.gfile."""

    class LocalBucket(shuffle._Bucket):  # type: ignore[name-defined,misc]
        """One hash range of a split's records in a local file: (hkey 16 B, size 8 B, data) each."""

        def add(self, key: int, data: bytes) -> None:
            if not self._fobj:
                os.makedirs(os.path.dirname(self._path), exist_ok=True)
                try:
                    self._fobj = open(self._path, "wb")  # noqa: SIM115 - closed in flush()
                except OSError as exc:
                    if exc.errno == errno.EMFILE:
                        raise OSError(exc.errno, f"{self._path}: too many open files while spilling a TFDS "
                                      f"split into {shuffle.BUCKETS_NUMBER} buckets; raise `ulimit -n`") from exc
                    raise
            self._fobj.write(shuffle._hkey_to_bytes(key))
            self._fobj.write(struct.pack("=Q", len(data)))
            self._fobj.write(data)
            self._length += 1
            self._size += len(data)

        def flush(self) -> None:
            if self._fobj:
                self._fobj.close()
                self._fobj = None

        def read_values(self) -> Iterator[tuple[int, bytes]]:
            self.flush()
            if not os.path.exists(self._path):  # a bucket that got no record has no file
                return
            with open(self._path, "rb") as fobj:
                while True:
                    head = fobj.read(shuffle.HKEY_SIZE_BYTES)
                    if not head:
                        break
                    size = struct.unpack("=Q", fobj.read(8))[0]
                    data = fobj.read(size)
                    if len(data) != size:
                        raise OSError(f"{self._path}: spill file truncated (wanted {size} bytes, got {len(data)})")
                    yield shuffle._read_hkey(head), data

        def del_file(self) -> None:
            if os.path.exists(self._path):
                os.remove(self._path)

    return LocalBucket


def _serialize_deterministic(self: Any, example: Any) -> bytes:
    """ExampleSerializer.serialize_example with protobuf's deterministic (sorted map) serialization."""
    return self.get_tf_example(example).SerializeToString(deterministic=True)


@contextmanager
def tfds_build(spill_above_bytes: int | None = None) -> Iterator[None]:
    """Within the block, TFDS spills large splits to plain local files and serializes deterministically
    (module docstring); a split stays in memory up to `spill_above_bytes` (default `SPILL_ABOVE_BYTES`)."""
    from tensorflow_datasets.core import example_serializer, shuffle

    missing = [name for name in _NEEDED if not hasattr(shuffle, name)]
    if not hasattr(example_serializer.ExampleSerializer, "get_tf_example"):
        missing.append("example_serializer.ExampleSerializer.get_tf_example")
    if missing:
        raise RuntimeError(f"tensorflow_datasets.core.shuffle has no {', '.join(missing)}: colliderflow's "
                           "TensorFlow-free spill (colliderflow.io.tfds_build) is written for "
                           "tensorflow-datasets==4.9.10")
    saved = shuffle._Bucket, shuffle.MAX_MEM_BUFFER_SIZE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = soft + shuffle.BUCKETS_NUMBER + 64  # one open file per bucket while spilling
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
    serialize = example_serializer.ExampleSerializer.serialize_example
    example_serializer.ExampleSerializer.serialize_example = _serialize_deterministic
    shuffle._Bucket = _bucket_class(shuffle)
    shuffle.MAX_MEM_BUFFER_SIZE = min(saved[1], SPILL_ABOVE_BYTES if spill_above_bytes is None else spill_above_bytes)
    try:
        yield
    finally:
        shuffle._Bucket, shuffle.MAX_MEM_BUFFER_SIZE = saved
        example_serializer.ExampleSerializer.serialize_example = serialize
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

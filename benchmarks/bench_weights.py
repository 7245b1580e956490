"""How fast are the sampling weights compared with reading their input?

The weights stages should cost about what reading their few scalar columns costs; this measures both
and prints rows per second, median of several repeats:

* events: a synthetic event table (default 1M rows, three classes, 4 shards);
* jets: synthetic JetClass-II files (default 1M jets in files of 100k, two reweighted classes plus one
  that is not), reading jet_pt, jet_sdmass and jet_label against the per-jet weights of those columns.

    python benchmarks/bench_weights.py [--rows 1000000] [--jet-rows 1000000] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colliderflow.train.sampling import SampleKeys, read_sampling_weights
from colliderflow.io.parquet import read_event_columns, write_parquet_atomic
from colliderflow.train.jet_data import synthetic_jet_table
from colliderflow.jetschema import JETCLASS2_SCHEMA
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.weights import compute_weights_from_files, reweight_events
from colliderflow.weights.jet_files import compute_jet_weights_from_files, jet_weights, read_jet_columns

PARAMS = {
    "method": "flat",
    "class_column": "sample",
    "vars": {"n_elements": [0, 40, 60, 80, 100, 120, 140, 170, 200, 300], "genmet": [0, 5, 10, 20, 40, 80, 400]},
    "class_weights": {"ttbar": 1.0, "qq": 1.0, "ww": 1.0},
    "threshold": 0.1,
    "discard_under_overflow": False,
}
COLUMNS = ["n_elements", "genmet", "sample", "event_id"]
JET_PARAMS = {
    "method": "flat",
    "vars": {"jet_pt": [200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 1000, 1500],
             "jet_sdmass": [0, 20, 40, 60, 80, 100, 120, 150, 200, 300]},
    "class_weights": {"X_bb": 1.0, "QCD_light": 1.0},
    "threshold": 0.1,
    "discard_under_overflow": False,
}
JET_COLUMNS = ["jet_pt", "jet_sdmass", "jet_label"]


def synthetic_shards(directory: Path, rows: int, shards: int, seed: int = 7) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    per_shard = rows // shards
    for i, sample in zip(range(shards), ["ttbar", "qq", "ww"] * shards):
        scale = {"ttbar": 1.0, "qq": 0.6, "ww": 0.8}[sample]
        table = pa.table({
            "event_id": np.arange(per_shard, dtype=np.int64) + i * 2**32,
            "sample": pa.array([sample] * per_shard, pa.string()),
            "split": pa.array(rng.choice(["train", "val", "test"], per_shard, p=[0.7, 0.1, 0.2]), pa.string()),
            "n_elements": rng.poisson(150 * scale, per_shard).astype(np.int32),
            "genmet": rng.exponential(15 * scale, per_shard).astype(np.float32),
        })
        path = directory / f"{sample}_{i}.parquet"
        write_parquet_atomic(table, path)
        paths.append(path)
    return paths


def synthetic_jet_files(directory: Path, rows: int, per_file: int, seed: int = 7) -> list[Path]:
    """JetClass-II files with few constituents (the scalar columns are what is read) and spectra per class."""
    rng = np.random.default_rng(seed)
    labels = np.array([JETCLASS2_LABELS.index(n) for n in ("label_X_bb", "label_QCD_light", "label_X_cc")])
    paths = []
    for k, start in enumerate(range(0, rows, per_file)):
        n = min(per_file, rows - start)
        table = synthetic_jet_table(n, seed=seed + k, labels=tuple(labels), min_particles=1, max_particles=4)
        label = table.column("jet_label").to_numpy()
        pt = np.where(label == labels[0], 200 + rng.exponential(200.0, n), 200 + 1000 * rng.beta(2.0, 1.5, n))
        mass = np.where(label == labels[1], rng.exponential(40.0, n), rng.normal(110.0, 35.0, n))
        for name, values in (("jet_pt", pt), ("jet_sdmass", mass)):
            table = table.set_column(table.schema.get_field_index(name), JETCLASS2_SCHEMA.field(name),
                                     pa.array(values.astype(np.float32)))
        path = directory / "jets" / f"train_{k:04d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="zstd", use_dictionary=False)
        paths.append(path)
    return paths


def bench_jets(rows: int, per_file: int, repeats: int) -> dict[str, Any]:
    """Read speed of the three scalar jet columns vs the weight computation and the whole jet stage."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = synthetic_jet_files(tmp, rows, per_file)
        data, _ = read_jet_columns(paths, JET_COLUMNS)
        n = data["jet_label"].size

        def whole_stage() -> None:
            compute_jet_weights_from_files(paths, params=JET_PARAMS, label_table=JETCLASS2_LABELS,
                                           output=tmp / "w.parquet", histograms=tmp / "h.json", plot=tmp / "w.png",
                                           provenance=None)

        t_read = median_seconds(lambda: read_jet_columns(paths, JET_COLUMNS), repeats)
        t_weights = median_seconds(lambda: jet_weights(data, params=JET_PARAMS, label_table=JETCLASS2_LABELS),
                                   repeats)
        t_stage = median_seconds(whole_stage, max(1, repeats // 2))
        # The trainer's side: join its (file stem, row) keys, here 70 % of the jets shuffled, with the file.
        rng = np.random.default_rng(1)
        stems = np.repeat(np.array([p.stem for p in paths], dtype=object), [pq.ParquetFile(p).metadata.num_rows
                                                                             for p in paths])
        rows = np.concatenate([np.arange(pq.ParquetFile(p).metadata.num_rows) for p in paths])
        pick = rng.permutation(n)[: int(0.7 * n)]
        keys = SampleKeys(stems[pick], rows[pick])
        t_join = median_seconds(lambda: read_sampling_weights(tmp / "w.parquet", keys), repeats)
    numbers = {
        "jets": n,
        "files": len(paths),
        "read_columns_rows_per_s": n / t_read,
        "weights_compute_rows_per_s": n / t_weights,
        "whole_stage_rows_per_s": n / t_stage,
        "trainer_join_keys_per_s": len(pick) / t_join,
        "seconds": {"read": t_read, "weights": t_weights, "stage": t_stage, "trainer_join": t_join},
    }
    print(f"jets {n:,} in {len(paths)} JetClass-II files (columns: {', '.join(JET_COLUMNS)})")
    print(f"  Parquet read, 3 columns           {numbers['read_columns_rows_per_s'] / 1e6:8.2f} M rows/s  "
          f"({t_read:.2f} s)")
    print(f"  label lookup + maps + weights     {numbers['weights_compute_rows_per_s'] / 1e6:8.2f} M rows/s  "
          f"({t_weights:.2f} s)")
    print(f"  whole stage (read..plot, writes)  {numbers['whole_stage_rows_per_s'] / 1e6:8.2f} M rows/s  "
          f"({t_stage:.2f} s, includes a fixed plot cost)")
    print(f"  trainer's weight lookup (join)    {numbers['trainer_join_keys_per_s'] / 1e6:8.2f} M keys/s  "
          f"({t_join:.2f} s for {len(pick):,} keys)")
    return numbers


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jet-rows", type=int, default=1_000_000, help="jets in the jet section (0: skip it)")
    parser.add_argument("--jets-per-file", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        paths = synthetic_shards(tmp, args.rows, args.shards)
        rows_on_disk = sum(int(read_event_columns(p, ["event_id"])["event_id"].size) for p in paths)
        data = read_event_columns(paths, COLUMNS, split="train")
        n_train = data["event_id"].size

        def weights_only() -> np.ndarray:
            _, weights = reweight_events(
                data, class_labels=data["sample"], classes=list(PARAMS["class_weights"]), vars=PARAMS["vars"],
                method="flat", class_weights=PARAMS["class_weights"], threshold=0.1, discard_under_overflow=False)
            return weights

        def whole_stage() -> None:
            compute_weights_from_files(paths, params=PARAMS, output=tmp / "w.parquet", histograms=tmp / "h.json",
                                       plot=tmp / "w.png", provenance=None)

        t_read_all = median_seconds(lambda: read_event_columns(paths, COLUMNS), args.repeats)
        t_read_train = median_seconds(lambda: read_event_columns(paths, COLUMNS, split="train"), args.repeats)
        t_weights = median_seconds(weights_only, args.repeats)
        t_stage = median_seconds(whole_stage, max(1, args.repeats // 2))

    numbers: dict[str, Any] = {
        "rows_on_disk": rows_on_disk,
        "train_rows": n_train,
        "read_columns_rows_per_s": rows_on_disk / t_read_all,
        "read_train_split_rows_per_s": rows_on_disk / t_read_train,
        "weights_compute_rows_per_s": n_train / t_weights,
        "whole_stage_rows_on_disk_per_s": rows_on_disk / t_stage,
        "seconds": {"read_all": t_read_all, "read_train": t_read_train, "weights": t_weights, "stage": t_stage},
    }
    print(f"rows on disk {rows_on_disk:,}, training rows {n_train:,} (columns: {', '.join(COLUMNS)})")
    print(f"  Parquet read, 4 columns           {numbers['read_columns_rows_per_s'] / 1e6:8.2f} M rows/s  "
          f"({t_read_all:.2f} s)")
    print(f"  Parquet read + train filter       {numbers['read_train_split_rows_per_s'] / 1e6:8.2f} M rows/s  "
          f"({t_read_train:.2f} s)")
    print(f"  maps + per-event weights          {numbers['weights_compute_rows_per_s'] / 1e6:8.2f} M rows/s  "
          f"({t_weights:.2f} s, training rows)")
    print(f"  whole stage (read..plot, writes)  {numbers['whole_stage_rows_on_disk_per_s'] / 1e6:8.2f} M rows/s  "
          f"({t_stage:.2f} s, includes a fixed plot cost)")
    if args.jet_rows > 0:
        numbers["jets"] = bench_jets(args.jet_rows, args.jets_per_file, args.repeats)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()

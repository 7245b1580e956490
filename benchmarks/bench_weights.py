"""How fast are the sampling weights compared with reading their input?

The weights stage should cost about what reading its few scalar columns costs; this measures both on
a synthetic table (default 1M rows, three classes, 4 shards) and prints rows per second, median of
several repeats.

    python benchmarks/bench_weights.py [--rows 1000000] [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from colliderflow.io.parquet import read_event_columns, write_parquet_atomic
from colliderflow.weights import compute_weights_from_files, reweight_events

PARAMS = {
    "method": "flat",
    "class_column": "sample",
    "vars": {"n_elements": [0, 40, 60, 80, 100, 120, 140, 170, 200, 300], "genmet": [0, 5, 10, 20, 40, 80, 400]},
    "class_weights": {"ttbar": 1.0, "qq": 1.0, "ww": 1.0},
    "threshold": 0.1,
    "discard_under_overflow": False,
}
COLUMNS = ["n_elements", "genmet", "sample", "event_id"]


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

    numbers = {
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
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()

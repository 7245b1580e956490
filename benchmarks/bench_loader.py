"""Does the training input path keep up with a raw read of the same data, and does its memory stay flat?

Writes synthetic datasets once (cached under --cache, by size): `--jets N` JetClass-II jets in Parquet shards
of 100k jets (row groups of 10k) with weaver-style sampling weights, and `--events M` PF events (100–200
elements) as a TFDS array_record dataset with its keys.parquet, plus their weights. Then, each in a fresh
process (so that peak RSS is that of the one path), one epoch of each kind is read:

* loader   — the full training input path as train() runs it: open the dataset (keys only), join the
             sampling weights (spilled to a scratch file, read back a window at a time), draw the epoch (EpochBatchSampler: shuffled row groups / shards, bounded
             windows, weighted draws with replacement), read + decode + collate every batch through the
             DataLoader (--workers worker processes; 0 = in process);
* raw read — the same data read once in storage order into the per-sample arrays the collation takes:
             every Parquet row group read and decoded to constituent features (jet_data.decode_row_group),
             every TFDS record decoded — no sampling, no shuffling, no gathering, no padding. (For jets the
             bare Arrow read without the feature computation is also given, on stderr.)

and one line per kind is printed:

    <kind>: <n> samples, peak RSS <x> MB, loader <y> samples/s, raw read <z> samples/s, ratio <r>

ratio = loader / raw read (goal ≥ 0.7); peak RSS is the loader process's high-water mark (VmHWM) plus
its workers' (goal ≤ 1.5 GB at 1M jets and 200k events, and the same at 10M jets).

    nice -n 10 python benchmarks/bench_loader.py --jets 1000000 --events 200000 [--workers 0] [--cache DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

JETS_PER_FILE = 100_000
ROW_GROUP = 10_000
EVENTS_PER_SHARD = 20_000
LABELS = (0, 1, 2)


# ---- writing the datasets (once)

def write_jets(root: Path, n: int, distinct: int | None = None) -> tuple[Path, Path]:
    """`n` jets in shards under root/jets, and root/jet_weights.parquet; reused when complete. With
    `distinct`, only that many shards are generated and the others are hard links to them (the same
    jets under other names: what is measured — keys, weights, memory, reading — does not care)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from colliderflow.synthetic import synthetic_jet_table

    data, weights = root / "jets", root / "jet_weights.parquet"
    if weights.exists():
        return data, weights
    data.mkdir(parents=True, exist_ok=True)
    stems, rows, w = [], [], []
    for k, start in enumerate(range(0, n, JETS_PER_FILE)):
        size = min(JETS_PER_FILE, n - start)
        path = data / f"train_{k:04d}.parquet"
        if distinct is not None and k >= distinct and size == JETS_PER_FILE:
            path.unlink(missing_ok=True)
            path.hardlink_to(data / f"train_{k % distinct:04d}.parquet")
            table = pq.read_table(path, columns=["jet_label"])
        else:
            table = synthetic_jet_table(size, seed=k, labels=LABELS)
            pq.write_table(table, path, row_group_size=ROW_GROUP)
        stems.append(np.full(size, k, np.int32))
        rows.append(np.arange(size, dtype=np.int64))
        labels = table.column("jet_label").to_numpy()
        w.append(np.where(labels == 0, 3.0, 1.0) * np.random.default_rng(k).uniform(0.2, 2.0, size))
        print(f"  wrote {start + size} jets", file=sys.stderr, flush=True)
    names = pa.array([f"train_{k:04d}" for k in range(len(stems))])
    sample = pa.DictionaryArray.from_arrays(pa.array(np.concatenate(stems)), names)
    pq.write_table(pa.table({"sample": sample, "event_id": np.concatenate(rows), "weight": np.concatenate(w)}),
                   weights)
    return data, weights


def write_events(root: Path, n: int) -> tuple[Path, Path]:
    """`n` PF events (all in the train split) as a TFDS dataset under root/tfds, and their weights."""
    import awkward as ak
    import pyarrow as pa
    import pyarrow.parquet as pq

    from colliderflow.io.parquet import write_parquet_atomic
    from colliderflow.io.tfds_writer import build_tfds
    from colliderflow.synthetic import synthetic_events

    tfds, weights = root / "tfds", root / "pf_weights.parquet"
    if weights.exists():
        return tfds, weights
    shards = []
    for k, start in enumerate(range(0, n, EVENTS_PER_SHARD)):
        events = synthetic_events(min(EVENTS_PER_SHARD, n - start), seed=k, sample="ttbar", first_event_id=start)
        counts = np.array([len(ev["X"]) for ev in events])
        jets = np.array([len(ev["genjets"]) for ev in events])

        def rows(key: str, c: np.ndarray, events: list = events) -> ak.Array:
            return ak.unflatten(np.concatenate([ev[key] for ev in events]), c)

        table = ak.zip({
            "event_id": np.array([ev["event_id"] for ev in events], np.int64), "sample": ["ttbar"] * len(events),
            "split": ["train"] * len(events), "X": rows("X", counts), "ytarget": rows("ytarget", counts),
            "ycand": rows("ycand", counts), "n_elements": counts.astype(np.int32),
            "genmet": np.array([ev["genmet"] for ev in events], np.float32),
            "genjets": rows("genjets", jets), "targetjets": rows("targetjets", jets),
            "gen_unassigned_energy": np.zeros(len(events), np.float32),
        }, depth_limit=1)
        path = root / "events" / f"ttbar_{k:04d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet_atomic(table, path)
        shards.append(path)
        print(f"  wrote {start + len(events)} events", file=sys.stderr, flush=True)
    build_tfds(shards, name="bench", output_dir=tfds)
    w = np.random.default_rng(0).uniform(0.2, 2.0, n)
    pq.write_table(pa.table({"sample": ["ttbar"] * n, "event_id": np.arange(n, dtype=np.int64), "weight": w}), weights)
    return tfds, weights


# ---- measuring (each in its own process)

def _peak_rss_mb(workers: int) -> float:
    """This process's high-water mark (VmHWM: ru_maxrss would carry over the parent's peak across exec),
    plus the largest worker's times the number of workers (they have exited by now)."""
    own = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * workers
    return (own + children) / 1024  # kB


def loader_jets(data: Path, weights: Path, *, batch: int, workers: int, max_samples: int | None) -> dict[str, Any]:
    import torch

    from colliderflow.io.dataset_files import jet_files
    from colliderflow.train.jet_data import JetDataset, collate_jets
    from colliderflow.train.sampling import EpochBatchSampler, read_item_weights

    t0 = time.perf_counter()
    dataset = JetDataset(jet_files([data]), labels=list(LABELS))
    w = read_item_weights(weights, dataset)  # keys derived a range at a time
    n = len(dataset) if max_samples is None else min(len(dataset), max_samples)
    sampler = EpochBatchSampler(len(dataset), batch_size=batch, seed=1, weights=w, block_ends=dataset.block_ends(),
                                num_steps=n // batch)
    return _iterate(dataset, sampler, functools.partial(collate_jets, max_particles=128), workers, t0, torch)


def loader_events(data: Path, weights: Path, *, batch: int, workers: int, max_samples: int | None) -> dict[str, Any]:
    import torch

    from colliderflow.train.data import collate_events, event_index, open_splits
    from colliderflow.train.sampling import EpochBatchSampler, SampleKeys, read_item_weights

    t0 = time.perf_counter()
    events = open_splits([data], "train")
    samples, ids, _ = event_index(events)
    w = read_item_weights(weights, SampleKeys(samples, ids))
    n = len(events) if max_samples is None else min(len(events), max_samples)
    sampler = EpochBatchSampler(len(events), batch_size=batch, seed=1, weights=w, num_steps=n // batch)
    return _iterate(events, sampler, collate_events, workers, t0, torch)


def _iterate(dataset: Any, sampler: Any, collate: Any, workers: int, t0: float, torch: Any) -> dict[str, Any]:
    extra = {"num_workers": workers, "persistent_workers": True, "prefetch_factor": 4,
             "multiprocessing_context": "spawn"} if workers else {}
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, **extra)
    setup = time.perf_counter() - t0
    t1 = time.perf_counter()
    n = 0
    for batch in loader:
        n += len(batch)
    seconds = time.perf_counter() - t1
    del loader  # persistent workers exit, so that their peak is counted
    return {"samples": n, "seconds": seconds, "setup_s": setup, "peak_rss_mb": _peak_rss_mb(workers)}


def raw_jets(data: Path, max_samples: int | None) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from colliderflow.io.dataset_files import jet_files
    from colliderflow.train.jet_data import JET_COLUMNS, PART_COLUMNS

    from colliderflow.train.jet_data import decode_row_group

    first = pq.ParquetFile(jet_files([data])[0]).read_row_group(0, columns=[*PART_COLUMNS, *JET_COLUMNS])
    decode_row_group(first)  # warm-up: first-call costs of the Arrow kernels are not the read's
    pc.list_flatten(first.column(PART_COLUMNS[0]).combine_chunks()).to_numpy(zero_copy_only=False)
    out = {}
    for decode in (False, True):
        t0 = time.perf_counter()
        n = 0
        for path in jet_files([data]):
            pf = pq.ParquetFile(path)
            for g in range(pf.metadata.num_row_groups):
                table = pf.read_row_group(g, columns=[*PART_COLUMNS, *JET_COLUMNS])
                if decode:
                    decode_row_group(table)
                else:
                    for name in PART_COLUMNS:
                        pc.list_flatten(table.column(name).combine_chunks()).to_numpy(zero_copy_only=False)
                n += table.num_rows
                if max_samples is not None and n >= max_samples:
                    break
            if max_samples is not None and n >= max_samples:
                break
        out["arrow_seconds" if not decode else "seconds"] = time.perf_counter() - t0
        out["samples"] = n
    return out


def raw_events(data: Path, max_samples: int | None) -> dict[str, Any]:
    from colliderflow.io.tfds_reader import open_split

    source = open_split(data, "train")
    total = len(source) if max_samples is None else min(len(source), max_samples)
    t0 = time.perf_counter()
    for start in range(0, total, 1024):
        source.__getitems__(range(start, min(start + 1024, total)))
    return {"samples": total, "seconds": time.perf_counter() - t0}


def _child(args: argparse.Namespace) -> None:
    data, weights = Path(args.data), Path(args.weights)
    if args.child == "loader-jets":
        out = loader_jets(data, weights, batch=args.batch, workers=args.workers, max_samples=args.max_samples)
    elif args.child == "loader-events":
        out = loader_events(data, weights, batch=args.batch, workers=args.workers, max_samples=args.max_samples)
    elif args.child == "raw-jets":
        out = raw_jets(data, args.max_samples)
    else:
        out = raw_events(data, args.max_samples)
    print(json.dumps(out))


def _run_child(kind: str, data: Path, weights: Path, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(data), "--weights", str(weights),
           "--batch", str(args.batch), "--workers", str(args.workers)]
    if args.max_samples:
        cmd += ["--max-samples", str(args.max_samples)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jets", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--max-samples", type=int, default=None, help="read only this many samples of each epoch")
    parser.add_argument("--distinct-shards", type=int, default=None,
                        help="generate only this many jet shards of 100k; the others are hard links to them")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "colliderflow-bench-loader")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    todo = []
    if args.jets:
        todo.append(("jets", *write_jets(args.cache / f"jets_{args.jets}", args.jets, args.distinct_shards)))
    if args.events:
        todo.append(("events", *write_events(args.cache / f"events_{args.events}", args.events)))
    for kind, data, weights in todo:
        loader = _run_child(f"loader-{kind}", data, weights, args)
        raw = _run_child(f"raw-{kind}", data, weights, args)
        rate, raw_rate = loader["samples"] / loader["seconds"], raw["samples"] / raw["seconds"]
        arrow = f", bare Arrow read {raw['samples'] / raw['arrow_seconds']:.0f} samples/s" if "arrow_seconds" in raw else ""
        print(f"  ({kind}: setup {loader['setup_s']:.1f} s, loader {loader['seconds']:.1f} s, raw {raw['seconds']:.1f} s"
              f"{arrow})", file=sys.stderr)
        print(f"{kind}: {loader['samples']} samples, peak RSS {loader['peak_rss_mb']:.0f} MB, loader {rate:.0f} samples/s, "
              f"raw read {raw_rate:.0f} samples/s, ratio {rate / raw_rate:.2f}", flush=True)


if __name__ == "__main__":
    main()

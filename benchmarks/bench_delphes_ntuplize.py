"""Throughput of the ntuplizers on real Delphes files (any card), against a bare uproot read of them.

For each file: the event-level ntuplizer (`ntuplize_files`: reader, features, targets, baseline, jets,
Parquet) and the jet ntuplizer (`ntuplize_delphes_jets`, Delphes' jets or reclustered as the card allows),
each against the floor any reader pays — uproot reading the same branches (`tree.arrays`). Runs alternate
and medians are kept (shared machines are noisy); wall and CPU seconds are both printed.

    python benchmarks/bench_delphes_ntuplize.py FILE.root [FILE.root ...] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from colliderflow.io.delphes_events import _layout, _names, _open
from colliderflow.ntuplize.delphes_jets import ntuplize_delphes_jets
from colliderflow.ntuplize.events import ntuplize_files


def timed(fn) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def bare_read(path: Path) -> None:
    tree, available = _open(path)
    try:
        tree.arrays(_names(_layout(path, available), available), library="ak")
    finally:
        tree.file.close()


def bench(path: Path, repeats: int) -> dict:
    import uproot

    with uproot.open(path) as fh:
        n_events = fh["Delphes"].num_entries
    runs: dict[str, list[tuple[float, float]]] = {"read": [], "events": [], "jets": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for i in range(repeats):
            runs["read"].append(timed(lambda: bare_read(path)))
            runs["events"].append(timed(lambda: ntuplize_files(
                [path], output=out / f"e{i}.parquet", sample="bench", shard=0, params={}, seed=1, provenance=None)))
            runs["jets"].append(timed(lambda: ntuplize_delphes_jets(
                [path], output=out / f"j{i}.parquet", params={}, provenance=None)))
    result = {"file": str(path), "n_events": n_events}
    for name, values in runs.items():
        wall = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        result[name] = {"wall_s": wall, "cpu_s": cpu, "events_per_s": n_events / wall}
    for name in ("events", "jets"):
        result[name]["ratio_to_read"] = result[name]["wall_s"] / result["read"]["wall_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = [bench(p, args.repeats) for p in args.inputs]
    for r in results:
        print(f"{r['file']}: {r['n_events']} events")
        for name in ("read", "events", "jets"):
            x = r[name]
            extra = f", {x['ratio_to_read']:.1f}x the bare read" if "ratio_to_read" in x else ""
            print(f"  {name:6s} {x['wall_s']:7.2f} s wall, {x['cpu_s']:7.2f} s CPU, {x['events_per_s']:8.1f} events/s"
                  f"{extra}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Throughput of the event-level ntuplizer against the floor of any ntuplizer: read the branches, write Parquet.

The reference does only the I/O every ntuplizer must do (an uproot read of the same SIM_* branches and a
zstd Parquet write of them as they are); `ntuplize_files` adds features, targets, the baseline, two jet
clusterings and the split assignment. The ratio of the two throughputs says what the physics costs.
Runs alternate between the two and medians are reported, because shared machines are noisy. CPU
seconds are reported beside wall seconds: the ntuplizer may use a second core (decompression, jet
clustering), so on a busy machine its wall time depends on what the other jobs leave free.

    python benchmarks/bench_ntuplize.py [--events 8000] [--repeats 5] [--workdir DIR] [--json OUT]
    python benchmarks/bench_ntuplize.py --input results/<run>/sim/ttbar/000.root ...   # real shards instead
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import awkward as ak
import uproot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sim_fixture import random_events, write_sim

from colliderflow.ntuplize.events import ntuplize_files
from colliderflow.schema import SIM_ALL_BRANCHES, SIM_TREE

PARAMS = {
    "split_fractions": {"train": 0.7, "val": 0.1, "test": 0.2},
    "jets": {"algorithm": "ee_genkt", "radius": 0.4, "p": -1.0, "min_pt": 5.0},
}


def bare_read_write(path: Path, output: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of the reference: read the branches, write them to Parquet."""
    start, cpu = time.perf_counter(), time.process_time()
    with uproot.open(path) as fh:
        events = fh[SIM_TREE].arrays(list(SIM_ALL_BRANCHES))
    ak.to_parquet(events, output, compression="zstd", parquet_dictionary_encoding=False)
    return time.perf_counter() - start, time.process_time() - cpu


def ntuplize(path: Path, output: Path) -> tuple[float, float, dict[str, float]]:
    """(wall, CPU) seconds of the ntuplizer, and its own wall seconds per stage."""
    start, cpu = time.perf_counter(), time.process_time()
    stats = ntuplize_files([path], output=output, sample="bench", shard=0, params=PARAMS, seed=1, provenance=None)
    return time.perf_counter() - start, time.process_time() - cpu, stats["stage_seconds"]


def bench_file(sim: Path, work: Path, repeats: int, label: str) -> dict:
    """Both throughputs on one simulation file, repeats alternating, medians kept."""
    with uproot.open(sim) as fh:
        tree = fh[SIM_TREE]
        n_events = tree.num_entries
        n_elements = int(ak.sum(ak.num(tree["track_omega"].array(), axis=1))
                         + ak.sum(ak.num(tree["cluster_energy"].array(), axis=1)))
    input_mb = sim.stat().st_size / 1e6
    bare_read_write(sim, work / "bare.parquet")  # warm-up: imports, page cache, compiled kernels
    ntuplize(sim, work / "nt.parquet")
    bare, bare_cpu, ours, ours_cpu, stages = [], [], [], [], []
    for _ in range(repeats):
        wall, cpu = bare_read_write(sim, work / "bare.parquet")
        bare.append(wall)
        bare_cpu.append(cpu)
        wall, cpu, stage_seconds = ntuplize(sim, work / "nt.parquet")
        ours.append(wall)
        ours_cpu.append(cpu)
        stages.append(stage_seconds)
    t_bare, t_ours = statistics.median(bare), statistics.median(ours)
    return {
        "input": label,
        "events": n_events,
        "elements_per_event": n_elements / n_events,
        "input_mb": input_mb,
        "output_mb_ntuplize": (work / "nt.parquet").stat().st_size / 1e6,
        "output_mb_bare": (work / "bare.parquet").stat().st_size / 1e6,
        "bare_seconds": t_bare,
        "bare_events_per_s": n_events / t_bare,
        "bare_mb_per_s": input_mb / t_bare,
        "ntuplize_seconds": t_ours,
        "ntuplize_events_per_s": n_events / t_ours,
        "ntuplize_mb_per_s": input_mb / t_ours,
        "ratio": t_bare / t_ours,
        "bare_cpu_seconds": statistics.median(bare_cpu),
        "ntuplize_cpu_seconds": statistics.median(ours_cpu),
        "ratio_cpu": statistics.median(bare_cpu) / statistics.median(ours_cpu),
        "ntuplize_stage_seconds_median": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
        "all_bare_seconds": bare,
        "all_ntuplize_seconds": ours,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8000, help="events of the synthetic fixture file")
    parser.add_argument("--input", type=Path, nargs="+", default=None, help="benchmark these simulation files instead")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        if args.input:
            for sim in args.input:
                results.append(bench_file(sim, work, args.repeats, str(sim)))
        else:
            sim = write_sim(work / "bench.root", random_events(args.events, seed=1))
            results.append(bench_file(sim, work, args.repeats, "synthetic fixture (tests/sim_fixture.random_events)"))
    result = results[0] if len(results) == 1 else results
    print(json.dumps(result, indent=2))
    print(f"{'input':<40}{'events':>8}{'bare ev/s':>11}{'bare MB/s':>11}{'ntuple ev/s':>13}{'ntuple MB/s':>13}"
          f"{'ratio':>8}{'ratio cpu':>11}")
    for r in results:
        name = Path(r["input"]).name if args.input else "synthetic fixture"
        print(f"{name[:39]:<40}{r['events']:>8}{r['bare_events_per_s']:>11.0f}{r['bare_mb_per_s']:>11.1f}"
              f"{r['ntuplize_events_per_s']:>13.0f}{r['ntuplize_mb_per_s']:>13.1f}{r['ratio']:>8.1%}{r['ratio_cpu']:>11.1%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

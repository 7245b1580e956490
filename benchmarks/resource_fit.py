"""Fit the per-job memory and runtime of each rule from Snakemake benchmark TSVs, for rules/common.smk.

Every rule writes a `benchmark:` TSV (s = wall seconds, max_rss = peak resident MB, cpu_time) under
benchmarks/results/<run>/. Given the config files of a few runs at different sizes, this reads those TSVs,
pairs each with the number of events its job handled, and fits per rule (and, for generate, per backend and
collider)

    peak memory [MB] = a + b · events one shard holds      (shards of a job are made/read one after another;
                                                            builtin generate holds one chunk of ≤ 1,000)
    wall time   [s]  = c + d · events of the whole job     (events_per_shard × shards_per_job)

For the stages that read a whole sample or dataset (validate_ntuples, tfds, weights, jet_dataset, jet_tfds,
jet_weights) the size is the events of the sample (or of all samples of the dataset). The slope is the least-
squares one (for time, at least the CPU-time slope: wall time on a busy machine is noisy); the intercept is then raised until no measured point lies above the line, so the formula is an
upper envelope of what was measured (rules/common.smk multiplies it by a safety factor on top).

    python benchmarks/resource_fit.py config/ci.yaml sweep100.yaml sweep1000.yaml [--results benchmarks/results]

prints the table and the RESOURCE_FITS literal to paste into rules/common.smk. Runs whose jobs compiled numba
code for the first time (a cold cache) inflate the time of small sizes: measure those sizes twice and pass the
second run.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from colliderflow.generate.processes import is_pp
from colliderflow.generate.run import EVENTS_PER_CHUNK

ROOT = Path(__file__).resolve().parents[1]

# Per-shard rules: TSV folder → rule name (one TSV per job: <folder>/<sample>/<job>.tsv).
PER_SHARD = {"generate": "generate", "ntuplize": "ntuplize", "ntuplize_jets": "ntuplize_jets"}
# Per-sample rules: <folder>/<sample>.tsv.
PER_SAMPLE = {"validate": "validate_ntuples", "tfds": "tfds"}
# Whole-dataset rules: TSV path → (rule, dataset whose events it reads).
PER_DATASET = {
    "weights/pf.tsv": ("weights", "pf"),
    "weights/jets.tsv": ("jet_weights", "jets"),
    "jet_dataset.tsv": ("jet_dataset", "jets"),
    "tfds_jets.tsv": ("jet_tfds", "jets"),
}


@dataclass(frozen=True)
class Point:
    key: str
    run: str
    mem_size: int  # events the memory scales with
    time_size: int  # events the runtime scales with
    max_rss: float  # MB
    seconds: float  # wall
    cpu: float


def rule_key(rule: str, sample: dict) -> str:
    """The fit a job of `rule` for `sample` belongs to; the same keys as rules/common.smk's RESOURCE_FITS."""
    backend = sample["backend"]
    if rule == "generate":
        return f"generate/{backend}/{'pp' if is_pp(sample['process']) else 'ee'}"
    if rule in ("ntuplize", "ntuplize_jets"):
        return f"{rule}/{backend}"
    return rule


def _read_tsv(path: Path) -> dict[str, float]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if len(rows) != 1:
        raise ValueError(f"{path}: expected one benchmark row, found {len(rows)}")
    return {k: float(rows[0][k]) for k in ("s", "max_rss", "cpu_time")}


def read_run(configfile: Path, results: Path) -> list[Point]:
    """The benchmark points of one run: its config says where its TSVs are and how many events each job had."""
    config = yaml.safe_load(configfile.read_text())
    run = config["run"]
    bench = results / run
    if not bench.is_dir():
        raise FileNotFoundError(f"{configfile}: no benchmark folder {bench} for run {run!r}")
    spj = config.get("shards_per_job", 1)
    samples = config["samples"]
    points: list[Point] = []

    def add(key: str, tsv: Path, mem_size: int, time_size: int) -> None:
        row = _read_tsv(tsv)
        points.append(Point(key, run, mem_size, time_size, row["max_rss"], row["s"], row["cpu_time"]))

    for folder, rule in PER_SHARD.items():
        for name, sample in samples.items():
            for tsv in sorted((bench / folder / name).glob("*.tsv")):
                eps = sample["events_per_shard"]
                # generate holds one chunk of events at a time: beyond a chunk its memory stays flat
                held = min(eps, EVENTS_PER_CHUNK) if rule == "generate" and sample["backend"] == "builtin" else eps
                add(rule_key(rule, sample), tsv, held, eps * spj)
    for folder, rule in PER_SAMPLE.items():
        for name, sample in samples.items():
            tsv = bench / folder / f"{name}.tsv"
            if tsv.exists():
                events = sample["events_per_shard"] * sample["n_shards"]
                add(rule, tsv, events, events)
    for rel, (rule, dataset) in PER_DATASET.items():
        tsv = bench / rel
        if tsv.exists():
            events = sum(
                s["events_per_shard"] * s["n_shards"] for s in samples.values() if s.get("dataset", "pf") == dataset
            )
            add(rule, tsv, events, events)
    return points


def envelope(x: np.ndarray, y: np.ndarray, min_slope: float = 0.0) -> tuple[float, float]:
    """(intercept, slope): the least-squares slope (0 with one size; never under min_slope), the intercept
    raised so that every point lies on or under the line."""
    slope = float(np.polyfit(x, y, 1)[0]) if len(set(x.tolist())) > 1 else 0.0
    slope = max(slope, min_slope)
    return float(np.max(y - slope * x)), slope


def fit(points: list[Point]) -> dict[str, dict]:
    by_key: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_key[p.key].append(p)
    table = {}
    for key, pts in sorted(by_key.items()):
        mem_x = np.array([p.mem_size for p in pts], float)
        time_x = np.array([p.time_size for p in pts], float)
        mem = envelope(mem_x, np.array([p.max_rss for p in pts]))
        cpu = envelope(time_x, np.array([p.cpu for p in pts]))
        # Wall time on a busy machine is noisy, CPU time is not: the slope is the larger of the two.
        wall = envelope(time_x, np.array([p.seconds for p in pts]), min_slope=cpu[1])
        table[key] = {
            "mem": mem,
            "time": wall,
            "cpu": cpu,
            "points": len(pts),
            "sizes": sorted({p.mem_size for p in pts}),
            "runs": sorted({p.run for p in pts}),
        }
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", type=Path, help="config files of the measured runs")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results", help="benchmark root")
    args = parser.parse_args(argv)
    points = [p for c in args.configs for p in read_run(c, args.results)]
    table = fit(points)
    print(f"{'fit':24} {'n':>3} {'events':>16}  {'mem MB':>8} {'MB/1k ev':>9}  {'wall s':>7} {'s/1k ev':>8}  {'cpu s/1k':>8}")
    for key, row in table.items():
        (a, b), (c, d), (_, cd) = row["mem"], row["time"], row["cpu"]
        span = f"{row['sizes'][0]}-{row['sizes'][-1]}"
        print(f"{key:24} {row['points']:>3} {span:>16}  {a:8.0f} {b * 1e3:9.2f}  {c:7.1f} {d * 1e3:8.2f}  {cd * 1e3:8.2f}")
    print("\n# (MB, MB per event, s, s per event): paste into rules/common.smk")
    print("RESOURCE_FITS = {")
    for key, row in table.items():
        (a, b), (c, d) = row["mem"], row["time"]
        print(f'    "{key}": ({a:.0f}, {b:.4f}, {c:.1f}, {d:.5f}),')
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fit the per-job memory and runtime of each rule from Snakemake benchmark TSVs, for rules/resources.smk.

Every rule writes a `benchmark:` TSV (s = wall seconds, max_rss = peak resident MB, cpu_time) under
benchmarks/results/<run>/. Given the config files of a few runs at different sizes, this reads those TSVs,
pairs each with the number of events its job handled, and fits per rule (and, for generate, per backend and
collider)

    peak memory [MB] = a + b · min(n, chunk) + e · max(n − chunk, 0) + g · (k − 1) · n
                       n = events_per_shard, k = shards_per_job: a job makes/reads its shards one after
                       another, and what the earlier ones leave behind is g; the builtin generator simulates
                       1,000-event chunks, beyond which only its output buffers grow (e; elsewhere e = 0)
    wall time   [s]  = c + d · events of the whole job     (events_per_shard × shards_per_job)

The stages that read a whole sample or dataset (validate_ntuples, tfds, weights, jet_dataset, jet_tfds,
jet_weights) read it shard by shard: for them n is the largest events_per_shard and k · n the events of the
sample (or of all samples of the dataset). Memory slopes are the least-squares ones; the time slope is CPU
time's (wall time on a busy machine swings with the load; the jobs are single-threaded). The intercepts are then
raised until no measured point lies above the line, so each formula is an upper envelope of what was measured
(rules/resources.smk multiplies it by a safety factor on top).

    python benchmarks/resource_fit.py benchmarks/measured/configs/*.yaml config/ci.yaml --results benchmarks/measured

prints the table and the RESOURCE_FITS literal to paste into rules/resources.smk. Runs whose jobs compiled numba
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
    events: int  # events one shard holds (or the sample's / dataset's events): what memory follows
    earlier: int  # events of the job's other shards: (shards_per_job - 1) · events_per_shard
    job_events: int  # events of the whole job: what runtime follows
    knee: int | None  # events beyond which the memory slope changes (a generator chunk), if any
    max_rss: float  # MB
    seconds: float  # wall
    cpu: float


def rule_key(rule: str, sample: dict) -> str:
    """The fit a job of `rule` for `sample` belongs to; the same keys as rules/resources.smk's RESOURCE_FITS."""
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

    def add(key: str, tsv: Path, events: int, job_events: int, knee: int | None = None) -> None:
        row = _read_tsv(tsv)
        earlier = job_events - events
        points.append(Point(key, run, events, earlier, job_events, knee, row["max_rss"], row["s"], row["cpu_time"]))

    for folder, rule in PER_SHARD.items():
        for name, sample in samples.items():
            for tsv in sorted((bench / folder / name).glob("*.tsv")):
                eps = sample["events_per_shard"]
                # the builtin generator simulates one chunk of events at a time: beyond a chunk only the
                # output buffers grow, with a much smaller slope
                knee = EVENTS_PER_CHUNK if rule == "generate" and sample["backend"] == "builtin" else None
                add(rule_key(rule, sample), tsv, eps, eps * spj, knee)
    # The rules that read a whole sample or dataset read it shard by shard and keep a few numbers per event
    # (or per jet): memory follows the largest shard, plus g for the other shards' events; time the total.
    for folder, rule in PER_SAMPLE.items():
        for name, sample in samples.items():
            tsv = bench / folder / f"{name}.tsv"
            if tsv.exists():
                eps = sample["events_per_shard"]
                add(rule, tsv, eps, eps * sample["n_shards"])
    for rel, (rule, dataset) in PER_DATASET.items():
        tsv = bench / rel
        members = [s for s in samples.values() if s.get("dataset", "pf") == dataset]
        if tsv.exists():
            add(rule, tsv, max(s["events_per_shard"] for s in members),
                sum(s["events_per_shard"] * s["n_shards"] for s in members))
    return points


def _slopes(columns: list[np.ndarray], y: np.ndarray) -> list[float]:
    """Least-squares slopes of y on the columns (with an intercept); 0 for a column that does not vary, and
    never negative (a cost does not fall with more events: a negative slope is noise)."""
    varying = [i for i, col in enumerate(columns) if len(set(col.tolist())) > 1]
    slopes = [0.0] * len(columns)
    if varying:
        design = np.column_stack([np.ones_like(y)] + [columns[i] for i in varying])
        coef = np.linalg.lstsq(design, y, rcond=None)[0]
        for i, c in zip(varying, coef[1:], strict=True):
            slopes[i] = max(float(c), 0.0)
    return slopes


def memory_fit(pts: list[Point]) -> tuple[float, float, float, float]:
    """(a, b, e, g): peak MB ≤ a + b·min(n, knee) + e·max(n − knee, 0) + g·earlier for every point (no knee:
    e = 0), where `earlier` is the events of the job's shards before the last."""
    n = np.array([p.events for p in pts], float)
    knee = pts[0].knee if pts[0].knee is not None else np.inf
    below, beyond = np.minimum(n, knee), np.maximum(n - knee, 0.0)
    earlier = np.array([p.earlier for p in pts], float)
    y = np.array([p.max_rss for p in pts])
    b, e, g = _slopes([below, beyond, earlier], y)
    return float(np.max(y - b * below - e * beyond - g * earlier)), b, e, g


def time_fit(pts: list[Point]) -> tuple[float, float]:
    """(c, d): wall seconds ≤ c + d·(events of the job) for every point. The slope is CPU time's (wall time
    on a busy machine swings with the load; these jobs are single-threaded), the intercept covers the wall."""
    n = np.array([p.job_events for p in pts], float)
    (d,) = _slopes([n], np.array([p.cpu for p in pts]))
    return float(np.max(np.array([p.seconds for p in pts]) - d * n)), d


def fit(points: list[Point]) -> dict[str, dict]:
    by_key: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_key[p.key].append(p)
    return {
        key: {
            "mem": memory_fit(pts),
            "time": time_fit(pts),
            "points": len(pts),
            "sizes": sorted({p.events for p in pts}),
            "job_sizes": sorted({p.job_events for p in pts}),
            "runs": sorted({p.run for p in pts}),
        }
        for key, pts in sorted(by_key.items())
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", type=Path, help="config files of the measured runs")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results", help="benchmark root")
    args = parser.parse_args(argv)
    points = [p for c in args.configs for p in read_run(c, args.results)]
    table = fit(points)
    print(f"{'fit':22} {'n':>2} {'events':>10} {'job events':>10}  {'MB':>5} {'MB/1k':>6} {'>chunk':>6}"
          f" {'earlier':>7}  {'s':>6} {'s/1k':>6}")
    for key, row in table.items():
        (a, b, e, g), (c, d) = row["mem"], row["time"]
        span = f"{row['sizes'][0]}-{row['sizes'][-1]}"
        job_span = f"{row['job_sizes'][0]}-{row['job_sizes'][-1]}"
        print(f"{key:22} {row['points']:>2} {span:>10} {job_span:>10}  {a:5.0f} {b * 1e3:6.1f} {e * 1e3:6.1f}"
              f" {g * 1e3:7.1f}  {c:6.1f} {d * 1e3:6.2f}")
    print("\n# (a MB, b MB/event, e MB/event beyond a generator chunk, g MB/event of earlier shards, c s,"
          " d s/event of the job)")
    print("RESOURCE_FITS = {")
    for key, row in table.items():
        (a, b, e, g), (c, d) = row["mem"], row["time"]
        print(f'    "{key}": ({a:.0f}, {b:.4f}, {e:.4f}, {g:.4f}, {c:.1f}, {d:.5f}),')
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

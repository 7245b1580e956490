"""How long a dry run of a production-scale DAG takes: `snakemake -n` on a config with many shards.

Usage: python benchmarks/bench_dryrun.py [--shards 10000] [--samples 3] [--shards-per-job 10]
Prints the number of jobs, the wall time of the dry run and the peak memory of the snakemake process.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def production_config(n_shards: int, n_samples: int, shards_per_job: int) -> dict:
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["shards_per_job"] = shards_per_job
    processes = ["ee_ttbar", "ee_qq", "ee_ww_fullhad"]
    per_sample = n_shards // n_samples // shards_per_job * shards_per_job
    config["run"] = "production"
    config["samples"] = {
        f"sample{i}": {
            "process": processes[i % len(processes)],
            "backend": "builtin",
            "n_shards": per_sample,
            "events_per_shard": 10000,
        }
        for i in range(n_samples)
    }
    config["weights"]["class_weights"] = {name: 1.0 for name in config["samples"]}
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--shards-per-job", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "rules", "workflow", "config", "envs", "profiles"):
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        config = work / "production.yaml"
        config.write_text(yaml.safe_dump(production_config(args.shards, args.samples, args.shards_per_job)))
        cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", str(config),
               "--cores", "1"]
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
        wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mb = usage.ru_maxrss / 1024
    cpu = usage.ru_utime + usage.ru_stime  # CPU seconds: what the wall time would be on an idle core
    total = next((line.split()[-1] for line in result.stdout.splitlines() if line.startswith("total")), "?")
    print(f"shards: {args.shards}  shards per job: {args.shards_per_job}  jobs: {total}  dry run: {wall:.1f} s wall, {cpu:.1f} s CPU  peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()

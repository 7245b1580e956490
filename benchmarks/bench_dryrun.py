"""What a dry run of a production-scale DAG costs, against plain Snakemake with the same jobs.

Usage: python benchmarks/bench_dryrun.py [--shards 15000] [--samples 3] [--shards-per-job 10]

Runs, one after the other and each in its own process, `snakemake -n` of
  - colliderflow's workflow on a config with --shards shards in --samples samples, and
  - a plain Snakemake workflow of the same shape: per job a generate and an ntuplize rule with params
    (a per-job seed list and a config string), log and resources, whose shell commands only copy, and
    per sample one rule reading all of the sample's ntuplize records (as validation does);
and prints for each the jobs, wall time, CPU time and peak RSS, and the CPU ratio colliderflow / plain.
CPU time is the figure to compare on a shared machine: it is what the wall time would be on an idle core.
The goal is a ratio ≤ 2: the DAG's cost per job should be Snakemake's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

PLAIN_SNAKEFILE = '''
SPJ = config["shards_per_job"]
SAMPLES = sorted(config["samples"])
CFG = config["cfg"]


def jobs(sample):
    return range(config["samples"][sample] // SPJ)


def shards(wildcards):
    return [int(wildcards.job) * SPJ + i for i in range(SPJ)]


rule all:
    input:
        [f"ntuples/{s}/summary.txt" for s in SAMPLES],


rule generate:
    output:
        files=[f"sim/{{sample}}/{{job}}/{i}.root" for i in range(SPJ)],
        record="sim/{sample}/{job}/provenance.json",
    params:
        seeds=lambda wc: [hash((wc.sample, s)) % 2**31 for s in shards(wc)],
        cfg=CFG,
    log:
        "logs/generate/{sample}/{job}.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 60 * SPJ * attempt,
    shell:
        "echo {params.seeds} > {output.record}; for f in {output.files}; do cp {output.record} $f; done 2> {log}"


rule ntuplize:
    input:
        "sim/{sample}/{job}/provenance.json",
    output:
        files=[f"ntuples/{{sample}}/{{job}}/{i}.parquet" for i in range(SPJ)],
        record="ntuples/{sample}/{job}/provenance.json",
    params:
        shards=shards,
        cfg=CFG,
    log:
        "logs/ntuplize/{sample}/{job}.log",
    resources:
        mem_mb=lambda wc, attempt: 2000 * attempt,
        runtime=lambda wc, attempt: 30 * SPJ * attempt,
    shell:
        "cp {input} {output.record}; for f in {output.files}; do cp {input} $f; done 2> {log}"


rule summary:
    input:
        lambda wc: [f"ntuples/{wc.sample}/{j}/provenance.json" for j in jobs(wc.sample)],
    output:
        "ntuples/{sample}/summary.txt",
    log:
        "logs/summary/{sample}.log",
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "cat {input} > {output} 2> {log}"
'''


@dataclass
class DryRun:
    jobs: str
    wall: float
    cpu: float
    peak_mb: float


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


def dry_run(workdir: Path, configfile: Path) -> DryRun:
    """`snakemake -n` in its own process; its CPU time and peak RSS from wait4 (that process alone)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", str(configfile), "--cores", "1"]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        sys.exit(f"snakemake -n in {workdir} failed:\n{text[-3000:]}")
    total = next((line.split()[-1] for line in text.splitlines() if line.startswith("total")), "?")
    return DryRun(total, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=15_000)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--shards-per-job", type=int, default=10)
    args = parser.parse_args()
    config = production_config(args.shards, args.samples, args.shards_per_job)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "colliderflow"
        work.mkdir()
        for name in ("Snakefile", "rules", "workflow", "config", "envs", "profiles"):
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        (work / "production.yaml").write_text(yaml.safe_dump(config))
        plain = Path(tmp) / "plain"
        plain.mkdir()
        (plain / "Snakefile").write_text(PLAIN_SNAKEFILE)
        plain_config = {
            "shards_per_job": args.shards_per_job,
            "samples": {name: s["n_shards"] for name, s in config["samples"].items()},
            "cfg": yaml.safe_dump(config["generate"]),
        }
        (plain / "plain.yaml").write_text(yaml.safe_dump(plain_config))
        ours = dry_run(work, work / "production.yaml")
        ref = dry_run(plain, plain / "plain.yaml")
    print(f"shards: {args.shards}  samples: {args.samples}  shards per job: {args.shards_per_job}")
    for name, r in (("colliderflow", ours), ("plain snakemake", ref)):
        print(f"  {name:16s} jobs: {r.jobs:>6s}  wall {r.wall:6.1f} s  CPU {r.cpu:6.1f} s  peak RSS {r.peak_mb:6.0f} MB")
    print(f"  ratio colliderflow / plain: CPU {ours.cpu / ref.cpu:.2f}x  peak RSS {ours.peak_mb / ref.peak_mb:.2f}x")


if __name__ == "__main__":
    main()

"""benchmarks/bench_gpu.sh and its driver: the CPU smoke run of the GPU checks, so the script that a GPU
machine runs is exercised here (training every model in fp32 and bf16, the loss check, the DDP path)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(mlpf|part|pelican) (fp32|bf16): [0-9.]+ samples/s(?: on (\d+) ranks)?, batch \d+x\d+, "
                  r"loss ([0-9.]+) -> ([0-9.]+) ", re.MULTILINE)


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script runs the full GPU checks (minutes)")
def test_the_script_runs_the_cpu_smoke_version() -> None:
    proc = _run("bash", "benchmarks/bench_gpu.sh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no CUDA device, CPU smoke run" in proc.stdout
    runs = {(m[1], m[2]): (float(m[4]), float(m[5])) for m in LINE.finditer(proc.stdout)}
    assert set(runs) == {(model, dtype) for model in ("mlpf", "part", "pelican") for dtype in ("fp32", "bf16")}
    assert all(after < before for before, after in runs.values()), runs
    for model in ("mlpf", "part", "pelican"):
        assert re.search(rf"^{model}: bf16/fp32 = [0-9.]+x", proc.stdout, re.MULTILINE), proc.stdout
    assert proc.stdout.rstrip().endswith("bench_gpu: ok")


def test_a_loss_that_does_not_fall_fails_the_run() -> None:
    proc = _run(sys.executable, "benchmarks/bench_gpu.py", "--device", "cpu", "--steps", "2", "--models", "part",
                "--dtypes", "bf16", "--lr", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED part bf16: loss did not fall" in proc.stderr and "bench_gpu: FAILED" in proc.stdout


def test_ddp_over_two_cpu_ranks() -> None:
    """The DDP path of the 2-GPU run, with gloo on two CPU processes instead of NCCL on two GPUs."""
    proc = _run(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "benchmarks/bench_gpu.py", "--device", "cpu", "--ddp", "--models", "part", "--steps", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = LINE.findall(proc.stdout)
    assert [(m[0], m[1], m[2]) for m in runs] == [("part", "fp32", "2"), ("part", "bf16", "2")], proc.stdout
    assert all(float(m[4]) < float(m[3]) for m in runs)

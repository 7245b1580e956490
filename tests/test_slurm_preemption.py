"""Pre-emption through the real local SLURM: the warning signal reaches training, the retry resumes, and
the final weights are those of an uninterrupted run.

profiles/slurm asks SLURM for SIGTERM two minutes before a train job's time limit (`--signal=TERM@120`).
Without `B:` SLURM sends that signal to every job step but not to the batch shell, which is exactly what
`scancel --signal=TERM <job>` (no `--batch`, no `--full`) does, so that is how the test pre-empts the job
now rather than waiting for a time limit. Inside the allocation the executor plugin's batch step runs
`srun -n1 ... python -m snakemake ...` (snakemake-executor-plugin-slurm-jobstep 0.6.1), so the signalled
step holds that inner Snakemake, the rule's bash and the training process; the rule `exec`s the
launcher, so bash is the training process and SIGTERM reaches its handler (checkpoint, exit 75), while
the inner Snakemake (a SIGTERM makes it wait for its running job) reports the job failed. The outer
Snakemake then retries it (profile: `retries`), and the retry resumes from the checkpoint.

Needs the local SLURM of ci/setup_local_slurm.sh, like tests/test_slurm.py; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_slurm import LOCAL_OVERRIDES, PROFILE, SBATCH_WRAPPER_DIR, WHY_NO_SLURM, read_submissions
from workflow_api import copy_project, run_snakemake

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(WHY_NO_SLURM is not None, reason=str(WHY_NO_SLURM)),
]

TIMEOUT = 1800  # the whole run: the ci samples up to the PF model, through SLURM
# Long enough that the job is still training when the test has seen its first logged step.
TRAIN = {"max_steps": 1500, "checkpoint_every": 500, "eval_every": 500, "log_every": 25}


def _train_jobs() -> list[tuple[str, str]]:
    """(job id, state) of the train jobs SLURM lists (running or finished within MinJobAge)."""
    out = subprocess.run(["squeue", "-t", "all", "-h", "-o", "%i|%k|%T"], check=False, capture_output=True,
                         text=True, timeout=60).stdout
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
    return [(job, state) for job, comment, state in rows if comment.startswith("rule_train")]


def _events(metrics: Path) -> list[tuple[str, int]]:
    lines = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    return [(x["event"], x["step"]) for x in lines if x.get("split") == "event"]


def test_sigterm_through_slurm_checkpoints_and_the_retry_resumes_bit_exactly(tmp_path: Path) -> None:
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((workdir / "config" / "ci.yaml").read_text())
    config["train"].update(TRAIN)
    (workdir / "config" / "preempt.yaml").write_text(yaml.safe_dump(config))
    model_dir = workdir / "results" / config["run"] / "models" / config["train"]["model"]
    target = str((model_dir / "model.pt").relative_to(workdir))

    log = tmp_path / "sbatch.log"
    path = os.pathsep.join([str(SBATCH_WRAPPER_DIR), str(Path(sys.executable).parent), os.environ["PATH"]])
    snakemake = shutil.which("snakemake", path=path)
    assert snakemake, "no snakemake on PATH"
    cmd = [snakemake, "--profile", PROFILE, "--configfile", "config/preempt.yaml", *LOCAL_OVERRIDES, target]
    output = tmp_path / "snakemake.log"
    signalled: str | None = None
    with output.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=dict(os.environ, PATH=path, SBATCH_LOG=str(log)),
                                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(2)
                if signalled is not None:
                    continue
                running = [job for job, state in _train_jobs() if state == "RUNNING"]
                metrics = model_dir / "metrics.jsonl"
                # Pre-empt once training has logged a step (and has steps to go: see TRAIN).
                if running and metrics.is_file() and '"split": "train"' in metrics.read_text():
                    signalled = running[0]
                    subprocess.run(["scancel", "--signal=TERM", signalled], check=True, timeout=60)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # lets Snakemake cancel its jobs and release its lock
                proc.wait(timeout=120)
                for uuid in {s.run_uuid for s in read_submissions(log)}:
                    subprocess.run(["scancel", "--name", uuid], check=False)
                pytest.fail(f"snakemake through SLURM did not finish within {TIMEOUT} s:\n{output.read_text()[-6000:]}")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = output.read_text()
    assert proc.returncode == 0, text[-6000:]
    assert signalled is not None, f"the train job was never seen running with a logged step:\n{text[-6000:]}"

    # The train job was submitted twice: the pre-empted attempt and its retry.
    train_calls = [s for s in read_submissions(log) if s.comment.startswith("rule_train")]
    assert len(train_calls) == 2, [s.comment for s in read_submissions(log)]
    # The pre-empted attempt wrote its checkpoint and said so; the retry resumed from that step.
    events = _events(model_dir / "metrics.jsonl")
    kinds = [kind for kind, _ in events]
    assert kinds == ["preempted", "resumed"], events
    stopped_at = events[0][1]
    assert 0 < stopped_at < TRAIN["max_steps"] and events[1][1] == stopped_at
    steps = [json.loads(x)["step"] for x in (model_dir / "metrics.jsonl").read_text().splitlines()
             if json.loads(x).get("split") == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == TRAIN["max_steps"]  # one history, no step twice
    preempted = torch.load(model_dir / "model.pt", weights_only=True)["state_dict"]

    # The same job uninterrupted (locally, same inputs, params and threads): the same weights, bit for bit.
    shutil.rmtree(model_dir)
    done = run_snakemake(workdir, "--configfile", "config/preempt.yaml", "--cores", "2", target, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-6000:]
    assert [kind for kind, _ in _events(model_dir / "metrics.jsonl")] == []
    plain = torch.load(model_dir / "model.pt", weights_only=True)["state_dict"]
    assert plain.keys() == preempted.keys()
    for key in plain:
        assert torch.equal(plain[key], preempted[key]), key

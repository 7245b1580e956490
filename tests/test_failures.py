"""Failure modes a cluster user meets: a training job killed mid-run, retried jobs, broken inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import torch
from workflow_api import copy_project

from colliderflow.train.data import synthetic_events
from colliderflow.io.parquet import write_parquet_atomic
from colliderflow.io.tfds_writer import build_tfds

PARAMS = {
    "model": "mlpf",
    "mlpf": {"embedding_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "dropout": 0.0},
    "batch_size": 4,
    "max_steps": 60,
    "lr": 1e-3,
    "warmup_steps": 2,
    "checkpoint_every": 10,
    "eval_every": 30,
    "device": "cpu",
    "threads": 1,
}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> Path:
    """A real (small) TFDS dataset built from learnable synthetic events, as the pipeline builds it."""
    root = tmp_path_factory.mktemp("failures")
    events = synthetic_events(60, seed=3, sample="ttbar", min_elements=5, max_elements=20)
    rng = np.random.default_rng(0)
    no_jets = ak.unflatten(np.zeros((0, 4), np.float32), np.zeros(len(events), np.int64))
    table = ak.Array(
        {
            "event_id": np.array([e["event_id"] for e in events], np.int64),
            "sample": ["ttbar"] * len(events),
            "split": rng.choice(["train", "val", "test"], len(events), p=[0.8, 0.1, 0.1]).tolist(),
            "X": [e["X"] for e in events],
            "ytarget": [e["ytarget"] for e in events],
            "ycand": [e["ycand"] for e in events],
            "n_elements": np.array([len(e["X"]) for e in events], np.int32),
            "genmet": np.zeros(len(events), np.float32),
            "genjets": no_jets,
            "targetjets": no_jets,
            "gen_unassigned_energy": np.zeros(len(events), np.float32),
        }
    )
    write_parquet_atomic(table, root / "0.parquet")
    build_tfds([root / "0.parquet"], name="ttbar", output_dir=root / "tfds")
    return root / "tfds"


def _train_cmd(tfds: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "colliderflow", "train", "--tfds", str(tfds), "--params", json.dumps(PARAMS),
            "--seed", "5", "-o", str(out)]


def _state(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "model.pt", weights_only=True)["state_dict"]


def test_killed_training_resumes_from_its_last_checkpoint(tfds_dir, tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(tfds_dir, straight), check=True, capture_output=True, timeout=300)

    killed = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(_train_cmd(tfds_dir, killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    while not list((killed / "checkpoints").glob("ckpt_*.pt")):
        assert proc.poll() is None, "training ended before writing a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # what SLURM does at the time limit or on pre-emption
    proc.wait(timeout=30)
    assert not (killed / "model.pt").exists()
    checkpoint_steps = sorted(int(p.stem.split("_")[-1]) for p in (killed / "checkpoints").glob("ckpt_*.pt"))
    assert checkpoint_steps and checkpoint_steps[-1] < PARAMS["max_steps"]

    rerun = subprocess.run(_train_cmd(tfds_dir, killed), check=True, capture_output=True, text=True, timeout=300)
    assert f"resumed from {killed / 'checkpoints'}" in rerun.stderr
    assert f"at step {checkpoint_steps[-1]}" in rerun.stderr
    for name, tensor in _state(straight).items():
        torch.testing.assert_close(_state(killed)[name], tensor, rtol=0, atol=0, msg=name)


def _value(resource):
    return resource.value if hasattr(resource, "value") else resource


def test_retried_jobs_ask_for_more_memory_and_time(tmp_path):
    """The rules' resources grow with Snakemake's attempt counter (used with `retries` in profiles/slurm).
    tests/test_resources.py checks every fitted rule's requests job by job."""
    from snakemake.api import SnakemakeApi
    from snakemake.iocontainers import Wildcards
    from snakemake.settings.types import OutputSettings, Quietness, ResourceSettings

    workdir = copy_project(tmp_path / "wf")
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=workdir / "Snakefile",
                                workdir=workdir)._workflow
        wildcards = Wildcards(fromdict={"sample": "ttbar", "job": "0", "model": "mlpf"})
        for rule_name in ("generate", "ntuplize", "train"):
            rule = workflow.get_rule(rule_name)
            per_attempt = [
                {k: _value(rule.resources[k].evaluate(wildcards, attempt=a)) for k in ("mem_mb", "runtime")}
                for a in (1, 2, 3)
            ]
            assert per_attempt[0]["mem_mb"] < per_attempt[1]["mem_mb"] < per_attempt[2]["mem_mb"], rule_name
            assert per_attempt[0]["runtime"] < per_attempt[1]["runtime"] <= per_attempt[2]["runtime"], rule_name


def _skip_config(tmp_path: Path, *, skip: bool) -> Path:
    """Two tiny samples; `broken` uses the delphes backend with a card Delphes refuses (or, where Delphes is
    not built, fails for the missing tool)."""
    import yaml
    from workflow_api import ROOT

    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["samples"] = {
        "good": {"process": "ee_qq", "backend": "builtin", "n_shards": 1, "events_per_shard": 20},
        "broken": {"process": "ee_qq", "backend": "delphes", "n_shards": 1, "events_per_shard": 20,
                   "delphes": {"card": str(tmp_path / "broken_card.tcl")}},
    }
    (tmp_path / "broken_card.tcl").write_text("set ExecutionPath {Bogus}\nmodule NoSuchModule Bogus {}\n")
    config["weights"]["class_weights"] = {"good": 1.0, "broken": 1.0}
    for key in ("jets", "jet_weights", "tagger"):
        config.pop(key, None)
    config["skip_failed_shards"] = skip
    path = tmp_path / f"skip_{skip}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.slow
def test_failed_generation_shards_are_skipped_only_when_the_switch_is_on(tmp_path):
    import pyarrow.parquet as pq
    from workflow_api import run_snakemake

    workdir = copy_project(tmp_path / "wf")
    targets = ["results/ci/run_summary.json", "results/ci/ntuples/good/0/provenance.json",
               "results/ci/ntuples/broken/0/provenance.json"]
    common = ["--cores", "2", "--retries", "0", "--keep-going"]

    off = run_snakemake(workdir, *targets, *common, "--configfile", str(_skip_config(tmp_path, skip=False)),
                        timeout=600)
    assert off.returncode != 0  # off by default: the failure stops the run
    assert not (workdir / "results/ci/run_summary.json").exists()
    assert (workdir / "results/ci/sim/good/0/provenance.json").exists()  # the good job is kept

    on = run_snakemake(workdir, *targets, *common, "--configfile", str(_skip_config(tmp_path, skip=True)),
                       timeout=600)
    assert on.returncode == 0, on.stderr[-3000:]
    assert "rule generate" in on.stderr and on.stderr.count("rule generate:") == 1  # only the failed job re-ran
    summary = json.loads((workdir / "results/ci/run_summary.json").read_text())
    # The good job ran before the switch was turned on and was not re-run: the jobs disagree, and say so.
    assert summary["skip_failed_shards"] is None
    assert [(f["sample"], f["shard"]) for f in summary["failed_shards"]] == [("broken", 0)]
    assert "Delphes" in summary["failed_shards"][0]["error"] or "delphes" in summary["failed_shards"][0]["error"]
    assert summary["samples"]["good"]["events_generated"] == 20
    assert pq.read_metadata(workdir / "results/ci/ntuples/broken/0/0.parquet").num_rows == 0
    assert pq.read_metadata(workdir / "results/ci/ntuples/good/0/0.parquet").num_rows == 20

"""Data-parallel training with torchrun: two gloo processes on CPU against one process, same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from colliderflow.train.jet_data import synthetic_jet_table
from colliderflow.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARAMS = {
    "model": "pelican",
    "pelican": {"embed_channels": 4, "hidden_channels": 8, "num_layers": 2, "readout_hidden": 16, "dropout": 0.0},
    "labels": [0, 1],
    "batch_size": 8, "max_steps": 8, "lr": 0.003, "warmup_steps": 2, "checkpoint_every": 4, "eval_every": 4,
    "log_every": 2, "device": "cpu", "val_fraction": 0.2, "bucket_batches": 2,
}


def _torchrun(shard: Path, out: Path, params: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "colliderflow", "train", "--tfds", str(shard), "--params", json.dumps(params),
           "--seed", "5", "-o", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_two_ranks_match_one_process_and_resume(tmp_path: Path) -> None:
    shard = tmp_path / "jets.parquet"
    pq.write_table(synthetic_jet_table(80, seed=4, labels=(0, 1), max_particles=20), shard)

    single = train(data=[shard], weights=None, params=PARAMS, seed=5, output_dir=tmp_path / "single")
    ddp_out = tmp_path / "ddp"
    proc = _torchrun(shard, ddp_out, PARAMS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0 of 2" in proc.stderr and "rank 1 of 2" in proc.stderr  # both ranks trained

    prov = json.loads((ddp_out / "provenance.json").read_text())
    assert json.dumps(prov).count('"world_size": 2') >= 1 and '"gloo"' in json.dumps(prov)
    a = torch.load(tmp_path / "single" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(ddp_out / "model.pt", weights_only=True)["state_dict"]
    # Not bit-equal: DDP sums the two ranks' mean gradients and halves them, a different float order
    # than one mean over the whole batch (~1e-8 relative per step, a little amplified by Adam).
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(a[k], torch.zeros_like(a[k])) for k in a)
    # The logged training losses are the global batch's, as in the single run.
    lines = [json.loads(x) for x in (ddp_out / "metrics.jsonl").read_text().splitlines()]
    single_lines = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    for x, y in zip(lines, single_lines, strict=True):
        assert x["step"] == y["step"] and abs(x["loss"] - y["loss"]) < 1e-4

    # Resume under DDP: drop the final checkpoint and model, rerun; it continues from step 4.
    (ddp_out / "checkpoints" / "ckpt_8.pt").unlink()
    (ddp_out / "model.pt").unlink()
    proc = _torchrun(shard, ddp_out, PARAMS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "at step 4" in proc.stderr
    c = torch.load(ddp_out / "model.pt", weights_only=True)["state_dict"]
    for key in a:
        torch.testing.assert_close(c[key], b[key], rtol=1e-6, atol=1e-7)
    assert single["world_size"] == 1

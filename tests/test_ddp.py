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


_RANK_SCRIPT = '''
import json, sys
from pathlib import Path
import torch, torch.distributed as dist
from colliderflow.train.jet_data import JetDataset, collate_jets
from colliderflow.train.sampling import EpochBatchSampler, read_sampling_weights


def main() -> None:  # spawned DataLoader workers import this file: nothing may run at import
    shards, weights, out, steps = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    ds = JetDataset([Path(p) for p in shards], labels=[0, 1, 2])
    w = read_sampling_weights(Path(weights), ds.key_arrays()) if weights else None
    sampler = EpochBatchSampler(len(ds), batch_size=8, seed=5, weights=w, block_ends=ds.block_ends(), buffer_items=40,
                                rank=rank, world_size=world, num_steps=steps)
    batches = list(sampler)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_jets, num_workers=1,
                                         multiprocessing_context="spawn")
    for idx, batch in zip(batches, loader, strict=True):  # the worker reads exactly the jets drawn
        assert batch.label.tolist() == ds.classes[idx].tolist()
    keys = ds.key_arrays()
    mine = [[str(keys.samples[i]), int(keys.event_ids[i])] for b in batches for i in b]
    gathered = [None] * world
    dist.all_gather_object(gathered, mine)
    if rank == 0:
        out.write_text(json.dumps(gathered))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
'''


@pytest.mark.parametrize("weighted", [False, True])
def test_two_gloo_ranks_read_disjoint_windows_whose_union_is_the_single_draw(tmp_path: Path, weighted: bool) -> None:
    """Several shuffle windows (160 jets, row groups of 10, windows of 40): two real gloo ranks, each
    reading through a DataLoader worker, draw from disjoint windows, and together they draw exactly what one
    process draws — window by window, in the same order (unweighted: every jet once over the two ranks)."""
    import numpy as np
    import pyarrow as pa

    from colliderflow.train.jet_data import JetDataset
    from colliderflow.train.sampling import EpochBatchSampler, read_sampling_weights

    shards = []
    for k in range(2):
        shards.append(tmp_path / f"s{k}.parquet")
        pq.write_table(synthetic_jet_table(80, seed=k, labels=(0, 1, 2), max_particles=12), shards[-1], row_group_size=10)
    weights = ""
    if weighted:
        rng = np.random.default_rng(2)
        weights = str(tmp_path / "w.parquet")
        pq.write_table(pa.table({"sample": ["s0"] * 80 + ["s1"] * 80, "event_id": np.tile(np.arange(80), 2),
                                 "weight": rng.uniform(0.1, 3.0, 160)}), weights)
    ds = JetDataset(shards, labels=[0, 1, 2])
    w = read_sampling_weights(Path(weights), ds.key_arrays()) if weighted else None
    kw = {"batch_size": 8, "seed": 5, "weights": w, "block_ends": ds.block_ends(), "buffer_items": 40}
    single = EpochBatchSampler(len(ds), **kw)
    windows, counts = single.windows(0)
    assert len(windows) == 4  # several windows
    segments = np.split(single.epoch_order(0).numpy(), np.cumsum(counts)[:-1])
    steps = EpochBatchSampler(len(ds), rank=0, world_size=2, **kw).steps_in_epoch(0)
    keys = ds.key_arrays()

    def named(items: np.ndarray) -> list[list]:
        return [[str(keys.samples[i]), int(keys.event_ids[i])] for i in items.tolist()]

    out = tmp_path / "drawn.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(_write(tmp_path / "rank.py", _RANK_SCRIPT)), json.dumps([str(p) for p in shards]), weights, str(out),
           str(steps)]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    drawn = json.loads(out.read_text())
    for rank in (0, 1):  # rank r: windows r, r + 2, ... of the single draw, cut to the common number of steps
        assert drawn[rank] == named(np.concatenate(segments[rank::2])[: steps * 4])
    blocks = [{(s, e // 10) for s, e in d} for d in drawn]
    assert not blocks[0] & blocks[1]  # disjoint row groups
    if not weighted:
        assert steps == 20
        assert sorted(map(tuple, drawn[0] + drawn[1])) == sorted(map(tuple, named(np.arange(160))))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path

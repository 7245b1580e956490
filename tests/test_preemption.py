"""Pre-emption (a real SIGUSR1 to a training process), corrupt checkpoints, DataLoader workers, hidden files:
a stopped, damaged or parallel-read run ends with the same weights as one uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from colliderflow.io.dataset_files import jet_files
from colliderflow.train import loop as train_mod
from colliderflow.train import train
from colliderflow.train.jet_data import synthetic_jet_table
from colliderflow.train.preemption import PREEMPTED_EXIT_CODE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PARAMS = {"model": "pelican", "pelican": {"embed_channels": 4, "hidden_channels": 8, "num_layers": 1, "readout_hidden": 8},
          "batch_size": 16, "max_steps": 30, "lr": 0.003, "warmup_steps": 2, "checkpoint_every": 10,
          "eval_every": 10, "log_every": 5, "device": "cpu", "threads": 1, "labels": [0, 1]}


@pytest.fixture(scope="module")
def jets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two shards of 120 jets in row groups of 40, and flat sampling weights keyed (stem, row)."""
    root = tmp_path_factory.mktemp("jets")
    (root / "train").mkdir()
    samples, rows = [], []
    for k in range(2):
        pq.write_table(synthetic_jet_table(120, seed=k), root / "train" / f"s{k}.parquet", row_group_size=40)
        samples += [f"s{k}"] * 120
        rows += list(range(120))
    weights = root / "w.parquet"
    pq.write_table(pa.table({"sample": samples, "event_id": rows, "weight": np.linspace(0.5, 2.0, 240)}), weights)
    return root / "train", weights


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "model.pt", weights_only=True)["state_dict"]


def _equal(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _lines(out: Path, *splits: str) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["split"] in splits]


def _run(jets: tuple[Path, Path], out: Path, **overrides: object) -> dict:
    data, weights = jets
    return train(data=[data], weights=weights, params={**PARAMS, **overrides}, seed=4, output_dir=out)


def test_sigusr1_checkpoints_exits_75_and_the_retry_resumes_bit_exactly(jets: tuple[Path, Path], tmp_path: Path) -> None:
    data, weights = jets
    params = {**PARAMS, "max_steps": 400, "checkpoint_every": 1000}  # long enough to be caught mid-run
    straight = tmp_path / "straight"
    train(data=[data], weights=weights, params=params, seed=4, output_dir=straight)

    out = tmp_path / "preempted"
    cmd = [sys.executable, "-m", "colliderflow", "train", "--data", str(data), "--weights", str(weights),
           "--params", json.dumps(params), "--seed", "4", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any('"train"' in line for line in metrics.read_text().splitlines()):
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"training ended before it could be signalled:\n{proc.communicate()[0]}"
    proc.send_signal(signal.SIGUSR1)
    log, _ = proc.communicate(timeout=120)
    assert proc.returncode == PREEMPTED_EXIT_CODE, log
    assert "SIGUSR1 received" in log
    ckpts = sorted((out / "checkpoints").glob("ckpt_*.pt"))
    assert len(ckpts) == 1 and not (out / "model.pt").exists()
    stopped_at = int(ckpts[0].stem.split("_")[1])
    assert 0 < stopped_at < 400
    metrics.unlink()  # the workflow manager deletes a failed job's outputs before the retry

    retry = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert retry.returncode == 0, retry.stderr
    assert _equal(out, straight)
    strip = [(r["step"], r["split"], r["loss"]) for r in _lines(out, "train", "val")]
    want = [(r["step"], r["split"], r["loss"]) for r in _lines(straight, "train", "val")]
    # the first attempt's history came back from the checkpoint although metrics.jsonl was deleted;
    # a train line averages the steps since the previous one, so the lines at the signal and at the next
    # multiple of log_every cover fewer steps than the straight run's: every other line is equal
    assert [x for x in strip if x[0] < stopped_at] == [x for x in want if x[0] < stopped_at]
    assert (stopped_at, "train") in [x[:2] for x in strip]
    after = (stopped_at // 5 + 1) * 5
    assert [x for x in strip if x[0] > after] == [x for x in want if x[0] > after]
    events = [(r["event"], r["step"]) for r in _lines(out, "event")]
    assert events == [("preempted", stopped_at), ("resumed", stopped_at)]


class _Killed(Exception):
    pass


def _crash_after(jets: tuple[Path, Path], out: Path, step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    save = train_mod.save_checkpoint

    def save_then_die(path: Path, **kw: object) -> None:
        save(path, **kw)
        if kw["step"] == step:
            raise _Killed

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        _run(jets, out)
    monkeypatch.setattr(train_mod, "save_checkpoint", save)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(jets: tuple[Path, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    straight, out = tmp_path / "straight", tmp_path / "run"
    _run(jets, straight)
    _crash_after(jets, out, 20, monkeypatch)
    newest = out / "checkpoints" / "ckpt_20.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # cut short
    _run(jets, out)
    assert "ckpt_20.pt: unreadable checkpoint" in caplog.text and "trying the previous" in caplog.text
    assert (out / "checkpoints" / "ckpt_20.pt.corrupt").exists()
    assert _equal(out, straight)  # resumed from step 10, bit-exactly
    events = [(r["event"], r["step"]) for r in _lines(out, "event")]
    assert events == [("corrupt_checkpoint", 10), ("resumed", 10)]


def test_no_valid_checkpoint_starts_over_and_says_so(jets: tuple[Path, Path], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    straight, out = tmp_path / "straight", tmp_path / "run"
    _run(jets, straight)
    _crash_after(jets, out, 10, monkeypatch)
    (out / "checkpoints" / "ckpt_10.pt").write_bytes(b"not a checkpoint")
    _run(jets, out)
    assert "no readable checkpoint is left; training starts over" in caplog.text
    assert _equal(out, straight)
    assert [r["event"] for r in _lines(out, "event")] == ["corrupt_checkpoint", "started_over"]


def test_dataloader_workers_give_the_same_weights(jets: tuple[Path, Path], tmp_path: Path) -> None:
    """Streaming (several windows: shuffle_buffer of 60 jets over row groups of 40) with 2 spawned workers
    == in-process reading."""
    _run(jets, tmp_path / "w0", shuffle_buffer=60, max_steps=12)
    _run(jets, tmp_path / "w2", shuffle_buffer=60, max_steps=12, num_workers=2)
    assert _equal(tmp_path / "w0", tmp_path / "w2")


def test_jet_files_skip_hidden_files(tmp_path: Path) -> None:
    pq.write_table(synthetic_jet_table(5), tmp_path / "a.parquet")
    pq.write_table(synthetic_jet_table(5), tmp_path / ".a.parquet.x1y2.parquet")  # an atomic write in flight
    (tmp_path / ".DS_Store.parquet").write_bytes(b"")
    assert jet_files([tmp_path]) == [tmp_path / "a.parquet"]
    (tmp_path / "a.parquet").unlink()
    with pytest.raises(ValueError, match="no .parquet file"):
        jet_files([tmp_path])

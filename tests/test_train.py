"""The training loop, losses, sampling and checkpoints, on in-memory synthetic events (no TFDS reader)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from colliderflow.params import stage_params
from colliderflow.train import data
from colliderflow.train import loop as train_mod
from colliderflow.train.data import synthetic_events
from colliderflow.train.sampling import EpochBatchSampler
from colliderflow.train.losses import LossConfig, focal_loss, mlpf_loss
from colliderflow.models import MLPFOutput, load_trained
from colliderflow.models.mlpf import regression_targets
from colliderflow.schema import PF
from colliderflow.train import train

PARAMS = {
    "model": "mlpf",
    "mlpf": {"embedding_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "dropout": 0.1},
    "batch_size": 8,
    "max_steps": 20,
    "lr": 0.003,
    "weight_decay": 0.01,
    "warmup_steps": 3,
    "grad_clip": 1.0,
    "checkpoint_every": 10,
    "eval_every": 10,
    "device": "cpu",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def datasets(memory_tfds) -> dict[Path, dict[str, list]]:
    for i, sample in enumerate(["ttbar", "qq"]):
        kw = {"sample": sample, "min_elements": 10, "max_elements": 30}
        memory_tfds.add(
            sample,
            train=synthetic_events(40, seed=10 + i, **kw),
            val=synthetic_events(12, seed=20 + i, first_event_id=1000, **kw),
            test=synthetic_events(8, seed=30 + i, first_event_id=2000, **kw),
        )
    return memory_tfds.splits


def _run(dirs: list[Path], out: Path, *, seed: int = 1, weights: Path | None = None, **overrides: object) -> dict:
    return train(tfds_dirs=dirs, weights=weights, params={**PARAMS, **overrides}, seed=seed, output_dir=out)


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "model.pt", weights_only=True)["state_dict"]


def _metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


# ---- losses ---------------------------------------------------------------------------------------


def test_focal_loss_with_gamma_zero_is_cross_entropy() -> None:
    logits, target = torch.randn(50, 6), torch.randint(0, 6, (50,))
    ce = torch.nn.functional.cross_entropy(logits, target)
    torch.testing.assert_close(focal_loss(logits, target, gamma=0.0).mean(), ce)
    assert focal_loss(logits, target, gamma=2.0).mean() < ce  # easy examples down-weighted


def test_regression_and_charge_losses_ignore_non_particles() -> None:
    batch = data.collate_events(synthetic_events(2, seed=0, min_elements=20, max_elements=30))
    shape = batch.mask.shape
    out = MLPFOutput(torch.randn(*shape, 6), torch.randn(*shape, 3), torch.randn(*shape, 5))
    base = mlpf_loss(out, batch.X, batch.ytarget, batch.mask, LossConfig())
    not_particle = ~batch.mask | (batch.ytarget[..., 0] == 0)
    assert not_particle.any() and (~not_particle).any()
    noisy = MLPFOutput(
        out.cls_logits,
        torch.where(not_particle[..., None], torch.randn(*shape, 3) * 100, out.charge_logits),
        torch.where(not_particle[..., None], torch.randn(*shape, 5) * 100, out.regression),
    )
    changed = mlpf_loss(noisy, batch.X, batch.ytarget, batch.mask, LossConfig())
    for key in ("loss_reg", "loss_charge", "loss_cls"):
        torch.testing.assert_close(changed[key], base[key])
    # …while the class loss does see the "none" elements
    cls_noisy = MLPFOutput(torch.where(not_particle[..., None], -out.cls_logits * 10, out.cls_logits), *out[1:])
    assert mlpf_loss(cls_noisy, batch.X, batch.ytarget, batch.mask, LossConfig())["loss_cls"] != base["loss_cls"]


def test_regression_residuals_are_measured_in_the_scale() -> None:
    """A residual of k·scale costs the same whatever the scale: a track's 0.1 % and a cluster's 15 % weigh alike."""
    batch = data.collate_events(synthetic_events(2, seed=0, min_elements=20, max_elements=30))
    shape = batch.mask.shape
    true = regression_targets(batch.X, batch.ytarget)
    logits = MLPFOutput(torch.randn(*shape, 6), torch.randn(*shape, 3), true)[:2]
    losses = []
    for s in (1e-3, 0.2):
        scale = torch.full((*shape, 5), s)
        out = MLPFOutput(*logits, true + 0.5 * scale)  # half a scale off everywhere
        losses.append(mlpf_loss(out, batch.X, batch.ytarget, batch.mask, LossConfig(), scale=scale)["loss_reg"])
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(losses[0], torch.tensor(0.5 * 0.5**2))  # Huber, quadratic inside δ = 1


def test_loss_weights_scale_the_terms() -> None:
    batch = data.collate_events(synthetic_events(2, seed=0, min_elements=20, max_elements=30))
    shape = batch.mask.shape
    out = MLPFOutput(torch.randn(*shape, 6), torch.randn(*shape, 3), torch.randn(*shape, 5))
    terms = mlpf_loss(out, batch.X, batch.ytarget, batch.mask, LossConfig())
    weighted = mlpf_loss(out, batch.X, batch.ytarget, batch.mask,
                         LossConfig(cls_weight=2.0, charge_weight=0.0, reg_weight=0.5))
    torch.testing.assert_close(weighted["loss"], 2.0 * terms["loss_cls"] + 0.5 * terms["loss_reg"])
    torch.testing.assert_close(weighted["loss_cls"], terms["loss_cls"])  # reported unweighted
    with pytest.raises(ValueError, match="train.loss.reg_weight"):
        stage_params(LossConfig, {"reg_weight": -1.0}, where="train.loss")


def test_gev_term_measures_decoded_momenta_in_gev() -> None:
    """loss_gev is the Huber of the decoded particle's pT and E errors in GeV: zero on the targets, the same
    cost for the same GeV error on a small and a large element, and in the total only through gev_weight."""
    batch = data.collate_events(synthetic_events(2, seed=0, min_elements=20, max_elements=30))
    shape = batch.mask.shape
    logits = (torch.randn(*shape, 6), torch.randn(*shape, 3))
    true = regression_targets(batch.X, batch.ytarget)
    exact = mlpf_loss(MLPFOutput(*logits, true), batch.X, batch.ytarget, batch.mask, LossConfig())
    assert float(exact["loss_gev"]) < 1e-6

    # 0.5 GeV too much pT and E on every particle: Huber(0.5) = 0.125 inside δ = 1 GeV, 0.5·0.5 - 0.125 for δ = 0.25
    pt, energy = batch.ytarget[..., PF["pt"]], batch.ytarget[..., PF["energy"]]
    shifted = true.clone()
    shifted[..., 0] = torch.log((pt + 0.5) / batch.X[..., 1].clamp(min=1e-3))
    shifted[..., 4] = torch.log((energy + 0.5) / batch.X[..., 5].clamp(min=1e-3))
    out = MLPFOutput(*logits, shifted)
    terms = mlpf_loss(out, batch.X, batch.ytarget, batch.mask, LossConfig())
    torch.testing.assert_close(terms["loss_gev"], torch.tensor(0.125), atol=1e-4, rtol=1e-4)
    narrow = mlpf_loss(out, batch.X, batch.ytarget, batch.mask, LossConfig(gev_delta=0.25))
    torch.testing.assert_close(narrow["loss_gev"], torch.tensor(0.25 * (0.5 - 0.125)), atol=1e-4, rtol=1e-4)
    weighted = mlpf_loss(out, batch.X, batch.ytarget, batch.mask, LossConfig(gev_weight=3.0))
    torch.testing.assert_close(weighted["loss"], terms["loss"] + 3.0 * terms["loss_gev"])
    with pytest.raises(ValueError, match="train.loss.gev_weight"):
        stage_params(LossConfig, {"gev_weight": -1.0}, where="train.loss")
    with pytest.raises(ValueError, match="gev_delta"):
        stage_params(LossConfig, {"gev_delta": 0.0}, where="train.loss")


def test_loss_config_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="train.loss.classification"):
        stage_params(LossConfig, {"classification": "hinge"}, where="train.loss")
    assert stage_params(LossConfig, {"regression": "mse"}, where="train.loss").regression == "mse"


# ---- sampling --------------------------------------------------------------------------------------


def test_sampler_resumes_mid_epoch_and_respects_weights() -> None:
    weights = torch.tensor([0.0, 1.0] * 15, dtype=torch.float64)  # 30 events, odd ones only
    full = list(EpochBatchSampler(30, batch_size=4, seed=5, weights=weights, num_steps=20))
    tail = list(EpochBatchSampler(30, batch_size=4, seed=5, weights=weights, start_step=9, num_steps=11))
    assert tail == full[9:]  # 7 batches per epoch: step 9 is inside the second epoch
    assert all(i % 2 == 1 for b in full for i in b)
    uniform = list(EpochBatchSampler(30, batch_size=4, seed=5, num_steps=7))
    drawn = [i for b in uniform for i in b]
    assert len(drawn) == len(set(drawn)) == 28  # a permutation: no event twice within an epoch


# ---- the loop --------------------------------------------------------------------------------------


def test_loss_decreases_on_a_learnable_rule(datasets: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = _run(list(datasets), out, max_steps=60, eval_every=60, checkpoint_every=60,
                   mlpf={**PARAMS["mlpf"], "dropout": 0.0})
    lines = _metrics(out)
    first_train = next(r for r in lines if r["split"] == "train")
    vals = [r for r in lines if r["split"] == "val"]
    assert summary["step"] == 60 and vals[-1]["step"] == 60
    assert vals[-1]["loss"] < 0.35 * first_train["loss"]
    assert summary["final_val_loss"] == vals[-1]["loss"]


def test_metrics_lines_have_the_documented_fields(datasets: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(list(datasets), out)
    lines = _metrics(out)
    keys = {"step", "split", "loss", "loss_cls", "loss_charge", "loss_reg", "loss_gev", "lr", "samples_per_s",
            "elapsed_s"}
    assert all(set(r) == keys for r in lines)
    assert [(r["step"], r["split"]) for r in lines] == [(10, "train"), (10, "val"), (20, "train"), (20, "val")]


def test_same_seed_same_weights_other_seed_other_weights(datasets: dict, tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    _run(list(datasets), a, max_steps=8, seed=3)
    _run(list(datasets), b, max_steps=8, seed=3)
    _run(list(datasets), c, max_steps=8, seed=4)
    wa, wb, wc = _weights(a), _weights(b), _weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


class _Killed(Exception):
    pass


def test_resume_continues_exactly(datasets: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2N steps straight == N steps, a crash, then a fresh train() call resuming to 2N (dropout on)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _run(list(datasets), straight)

    save = train_mod.save_checkpoint

    def save_then_die(path: Path, **kw: object) -> None:
        save(path, **kw)
        if kw["step"] == 10:
            raise _Killed

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        _run(list(datasets), resumed)
    assert not (resumed / "model.pt").exists()
    monkeypatch.setattr(train_mod, "save_checkpoint", save)
    with (resumed / "metrics.jsonl").open("a") as fh:  # a line the crashed run wrote after its checkpoint
        fh.write(json.dumps({"step": 11, "split": "train", "loss": 9.9}) + "\n")

    summary = _run(list(datasets), resumed)
    assert summary["step"] == 20
    ws, wr = _weights(straight), _weights(resumed)
    assert all(torch.equal(ws[k], wr[k]) for k in ws)
    def strip(records: list[dict]) -> list[tuple]:
        return [(r["step"], r["split"], r["loss"], r["lr"]) for r in records if r["split"] != "event"]

    assert strip(_metrics(resumed)) == strip(_metrics(straight))
    events = [r for r in _metrics(resumed) if r["split"] == "event"]
    assert [(r["event"], r["step"]) for r in events] == [("resumed", 10)]


def test_checkpoint_and_model_contents(datasets: dict, tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = _run(list(datasets), out)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["ckpt_10.pt", "ckpt_20.pt"]
    ckpt = torch.load(out / "checkpoints" / "ckpt_10.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "step", "sampler", "rng", "params", "seed", "inputs_fingerprint"} <= set(ckpt)
    assert ckpt["step"] == 10 and ckpt["seed"] == 1 and ckpt["params"] == PARAMS
    assert set(ckpt["rng"]) >= {"torch", "numpy", "python"}
    assert ckpt["optimizer"]["state"]  # Adam moments present
    assert ckpt["scheduler"]["last_epoch"] == 10

    model, meta = load_trained(out)
    assert not model.training
    assert meta["param_count"] == summary["param_count"] == sum(p.numel() for p in model.parameters())
    assert meta["model_config"] == {**PARAMS["mlpf"], "link_features": True} and meta["step"] == 20
    assert len(meta["normalisation"]["center"]) == 3
    torch.testing.assert_close(model.normaliser.center, torch.tensor(meta["normalisation"]["center"]))
    # the regression standardisation was fitted on the training targets and travels with the weights
    assert model.regression_center[1:, 0].tolist() == pytest.approx([np.log(0.9)] * 2, abs=1e-5)
    assert (model.regression_scale[1:] < 1e-3).all() and (model.regression_scale[0] == 1).all()

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["stage"] == "train" and prov["seeds"] == {"seed": 1} and prov["param_count"] == summary["param_count"]
    assert prov["inputs"] == sorted(str(d) for d in datasets) and prov["config"] == PARAMS


def test_weighted_sampling_from_parquet(datasets: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # What training draws, and the task whose items the drawn indices are.
    drawn: list[int] = []
    tasks: list = []

    class RecordingSampler(EpochBatchSampler):
        def __iter__(self):
            for batch in super().__iter__():
                drawn.extend(int(i) for i in batch)
                yield batch

    make_task = train_mod.make_task
    monkeypatch.setattr(train_mod, "EpochBatchSampler", RecordingSampler)
    monkeypatch.setattr(train_mod, "make_task", lambda *a, **k: tasks.append(make_task(*a, **k)) or tasks[-1])

    dirs = list(datasets)
    rows = [(ev["sample"], int(ev["event_id"])) for d in dirs for ev in datasets[d]["train"]]
    assert {s for s, _ in rows} - {"qq"}, "the test needs events of another sample than qq"
    path = tmp_path / "weights.parquet"
    pq.write_table(pa.table({"sample": [s for s, _ in rows], "event_id": [e for _, e in rows],
                             "weight": [1.0 if s == "qq" else 0.0 for s, _ in rows]}), path)
    summary = _run(dirs, tmp_path / "run", weights=path, max_steps=4, checkpoint_every=2)
    assert summary["step"] == 4
    # Weight 0 is never drawn: every event of the 4 steps' batches is a qq event.
    samples = np.asarray(tasks[0].sample_keys().samples, dtype=object)
    assert len(drawn) == 4 * PARAMS["batch_size"]
    assert {str(samples[i]) for i in drawn} == {"qq"}
    (tmp_path / "run" / "checkpoints" / "ckpt_4.pt").unlink()  # as if it had stopped at step 2
    assert str(path) in json.loads((tmp_path / "run" / "provenance.json").read_text())["inputs"]

    # New weights for the same config: the unfinished-looking longer run must not resume on old inputs.
    pq.write_table(pa.table({"sample": [s for s, _ in rows], "event_id": [e for _, e in rows],
                             "weight": [1.0] * len(rows)}), path)
    with caplog.at_level(logging.WARNING, logger="colliderflow.train"):
        _run(dirs, tmp_path / "run", weights=path, max_steps=4, checkpoint_every=2)
    assert "input datasets or weights changed" in caplog.text

    pq.write_table(pa.table({"sample": ["qq"], "event_id": [0], "weight": [1.0]}), path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: no weight for 79 of 80")):
        _run(dirs, tmp_path / "run2", weights=path, max_steps=4)


# ---- bad input --------------------------------------------------------------------------------------


def test_missing_tfds_dir_is_a_value_error_naming_it(datasets: dict, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=re.escape(f"{missing}: TFDS directory does not exist")):
        _run([*datasets, missing], tmp_path / "run")


def test_empty_train_split_is_a_value_error_naming_it(datasets: dict, tmp_path: Path) -> None:
    d = next(iter(datasets))
    datasets[d]["train"] = []
    with pytest.raises(ValueError, match=re.escape(f"{d}: split 'train' holds no events")):
        _run(list(datasets), tmp_path / "run")


def test_unknown_train_key_is_a_value_error(datasets: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['epochs'\]"):
        _run(list(datasets), tmp_path / "run", epochs=3)


def test_resume_only_continues_an_unfinished_run_of_the_same_config(
    datasets: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="colliderflow.train")
    out = tmp_path / "run"
    _run(list(datasets), out, max_steps=10)
    # max_steps raised after the run finished: retrained from the start (the schedule depends on
    # max_steps), giving exactly what a fresh run of the new config gives
    _run(list(datasets), out, max_steps=12)
    assert "another seed or train config" in caplog.text and "resumed from" not in caplog.text
    _run(list(datasets), tmp_path / "fresh12", max_steps=12)
    w, fresh = _weights(out), _weights(tmp_path / "fresh12")
    assert all(torch.equal(w[k], fresh[k]) for k in w)
    caplog.clear()

    _run(list(datasets), out, max_steps=12)  # finished: redone from scratch (e.g. after a code change)
    assert "its run finished" in caplog.text and "resumed from" not in caplog.text
    caplog.clear()

    _run(list(datasets), out, max_steps=10, lr=0.01)  # another config: starts over, stale checkpoints go
    assert "another seed or train config" in caplog.text
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["ckpt_10.pt"]
    _run(list(datasets), tmp_path / "fresh", max_steps=10, lr=0.01)
    w, fresh = _weights(out), _weights(tmp_path / "fresh")
    assert all(torch.equal(w[k], fresh[k]) for k in w)

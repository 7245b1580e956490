"""The MLPF model: shapes, masking, equivariance, normalisation, and the target encoding / decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colliderflow.data import ElementNormaliser, collate_events, fit_normalisation, synthetic_events
from colliderflow.models import MLPF, MLPFConfig, MLPFOutput, build_model, count_parameters
from colliderflow.models.mlpf import decode_particles, regression_targets
from colliderflow.schema import N_CLASSES, PF

SMALL = {"embedding_dim": 32, "num_heads": 4, "num_layers": 2, "ff_dim": 48, "dropout": 0.1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return synthetic_events(6, seed=3, min_elements=5, max_elements=40)


@pytest.fixture()
def model(events: list[dict]) -> MLPF:
    torch.manual_seed(0)
    m = build_model({"model": "mlpf", "mlpf": SMALL})
    m.normaliser.set_statistics(fit_normalisation(events))
    return m.eval()


def test_output_shapes(model: MLPF, events: list[dict]) -> None:
    batch = collate_events(events)
    out = model(batch.X, batch.mask)
    b, n = batch.mask.shape
    assert n == max(len(ev["X"]) for ev in events)
    assert out.cls_logits.shape == (b, n, N_CLASSES)
    assert out.charge_logits.shape == (b, n, 3)
    assert out.regression.shape == (b, n, 5)
    assert all(torch.isfinite(t).all() for t in out)


def test_padding_does_not_change_real_outputs(model: MLPF, events: list[dict]) -> None:
    ev = events[0]
    n = len(ev["X"])
    X = torch.from_numpy(ev["X"])[None]  # [1, n, 17]
    alone = model(X, torch.ones(1, n, dtype=torch.bool))

    # 25 padding rows full of garbage: only the mask may keep them out.
    garbage = torch.randn(1, 25, 17) * 100
    garbage[..., 0] = 1.0  # even typed as tracks
    X_pad = torch.cat([X, garbage], dim=1)
    mask = torch.cat([torch.ones(1, n, dtype=torch.bool), torch.zeros(1, 25, dtype=torch.bool)], dim=1)
    padded = model(X_pad, mask)
    for a, p in zip(alone, padded, strict=True):
        torch.testing.assert_close(p[:, :n], a, atol=1e-5, rtol=1e-5)


def test_elements_interact(model: MLPF, events: list[dict]) -> None:
    """Guards the padding test: attention must carry information between real elements."""
    X = torch.from_numpy(events[1]["X"])[None].clone()
    before = model(X).cls_logits[0, 1:]
    X[0, 0, 1:] *= 5.0  # change only element 0
    after = model(X).cls_logits[0, 1:]
    assert not torch.allclose(before, after, atol=1e-4)


def test_permutation_equivariance(model: MLPF, events: list[dict]) -> None:
    X = torch.from_numpy(events[2]["X"])[None]
    perm = torch.randperm(X.shape[1], generator=torch.Generator().manual_seed(1))
    out = model(X)
    out_perm = model(X[:, perm])
    for a, p in zip(out, out_perm, strict=True):
        torch.testing.assert_close(p, a[:, perm], atol=1e-5, rtol=1e-5)


def test_empty_event_gives_finite_outputs_and_gradients(events: list[dict]) -> None:
    torch.manual_seed(0)
    m = build_model({"model": "mlpf", "mlpf": SMALL}).train()
    empty = dict(events[0], X=np.zeros((0, 17), np.float32), ytarget=np.zeros((0, 8), np.float32))
    batch = collate_events([empty, events[1]])
    assert not batch.mask[0].any()
    out = m(batch.X, batch.mask)
    assert all(torch.isfinite(t).all() for t in out)
    sum(t[batch.mask].sum() for t in out).backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_parameter_count_grows_with_size() -> None:
    small = count_parameters(build_model({"model": "mlpf", "mlpf": SMALL}))
    big = count_parameters(build_model({"model": "mlpf", "mlpf": {**SMALL, "num_layers": 3}}))
    assert 0 < small < big


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"model": "gnn"}, "unknown model 'gnn'"),
        ({"model": "mlpf", "mlpf": {**SMALL, "embedding_dim": 30}}, "not divisible"),
        ({"model": "mlpf", "mlpf": {**SMALL, "width": 3}}, r"unknown keys \['width'\]"),
        ({"model": "mlpf", "mlpf": {**SMALL, "num_layers": 0}}, "num_layers"),
    ],
)
def test_bad_model_config_is_a_value_error(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_model(params)


def test_normalisation_is_robust_and_clipped(events: list[dict]) -> None:
    norm = ElementNormaliser()
    norm.set_statistics(fit_normalisation(events))
    X = torch.from_numpy(np.concatenate([ev["X"] for ev in events]))[None]  # [1, n, 17]
    z = norm(X)[0]  # [n, 16]
    tracks = X[0, :, 0] == 1
    track_pt = z[tracks, 0]  # log1p(pT), centred and scaled
    assert abs(track_pt.median().item()) < 0.1
    q25, q75 = torch.quantile(track_pt, torch.tensor([0.25, 0.75]))
    assert (q75 - q25).item() == pytest.approx(1.349, rel=0.1)
    # pT enters as log1p(pT): z is an affine function of it
    log_pt = torch.log1p(X[0, tracks, 1])
    assert np.corrcoef(track_pt.numpy(), log_pt.numpy())[0, 1] > 0.9999
    wild = X[:, :1].clone()
    wild[0, 0, 1] = 1e30  # an absurd pT
    assert norm(wild).abs().max().item() <= 10.0


def test_decode_inverts_the_regression_targets(events: list[dict]) -> None:
    """ypred built from perfect outputs reproduces ytarget: training targets and predict agree."""
    batch = collate_events(events[:2])
    y = batch.ytarget
    cls = y[..., PF["cls_id"]].long()
    charge = y[..., PF["charge"]].long() + 1
    perfect = MLPFOutput(
        cls_logits=torch.nn.functional.one_hot(cls, N_CLASSES).float() * 10,
        charge_logits=torch.nn.functional.one_hot(charge, 3).float() * 10,
        regression=regression_targets(batch.X, y),
    )
    rows = decode_particles(batch.X, perfect)  # [B, N, 8]
    real = batch.mask & (cls > 0)
    torch.testing.assert_close(rows[real][:, :7], y[real][:, :7], atol=1e-4, rtol=1e-4)
    assert (rows[real][:, PF["jet_idx"]] == -1).all()
    none = batch.mask & (cls == 0)
    assert none.any() and (rows[none] == 0).all()


def test_decode_normalises_direction_and_scales_momentum() -> None:
    X = torch.zeros(1, 2, 17)
    X[0, :, 0], X[0, :, 1], X[0, :, 5] = 2.0, 4.0, 8.0  # clusters with ET 4, E 8
    logits = torch.tensor([[[0.0, 5, 0, 0, 0, 0], [5.0, 0, 0, 0, 0, 0]]])  # particle, none
    reg = torch.tensor([[[np.log(0.5), 1.2, 3.0, 4.0, np.log(2.0)]] * 2])
    rows = decode_particles(X, MLPFOutput(logits, torch.tensor([[[0.0, 0, 9], [0, 0, 9]]]), reg))
    np.testing.assert_allclose(rows[0, 0].numpy(), [1, 1, 2.0, 1.2, 0.6, 0.8, 16.0, -1], rtol=1e-5)
    assert (rows[0, 1] == 0).all()


def test_config_round_trip() -> None:
    cfg = MLPFConfig.from_dict(SMALL)
    assert MLPFConfig.from_dict(cfg.to_dict()) == cfg

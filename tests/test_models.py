"""The MLPF model: shapes, masking, equivariance, normalisation, and the target encoding / decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colliderflow.params import stage_params
from colliderflow.models.normalise import ElementNormaliser, fit_normalisation
from colliderflow.train.data import collate_events, synthetic_events
from colliderflow.models import MLPF, MLPFConfig, MLPFOutput, build_model, count_parameters
from colliderflow.models.mlpf import (
    LINK_DR,
    N_LINK_FEATURES,
    decode_particles,
    fit_regression_standardisation,
    link_features,
    proximity_kernels,
    regression_targets,
    track_cluster_distance2,
)
from colliderflow.schema import CLUSTER_FEATURES, N_CLASSES, PF, TRACK_FEATURES

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
        ({"model": "mlpf", "mlpf": {**SMALL, "link_features": "no"}}, "train.mlpf.link_features"),
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


def test_decoded_pt_never_exceeds_the_energy() -> None:
    """pT and E come from separate heads: a log-pT ratio at its bound must not give pT ≫ E."""
    X = torch.zeros(1, 2, 17)
    X[0, :, 0], X[0, :, 1], X[0, :, 5] = 2.0, 16.0, 17.0  # clusters with ET 16, E 17
    logits = torch.tensor([[[0.0, 0, 0, 5, 0, 0]] * 2])  # photons
    reg = torch.tensor([[[10.0, 0.4, 0.6, 0.8, np.log(3.0 / 17.0)], [np.log(0.5), 0.4, 0.6, 0.8, 0.0]]])
    rows = decode_particles(X, MLPFOutput(logits, torch.zeros(1, 2, 3), reg))[0]
    np.testing.assert_allclose(rows[:, 2].numpy(), [3.0, 8.0], rtol=1e-5)  # capped at E = 3; 8 < 17 untouched
    np.testing.assert_allclose(rows[:, 6].numpy(), [3.0, 17.0], rtol=1e-5)


def test_config_round_trip() -> None:
    cfg = stage_params(MLPFConfig, SMALL, where="train.mlpf")
    assert stage_params(MLPFConfig, cfg.to_dict(), where="train.mlpf") == cfg


# ---- track–cluster geometry ------------------------------------------------------------------------

TRK = {name: i for i, name in enumerate(TRACK_FEATURES)}
CLU = {name: i for i, name in enumerate(CLUSTER_FEATURES)}


def _track(*, omega: float, phi0: float, tan_lambda: float) -> np.ndarray:
    """A track row leaving the origin (pT from omega in a 4 T field, as the ntuplizer computes it)."""
    row = np.zeros(17, np.float32)
    pt = 0.299792458e-3 * 4.0 / abs(omega)
    row[0], row[TRK["pt"]], row[TRK["eta"]] = 1, pt, np.arcsinh(tan_lambda)
    row[TRK["sin_phi"]], row[TRK["cos_phi"]], row[TRK["p"]] = np.sin(phi0), np.cos(phi0), pt * np.hypot(1, tan_lambda)
    row[TRK["tanLambda"]], row[TRK["omega"]] = tan_lambda, omega
    return row


def _cluster(x: float, y: float, z: float, energy: float, *, ecal: float = 0.5) -> np.ndarray:
    row = np.zeros(17, np.float32)
    r = np.hypot(x, y)
    row[0], row[CLU["et"]], row[CLU["eta"]] = 2, energy * r / np.hypot(r, z), np.arcsinh(z / r)
    row[CLU["sin_phi"]], row[CLU["cos_phi"]], row[CLU["energy"]] = y / r, x / r, energy
    row[CLU["position.x"]], row[CLU["position.y"]], row[CLU["position.z"]] = x, y, z
    row[CLU["energy_ecal"]], row[CLU["energy_hcal"]] = ecal * energy, (1 - ecal) * energy
    return row


def _on_helix(*, omega: float, phi0: float, tan_lambda: float, s: float) -> tuple[float, float, float]:
    """Where a helix from the origin is after transverse path s; positive omega turns clockwise seen from +z."""
    x = (np.sin(phi0) - np.sin(phi0 - omega * s)) / omega
    y = (np.cos(phi0 - omega * s) - np.cos(phi0)) / omega
    return x, y, tan_lambda * s


def _entry(*, omega: float, phi0: float, tan_lambda: float, radius: float = 1500.0, half_length: float = 2307.0
           ) -> np.ndarray:
    """Where a helix from the origin meets the calorimeter front (barrel cylinder or endcap plane)."""
    x = radius * abs(omega) / 2
    s_barrel = radius * np.arcsin(x) / x if x <= 1 else np.inf
    s_endcap = half_length / abs(tan_lambda) if tan_lambda else np.inf
    return np.array(_on_helix(omega=omega, phi0=phi0, tan_lambda=tan_lambda, s=min(s_barrel, s_endcap)))


@pytest.mark.parametrize("omega", [6e-4, -6e-4, 1e-7])
@pytest.mark.parametrize("tan_lambda", [0.5, 3.0])  # barrel, endcap
def test_a_track_reaches_the_cluster_behind_its_entry_point(omega: float, tan_lambda: float) -> None:
    """A 2 GeV track bends by ~0.45 rad before 1.5 m; its shower develops along the line from the origin
    through its entry point (as the simulation draws it), so the cluster deeper on that line is the match:
    neither the one straight ahead of the vertex nor the one where the helix would be at the cluster's depth."""
    helix = {"omega": omega, "phi0": 0.3, "tan_lambda": tan_lambda}
    entry = _entry(**helix)
    deep = 1.3 * entry  # 30 % deeper, on the ray from the origin through the entry point
    straight = np.linalg.norm(entry) * np.array([np.cos(0.3), np.sin(0.3), tan_lambda]) / np.hypot(1, tan_lambda)
    s_deep = np.hypot(deep[0], deep[1])  # a path a bit longer than the helix would need to reach that radius
    bent_on = _on_helix(**helix, s=1.3 * s_deep if tan_lambda < 1 else deep[2] / tan_lambda)
    X = torch.from_numpy(np.stack([_track(**helix), _cluster(*deep, 2.0), _cluster(*straight, 2.0),
                                   _cluster(*bent_on, 2.0)]).astype(np.float32))[None]
    d2 = track_cluster_distance2(X, torch.ones(1, 4, dtype=torch.bool))[0]
    assert d2[0, 1].sqrt() < 1e-3  # the cluster behind the entry point
    if abs(omega) > 1e-5:
        assert d2[0, 2].sqrt() > 0.05  # not the one straight ahead
        assert d2[0, 3].sqrt() > 0.015  # nor the helix continued into the calorimeter
    # Only (track, cluster) pairs are near; the reverse direction and cluster pairs are far.
    assert (d2[1:] > 1.0).all() and (d2[:, 0] > 1.0).all()


def test_a_looper_reaches_no_cluster() -> None:
    """A 0.2 GeV track curls up within 1 m: it cannot link to a calorimeter cluster in any direction."""
    looper = _track(omega=6e-3, phi0=0.0, tan_lambda=0.1)
    X = torch.from_numpy(np.stack([looper, _cluster(1500.0, 0.0, 0.0, 1.0), _cluster(0.0, -1500.0, 0.0, 1.0)]))[None]
    d2 = track_cluster_distance2(X, torch.ones(1, 3, dtype=torch.bool))[0]
    assert (d2[0] > 1.0).all()


def test_link_features_tell_a_charged_deposit_from_a_neutral_cluster() -> None:
    """A cluster holding its track's momentum has nothing left over; an unlinked one keeps all its energy."""
    helix = {"omega": 1.2e-4, "phi0": 1.0, "tan_lambda": 0.0}  # 10 GeV
    track = _track(**helix)
    deposit = _cluster(*_on_helix(**helix, s=1600.0), 10.0)
    neutral = _cluster(-1600.0, 0.0, 0.0, 10.0)
    X = torch.from_numpy(np.stack([track, deposit, neutral]))[None]
    mask = torch.ones(1, 3, dtype=torch.bool)
    d2 = track_cluster_distance2(X, mask)
    feats = link_features(X, mask, proximity_kernels(d2), d2)[0]  # [3, F]
    assert feats.shape == (3, N_LINK_FEATURES) and torch.isfinite(feats).all()
    n_linked, ratio, remainder = feats[:, -5], feats[:, -4], feats[:, -3]
    assert n_linked[0] > 0 and n_linked[1] > 0 and n_linked[2] == 0
    assert remainder[1] < -3 and abs(remainder[2]) < 0.01  # log of the fraction of E left after Σp
    assert ratio[0] == ratio[1]  # the track carries its cluster's E/p
    assert d2[0, 0, 1].sqrt() < LINK_DR


def test_untrained_model_reproduces_the_elements(events: list[dict]) -> None:
    """The regression heads start at zero: kinematics are the element's plus the fitted median correction."""
    torch.manual_seed(0)
    m = build_model({"model": "mlpf", "mlpf": SMALL}).eval()
    center, scale = fit_regression_standardisation(events)
    m.set_regression_standardisation(center, scale)
    batch = collate_events(events[:2])
    with torch.no_grad():
        reg = m(batch.X, batch.mask).regression
    etype = batch.X[..., 0].long()
    expected = torch.cat([torch.zeros_like(batch.X[..., :1]), batch.X[..., 2:5], torch.zeros_like(batch.X[..., :1])],
                         dim=-1) + torch.from_numpy(center)[etype]
    torch.testing.assert_close(reg[batch.mask], expected[batch.mask])


def test_regression_standardisation_is_the_median_and_spread_of_the_residuals(events: list[dict]) -> None:
    center, scale = fit_regression_standardisation(events)
    assert center.shape == scale.shape == (3, 5)
    assert (center[0] == 0).all() and (scale[0] == 1).all()  # padding
    # synthetic_events: target pT and E are 0.9 and 0.95 of the element's, the direction is the element's
    np.testing.assert_allclose(center[1:, 0], np.log(0.9), atol=1e-5)
    np.testing.assert_allclose(center[1:, 4], np.log(0.95), atol=1e-5)
    np.testing.assert_allclose(center[1:, 1:4], 0.0, atol=1e-5)
    assert (scale[1:] > 0).all() and (scale[1:] < 1e-3).all()  # no spread: the floor
    assert fit_regression_standardisation([])[1].tolist() == np.ones((3, 5)).tolist()


def test_decode_gives_each_class_a_charge_it_allows() -> None:
    X = torch.zeros(1, 4, 17)
    X[0, :, 0], X[0, :, 1], X[0, :, 4], X[0, :, 5] = 2.0, 4.0, 1.0, 8.0
    cls = torch.tensor([1, 3, 4, 2])  # charged hadron, photon, electron, neutral hadron
    logits = torch.nn.functional.one_hot(cls, N_CLASSES).float()[None] * 9
    charge_logits = torch.tensor([[[0.0, 5.0, 1.0], [0.0, 0.0, 5.0], [2.0, 5.0, 0.0], [5.0, 0.0, 0.0]]])
    rows = decode_particles(X, MLPFOutput(logits, charge_logits, torch.zeros(1, 4, 5)))[0]
    assert rows[:, PF["charge"]].tolist() == [1.0, 0.0, -1.0, 0.0]


def test_without_link_features_the_model_sees_only_the_elements(events: list[dict]) -> None:
    """`link_features: false` drops the physics-informed track–cluster features from every input.

    With them, moving a track changes a cluster's encoder input (its link features); without them the
    cluster's input is its own normalised features only, so only attention can relate the two.
    """
    torch.manual_seed(0)
    plain = build_model({"model": "mlpf", "mlpf": {**SMALL, "link_features": False}})
    linked = build_model({"model": "mlpf", "mlpf": SMALL})
    for m in (plain, linked):
        m.normaliser.set_statistics(fit_normalisation(events))
        m.eval()
    assert plain.encode_cluster.net[0].in_features + N_LINK_FEATURES == linked.encode_cluster.net[0].in_features
    batch = collate_events(events)
    X, mask = batch.X, batch.mask
    z, feats = plain.element_features(X, mask)
    assert torch.equal(z, feats)
    out = plain(X, mask)
    assert out.cls_logits.shape[:2] == X.shape[:2]
    assert count_parameters(plain) < count_parameters(linked)

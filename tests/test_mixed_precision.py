"""Mixed precision: under bf16 autocast (CPU here, the same op lists decide on a GPU) the numerically sensitive
steps of every model run in float32, and each model's outputs stay close to its float32 outputs.

"Close" is measured against what the outputs carry: the error divided by the spread of the float32 outputs
over the jets (events) of the batch. bf16 matmuls give a few percent of that spread; a physics input computed
in bf16 (PELICAN's Minkowski products before they were kept in float32) gave tens of percent.
"""

from __future__ import annotations

import math

import pytest
import torch

from colliderflow.models.normalise import fit_normalisation
from colliderflow.synthetic import synthetic_events
from colliderflow.train.data import collate_events
from colliderflow.models import build_model
from colliderflow.models.mlpf import link_features, proximity_kernels, track_cluster_distance2
from colliderflow.models.part import pair_features
from colliderflow.models.pelican import minkowski_dots

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The tagger sizes of config/config.yaml, and a small MLPF.
SIZES = {
    "part": {"num_features": 17, "num_classes": 3, "embedding_dim": 32, "embed_hidden": 64, "num_heads": 4,
             "num_layers": 2, "num_cls_layers": 1, "ff_dim": 64, "pair_hidden": 16, "dropout": 0.0},
    "pelican": {"num_classes": 3, "embed_channels": 8, "hidden_channels": 16, "num_layers": 2, "readout_hidden": 32},
    "mlpf": {"embedding_dim": 64, "num_heads": 4, "num_layers": 2, "ff_dim": 128, "dropout": 0.0},
}
# Error bounds, as fractions of the spread of the float32 outputs over the batch: mean and worst element.
MEAN_TOLERANCE = 0.1
MAX_TOLERANCE = 0.4
# PELICAN's outputs for a boosted copy of the jets, both under autocast (bf16 Minkowski products: 0.17 / 1.3).
BOOST_MEAN_TOLERANCE = 0.02
BOOST_MAX_TOLERANCE = 0.3


# The whole-model checks also run under CUDA autocast where there is a GPU (benchmarks/bench_gpu.sh runs them).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="needs a CUDA device"))]


def bf16(device_type: str = "cpu") -> torch.autocast:
    return torch.autocast(device_type, dtype=torch.bfloat16)


def boosted_jets(batch: int, length: int, seed: int, *, jet_pt: float = 500.0
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features [B, N, 17], four-momenta [B, N, 4] (px, py, pz, E) in GeV and mask [B, N] of jets like
    the taggers see: pT fractions of a `jet_pt` GeV jet, constituents within ΔR ~ 0.2 of an axis at
    |η| < 2, so that many pairs are nearly collinear. Padding after a random number of constituents."""
    gen = torch.Generator().manual_seed(seed)
    eta0 = torch.rand(batch, 1, generator=gen) * 4 - 2
    phi0 = torch.rand(batch, 1, generator=gen) * 2 * math.pi - math.pi
    frac = -torch.log(torch.rand(batch, length, generator=gen)) ** 2  # heavy-tailed momentum sharing
    pt = jet_pt * frac / frac.sum(dim=1, keepdim=True) + 0.5
    eta = eta0 + 0.15 * torch.randn(batch, length, generator=gen)
    phi = phi0 + 0.15 * torch.randn(batch, length, generator=gen)
    p4 = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], -1)
    n_real = torch.randint(length // 2, length + 1, (batch,), generator=gen)
    mask = torch.arange(length)[None, :] < n_real[:, None]
    features = torch.randn(batch, length, 17, generator=gen)
    return torch.where(mask[..., None], features, 0.0), torch.where(mask[..., None], p4, 0.0), mask


def _tagger(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({"model": name, name: SIZES[name]}).eval()


def _mlpf_case() -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    events = synthetic_events(16, seed=3, min_elements=20, max_elements=120)
    torch.manual_seed(0)
    model = build_model({"model": "mlpf", "mlpf": SIZES["mlpf"]})
    model.normaliser.set_statistics(fit_normalisation(events))
    for head in (model.head_pt, model.head_eta, model.head_phi, model.head_energy):
        torch.nn.init.normal_(head.net[-1].weight, std=0.1)  # trained heads are not zero: make them matter
    batch = collate_events(events)
    return model.eval(), (batch.X, batch.mask)


def error_over_spread(low: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[float, float]:
    """(mean, max) of |low − ref| over the standard deviation of ref around its batch mean (real rows only)."""
    low, ref = low.float(), ref.float()
    if mask is not None:  # per-element outputs [B, N, C]: the real elements
        low, ref = low[mask], ref[mask]
    spread = (ref - ref.mean(dim=0)).std()
    err = (low - ref).abs()
    return float(err.mean() / spread), float(err.max() / spread)


def _outputs(model: torch.nn.Module, args: tuple[torch.Tensor, ...], device: str = "cpu"
             ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The model's float32 outputs and its outputs under bf16 autocast, both computed on `device`, on the CPU."""
    model = model.to(device)
    args = tuple(a.to(device) for a in args)
    with torch.no_grad():
        ref = model(*args)
        with bf16(device):
            low = model(*args)
    as_list = (lambda out: [t.cpu() for t in out] if isinstance(out, tuple) else [out.cpu()])
    return as_list(ref), as_list(low)


# --- the sensitive steps themselves -----------------------------------------------------------------


def _collinear_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of massless 100 GeV constituents at small opening angles (the issue's d = 20.36 GeV² is
    θ ≈ 0.0638), as p4 [P, 2, 4] float32, and their exact products 2·E²·sin²(θ/2) [P] in float64."""
    theta = torch.tensor([0.01, 0.03, 0.0638, 0.0727, 0.1, 0.2], dtype=torch.float64)
    e = 100.0
    first = torch.tensor([0.0, e, 0.0, e], dtype=torch.float64).expand(len(theta), 4)
    second = torch.stack([torch.zeros_like(theta), e * torch.cos(theta), e * torch.sin(theta),
                          torch.full_like(theta, e)], dim=-1)
    exact = 2 * e * e * torch.sin(theta / 2) ** 2
    return torch.stack([first, second], dim=1).float(), exact


def test_minkowski_product_of_collinear_constituents_under_autocast() -> None:
    p4, exact = _collinear_pairs()
    assert 20.0 < float(exact[2]) < 20.7  # the issue's example pair
    with bf16():
        d = minkowski_dots(p4)  # [P, 2, 2]
    assert d.dtype == torch.float32
    torch.testing.assert_close(d[:, 0, 1].double(), exact, rtol=2e-3, atol=0.02)
    torch.testing.assert_close(d, minkowski_dots(p4), rtol=0, atol=0)  # the float32 result, bit for bit


def test_pair_features_under_autocast_are_the_float32_ones() -> None:
    _, p4, _ = boosted_jets(4, 24, seed=1)
    with bf16():
        low = pair_features(p4)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, pair_features(p4), rtol=0, atol=0)


def test_mlpf_element_features_under_autocast_are_the_float32_ones() -> None:
    model, (X, mask) = _mlpf_case()

    def features() -> torch.Tensor:
        dist2 = track_cluster_distance2(X, mask)
        return link_features(X, mask, proximity_kernels(dist2), dist2)

    with torch.no_grad():
        ref = features()
        with bf16():
            low = features()
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=0, atol=0)  # bf16 proximity sums: off by up to 0.1
    with torch.no_grad():
        z_ref, feats_ref = model.element_features(X, mask)
        with bf16():
            z_low, feats_low = model.element_features(X, mask)
    for a, b in ((z_low, z_ref), (feats_low, feats_ref)):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bf16_inputs_are_raised_to_float32() -> None:
    p4, exact = _collinear_pairs()
    d = minkowski_dots(p4.double().bfloat16())  # the inputs' own rounding stays; no further loss
    assert d.dtype == torch.float32
    torch.testing.assert_close(d, minkowski_dots(p4.bfloat16().float()), rtol=0, atol=0)


# --- whole models ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [1, 2])
def test_pelican_under_autocast_is_close_to_float32(seed: int, device: str) -> None:
    model = _tagger("pelican")
    _, p4, mask = boosted_jets(32, 48, seed)
    (ref,), (low,) = _outputs(model, (p4, mask), device)
    mean, worst = error_over_spread(low, ref)
    assert mean < MEAN_TOLERANCE and worst < MAX_TOLERANCE, (mean, worst)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [1, 2])
def test_part_under_autocast_is_close_to_float32(seed: int, device: str) -> None:
    model = _tagger("part")
    features, p4, mask = boosted_jets(32, 48, seed)
    (ref,), (low,) = _outputs(model, (features, p4, mask), device)
    mean, worst = error_over_spread(low, ref)
    assert mean < MEAN_TOLERANCE and worst < MAX_TOLERANCE, (mean, worst)


@pytest.mark.parametrize("device", DEVICES)
def test_mlpf_under_autocast_is_close_to_float32(device: str) -> None:
    model, (X, mask) = _mlpf_case()
    ref, low = _outputs(model, (X, mask), device)
    for name, r, lo in zip(("cls_logits", "charge_logits", "regression"), ref, low, strict=True):
        mean, worst = error_over_spread(lo, r, mask)
        assert mean < MEAN_TOLERANCE and worst < MAX_TOLERANCE, (name, mean, worst)
    assert low[2].dtype == torch.float32  # the regression is composed in float32


def _boost(rapidity: float, axis: int) -> torch.Tensor:
    """The 4×4 boost along spatial `axis` (0, 1, 2) acting on (px, py, pz, E) row vectors."""
    m = torch.eye(4, dtype=torch.float64)
    ch, sh = math.cosh(rapidity), math.sinh(rapidity)
    m[axis, axis], m[axis, 3], m[3, axis], m[3, 3] = ch, sh, sh, ch
    return m


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("rapidity", "axis"), [(0.5, 2), (-0.8, 0)])
def test_pelican_is_boost_invariant_under_autocast(rapidity: float, axis: int, device: str) -> None:
    model = _tagger("pelican").to(device)
    _, p4, mask = boosted_jets(32, 48, seed=3)
    boosted = (p4.double() @ _boost(rapidity, axis)).float().to(device)
    p4, mask = p4.to(device), mask.to(device)
    with torch.no_grad():
        ref = model(p4, mask).cpu()
        with bf16(device):
            low, low_boosted = model(p4, mask).cpu(), model(boosted, mask).cpu()
    mean, worst = error_over_spread(low_boosted, low)
    assert mean < BOOST_MEAN_TOLERANCE and worst < BOOST_MAX_TOLERANCE, (mean, worst)
    mean, worst = error_over_spread(low_boosted, ref)
    assert mean < MEAN_TOLERANCE and worst < MAX_TOLERANCE, (mean, worst)


@pytest.mark.parametrize("name", ["part", "pelican"])
def test_a_training_step_under_autocast_gives_finite_float32_gradients(name: str) -> None:
    model = _tagger(name).train()
    features, p4, mask = boosted_jets(8, 16, seed=4)
    args = (features, p4, mask) if name == "part" else (p4, mask)
    with bf16():
        loss = torch.nn.functional.cross_entropy(model(*args).float(), torch.arange(8) % 3)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)

"""ParT: shapes, pairwise features, permutation invariance, padding, the class token and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from colliderflow.params import stage_params
from colliderflow.models import ParT, ParTConfig, build_model, count_parameters
from colliderflow.models.part import pair_features

SMALL = {"num_features": 7, "num_classes": 3, "embedding_dim": 16, "embed_hidden": 32, "num_heads": 2,
         "num_layers": 2, "num_cls_layers": 1, "ff_dim": 32, "pair_hidden": 8, "dropout": 0.0}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    pt = torch.exp(torch.rand(batch, length, generator=gen, dtype=torch.float64) * 4)
    eta = torch.randn(batch, length, generator=gen, dtype=torch.float64) * 0.3
    phi = torch.randn(batch, length, generator=gen, dtype=torch.float64) * 0.3
    p4 = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], -1)
    n_real = torch.randint(2, length + 1, (batch,), generator=gen)
    n_real[0] = length
    mask = torch.arange(length)[None, :] < n_real[:, None]
    features = torch.randn(batch, length, SMALL["num_features"], generator=gen, dtype=torch.float64)
    return torch.where(mask[..., None], features, 0.0), torch.where(mask[..., None], p4, 0.0), mask


@pytest.fixture(scope="module")
def model() -> ParT:
    torch.manual_seed(0)
    return build_model({"model": "part", "part": SMALL}).double().eval()


def test_pair_features_of_a_known_pair() -> None:
    # Two massless particles of pT 10 and 30 at η = 0, Δφ = 0.5.
    pts, phis = [10.0, 30.0], [0.0, 0.5]
    p4 = torch.tensor([[[pt * math.cos(f), pt * math.sin(f), 0.0, pt] for pt, f in zip(pts, phis)]],
                      dtype=torch.float64)
    f = pair_features(p4)[0, 0, 1]  # (ln kT, ln z, ln ΔR, ln m²)
    m2 = 2 * 10 * 30 * (1 - math.cos(0.5))
    expected = torch.tensor([math.log(10 * 0.5), math.log(10 / 40), math.log(0.5), math.log(m2)], dtype=torch.float64)
    torch.testing.assert_close(f, expected)
    torch.testing.assert_close(pair_features(p4)[0, 1, 0], f)  # symmetric


def test_output_shape_and_parameter_count(model: ParT) -> None:
    features, p4, mask = _inputs(4, 9, 0)
    assert model(features, p4, mask).shape == (4, SMALL["num_classes"])
    assert count_parameters(build_model({"model": "part"})) > 1_000_000  # published size by default


def test_permutation_invariant(model: ParT) -> None:
    features, p4, mask = _inputs(1, 10, 1)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(model(features[:, perm], p4[:, perm], mask[:, perm]), model(features, p4, mask))


def test_padding_does_not_change_outputs(model: ParT) -> None:
    features, p4, mask = _inputs(3, 8, 2)
    pad = 6
    f_pad = torch.cat([features, torch.randn(3, pad, SMALL["num_features"], dtype=torch.float64)], dim=1)
    p_pad = torch.cat([p4, torch.rand(3, pad, 4, dtype=torch.float64) * 50], dim=1)  # garbage in the padding
    m_pad = torch.cat([mask, torch.zeros(3, pad, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(f_pad, p_pad, m_pad), model(features, p4, mask))


def test_pair_bias_matters(model: ParT) -> None:
    """Same features, other momenta: the logits change only through the pairwise attention bias."""
    features, p4, mask = _inputs(2, 8, 4)
    _, other, _ = _inputs(2, 8, 5)
    assert not torch.allclose(model(features, p4, mask), model(features, other, mask))


def test_jet_without_particles_gives_finite_logits_and_gradients() -> None:
    torch.manual_seed(0)
    m = build_model({"model": "part", "part": SMALL})
    features, p4, mask = (t.float() if t.is_floating_point() else t for t in _inputs(2, 5, 6))
    mask[1] = False
    logits = m(features, p4, mask)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="tagger.part: unknown keys"):
        stage_params(ParTConfig, {"depth": 3}, where="tagger.part")
    with pytest.raises(ValueError, match="not divisible"):
        stage_params(ParTConfig, {"embedding_dim": 10, "num_heads": 4}, where="tagger.part")

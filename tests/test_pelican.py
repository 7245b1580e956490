"""PELICAN: exact Lorentz and permutation invariance, blindness to padding, config validation."""

from __future__ import annotations

import math

import pytest
import torch

from colliderflow.params import stage_params
from colliderflow.models import PELICAN, PELICANConfig, build_model
from colliderflow.models.pelican import minkowski_dots

SMALL = {"num_classes": 4, "embed_channels": 4, "hidden_channels": 8, "num_layers": 2, "readout_hidden": 16,
         "n_avg": 10.0}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _jets(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Massive constituents (px, py, pz, E) in float64, with padding in all rows but the first."""
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(batch, length, 3, generator=gen, dtype=torch.float64) * 20
    e = torch.sqrt((p**2).sum(-1) + 0.14**2)
    n_real = torch.randint(2, length + 1, (batch,), generator=gen)
    n_real[0] = length
    mask = torch.arange(length)[None, :] < n_real[:, None]
    p4 = torch.where(mask[..., None], torch.cat([p, e[..., None]], dim=-1), 0.0)
    return p4, mask


def _boost_z(rapidity: float) -> torch.Tensor:
    ch, sh = math.cosh(rapidity), math.sinh(rapidity)
    m = torch.eye(4, dtype=torch.float64)
    m[2, 2], m[2, 3], m[3, 2], m[3, 3] = ch, sh, sh, ch  # acts on (pz, E)
    return m


def _random_lorentz(seed: int) -> torch.Tensor:
    """Rotation · boost along z · rotation, boost rapidity up to 2: a generic proper Lorentz transform."""
    gen = torch.Generator().manual_seed(seed)

    def rotation() -> torch.Tensor:
        q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.det(q))
        m = torch.eye(4, dtype=torch.float64)
        m[:3, :3] = q
        return m

    rapidity = float(torch.empty(1, dtype=torch.float64).uniform_(1.0, 2.0, generator=gen))
    return rotation() @ _boost_z(rapidity) @ rotation()


@pytest.fixture(scope="module")
def model() -> PELICAN:
    torch.manual_seed(0)
    return build_model({"model": "pelican", "pelican": SMALL}).double().eval()


def test_transform_preserves_the_metric() -> None:
    L = _random_lorentz(3)
    g = torch.diag(torch.tensor([-1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(L.T @ g @ L, g)
    assert L[3, 3] > math.cosh(0.9)  # a real boost, not just a rotation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outputs_are_lorentz_invariant(model: PELICAN, seed: int) -> None:
    p4, mask = _jets(3, 12, seed)
    L = _random_lorentz(seed)
    boosted = p4 @ L.T  # every constituent transformed; padding stays zero
    assert not torch.allclose(boosted, p4)
    torch.testing.assert_close(minkowski_dots(boosted), minkowski_dots(p4), rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(model(boosted, mask), model(p4, mask), rtol=1e-9, atol=1e-9)


def test_outputs_are_permutation_invariant(model: PELICAN) -> None:
    p4, mask = _jets(2, 10, 5)
    n = int(mask[1].sum())
    perm = torch.arange(10)
    perm[:n] = torch.randperm(n, generator=torch.Generator().manual_seed(1))
    p4_perm = p4.clone()
    p4_perm[1] = p4[1, perm]
    full = torch.randperm(10, generator=torch.Generator().manual_seed(2))
    p4_perm[0] = p4[0, full]  # row 0 has no padding: any permutation
    torch.testing.assert_close(model(p4_perm, mask), model(p4, mask), rtol=1e-10, atol=1e-10)


def test_padding_does_not_change_outputs(model: PELICAN) -> None:
    p4, mask = _jets(3, 8, 7)
    padded = torch.cat([p4, torch.randn(3, 5, 4, dtype=torch.float64)], dim=1)  # garbage in the padding
    padded_mask = torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(model(padded, padded_mask), model(p4, mask), rtol=1e-10, atol=1e-10)


def test_outputs_depend_on_the_jet(model: PELICAN) -> None:
    p4, mask = _jets(2, 8, 9)
    other, _ = _jets(2, 8, 10)
    assert not torch.allclose(model(p4, mask), model(other, mask))


def test_float32_is_close_to_float64(model: PELICAN) -> None:
    p4, mask = _jets(2, 16, 11)
    single = build_model({"model": "pelican", "pelican": SMALL}).eval()
    single.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    torch.testing.assert_close(single(p4.float(), mask).double(), model(p4, mask), rtol=1e-4, atol=1e-4)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="tagger.pelican: unknown keys"):
        stage_params(PELICANConfig, {"width": 3}, where="tagger.pelican")
    with pytest.raises(ValueError, match="hidden_channels"):
        stage_params(PELICANConfig, {"hidden_channels": 0}, where="tagger.pelican")

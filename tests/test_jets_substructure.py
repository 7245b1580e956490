"""Soft-drop mass and N-subjettiness: hand-made jets with known answers, FastJet as the reference."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from colliderflow.ntuplize.jet_substructure import SubstructureParams, jet_substructure

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXAMPLE = DATA / "jetclass2" / "JetClassII_example.parquet"
R0 = 0.8


def massless(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, ...]:
    pt, eta, phi = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (pt, eta, phi))
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), pt * np.cosh(eta)


def mass_of(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray) -> float:
    return float(np.sqrt(max(e.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2, 0.0)))


def one_jet(px: np.ndarray, py: np.ndarray, pz: np.ndarray, e: np.ndarray, **kw: object) -> dict[str, np.ndarray]:
    return jet_substructure(px, py, pz, e, np.array([len(px)]), SubstructureParams(**kw))


def tau_with_axes(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, axes: list[tuple[float, float]]) -> float:
    """τ_N (β = 1) of massless particles for given axes, straight from the definition."""
    ax = np.asarray(axes)
    dphi = (phi[:, None] - ax[None, :, 1] + np.pi) % (2 * np.pi) - np.pi
    dr = np.hypot(eta[:, None] - ax[None, :, 0], dphi)
    return float(np.sum(pt * dr.min(axis=1)) / (pt.sum() * R0))


@pytest.mark.parametrize("axes", ["KT_Axes", "OnePass_KT_Axes"])
def test_single_massless_particle_has_no_mass_and_no_substructure(axes: str) -> None:
    out = one_jet(*massless(500.0, 0.3, 1.0), tau_axes=axes)
    assert out["sdmass"][0] == pytest.approx(0.0, abs=1e-3)  # √(E² − p²) of a 500 GeV particle: rounding only
    assert np.all(out["tau"][0] == 0.0)


@pytest.mark.parametrize("axes", ["KT_Axes", "OnePass_KT_Axes"])
def test_two_equal_particles_give_the_analytic_tau1_and_full_mass(axes: str) -> None:
    half = 0.2
    vectors = massless([300.0, 300.0], [half, -half], [0.7, 0.7])
    out = one_jet(*vectors, tau_axes=axes)
    # The axis sits midway (and any point between them is a minimum): each particle is ΔR = half away.
    assert out["tau"][0, 0] == pytest.approx(half / R0, rel=1e-6)
    assert np.all(out["tau"][0, 1:] == 0.0)
    assert out["sdmass"][0] == pytest.approx(mass_of(*vectors), rel=1e-9)


def _hard_prong_plus_soft(z: float, dr: float) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    hard_pt = np.array([400.0, 200.0])
    soft_pt = z / (1 - z) * hard_pt.sum()
    hard = massless(hard_pt, [0.0, 0.04], [0.0, 0.03])
    soft = massless(soft_pt, dr, 0.0)
    both = tuple(np.concatenate([h, s]) for h, s in zip(hard, soft, strict=True))
    return hard, both


def test_soft_drop_removes_a_soft_wide_prong_and_keeps_a_hard_one() -> None:
    hard, jet = _hard_prong_plus_soft(z=0.05, dr=0.5)
    assert one_jet(*jet)["sdmass"][0] == pytest.approx(mass_of(*hard), rel=1e-9)
    assert mass_of(*jet) > 2 * mass_of(*hard)  # the groomed prong made a real difference
    _, jet = _hard_prong_plus_soft(z=0.3, dr=0.5)
    assert one_jet(*jet)["sdmass"][0] == pytest.approx(mass_of(*jet), rel=1e-9)


def test_soft_drop_beta_makes_the_cut_angle_dependent() -> None:
    # z = 0.05 passes z_cut·(ΔR/R0)^β only when the prong is close enough: 0.1·0.3/0.8 = 0.0375 < 0.05.
    hard, wide = _hard_prong_plus_soft(z=0.05, dr=0.5)
    _, close = _hard_prong_plus_soft(z=0.05, dr=0.3)
    assert one_jet(*wide, softdrop_beta=1.0)["sdmass"][0] == pytest.approx(mass_of(*hard), rel=1e-9)
    assert one_jet(*close, softdrop_beta=1.0)["sdmass"][0] == pytest.approx(mass_of(*close), rel=1e-9)


def test_two_prong_jet_has_small_tau21_and_a_one_prong_jet_does_not() -> None:
    centres = [(0.0, 0.0), (0.25, 0.4)]
    offsets = [(0.0, 0.0), (0.02, -0.01), (-0.015, 0.02)]
    eta = np.array([c[0] + o[0] for c in centres for o in offsets])
    phi = np.array([c[1] + o[1] for c in centres for o in offsets])
    pt = np.array([300.0, 60.0, 40.0, 250.0, 50.0, 30.0])
    two = one_jet(*massless(pt, eta, phi))["tau"][0]
    assert two[1] / two[0] < 0.1
    # Each prong's hardest particle outweighs the rest of its prong, so axes on those two particles
    # are the exact minimum of τ_2; the one-pass minimisation reaches it to its accuracy (1e-4 in ΔR).
    best = tau_with_axes(pt, eta, phi, centres)
    assert best - 1e-12 <= two[1] <= best + 1e-4

    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ring = one_jet(*massless(np.full(12, 50.0), 0.2 * np.cos(angles), 0.2 * np.sin(angles)))["tau"][0]
    assert ring[0] == pytest.approx(0.2 / R0, rel=1e-3)
    assert ring[1] / ring[0] > 0.4


def _random_jets(n_jets: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    counts = np.concatenate([[0, 1, 2, 3, 4, 5], rng.integers(6, 90, n_jets - 6)])
    n = counts.sum()
    jet_eta = np.repeat(rng.uniform(-2, 2, n_jets), counts)
    jet_phi = np.repeat(rng.uniform(-np.pi, np.pi, n_jets), counts)
    pt = rng.exponential(20.0, n) + 0.5
    eta = jet_eta + rng.normal(0, 0.25, n)
    phi = jet_phi + rng.normal(0, 0.25, n)
    mass = rng.choice([0.0, 0.13957], n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2), counts


def test_numba_kernels_agree_with_fastjet_and_fjcontrib() -> None:
    px, py, pz, e, counts = _random_jets(300, seed=7)
    for axes in ("KT_Axes", "OnePass_KT_Axes"):
        ours = jet_substructure(px, py, pz, e, counts, SubstructureParams(tau_axes=axes))
        ref = jet_substructure(px, py, pz, e, counts, SubstructureParams(tau_axes=axes, backend="fastjet"))
        np.testing.assert_allclose(ours["sdmass"], ref["sdmass"], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ours["tau"], ref["tau"], rtol=1e-9, atol=1e-9)
    assert np.all(ours["sdmass"][:1] == 0) and np.all(ours["tau"][:2] == 0)  # empty and 1-particle jets


def test_soft_drop_mass_never_exceeds_the_jet_mass_and_taus_fall_with_n() -> None:
    px, py, pz, e, counts = _random_jets(200, seed=11)
    out = jet_substructure(px, py, pz, e, counts)
    jet = np.repeat(np.arange(len(counts)), counts)
    sums = [np.bincount(jet, weights=v, minlength=len(counts)) for v in (px, py, pz, e)]
    mass = np.sqrt(np.maximum(sums[3] ** 2 - sums[0] ** 2 - sums[1] ** 2 - sums[2] ** 2, 0))
    assert np.all(out["sdmass"] <= mass * (1 + 1e-9) + 1e-9)
    assert np.all(out["tau"] >= 0)
    assert np.all(out["tau"][:, 1:] <= out["tau"][:, :-1] + 1e-9)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="sum\\(counts\\)"):
        jet_substructure(np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(3), np.array([2]))
    with pytest.raises(ValueError, match="tau_axes"):
        SubstructureParams(tau_axes="Manual_Axes")


@pytest.mark.skipif(not EXAMPLE.is_file(), reason=f"JetClass-II example not found at {EXAMPLE}")
def test_jetclass2_example_jets_reproduce_their_stored_substructure() -> None:
    """The example's constituents give back its τ_N and soft-drop mass (Delphes computed them from
    slightly different constituent momenta, hence the tolerances)."""
    a = ak.from_parquet(EXAMPLE)
    flat = [ak.to_numpy(ak.flatten(a[f"part_{k}"])) for k in ("px", "py", "pz", "energy")]
    out = jet_substructure(*flat, ak.to_numpy(a.jet_nparticles))
    stored = np.stack([ak.to_numpy(a[f"jet_tau{n}"]) for n in (1, 2, 3, 4)], axis=1)
    assert np.median(np.abs(out["tau"] - stored), axis=0).max() < 0.005
    sd = ak.to_numpy(a.jet_sdmass)
    assert np.median(np.abs(out["sdmass"] - sd) / sd) < 0.03

"""Jets, MET and matching against values computed by hand."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from colliderflow.kinematics import (
    cluster_jets,
    delta_r,
    jets_from_block,
    jets_to_block,
    match_jets,
    missing_et,
    particles_from_block,
)


def _particles(rows):
    """rows: per event, a list of (pt, eta, phi) massless particles."""
    arr = ak.Array([[{"pt": pt, "eta": eta, "phi": phi} for pt, eta, phi in ev] for ev in rows])
    return ak.with_field(arr, arr.pt * np.cosh(arr.eta), "energy")


def test_missing_et_by_hand():
    parts = _particles([[(10, 0, 0), (10, 1, np.pi)], [(7, 0.5, 1.0)], []])
    np.testing.assert_allclose(missing_et(parts), [0, 7, 0], atol=1e-5)


def test_collinear_particles_form_one_jet_and_far_ones_two():
    parts = _particles([[(20, 0.0, 0.0), (10, 0.05, 0.05), (15, 0.0, 2.5)]])
    jets = cluster_jets(parts, algorithm="ee_genkt", radius=0.4, p=-1.0, min_pt=5.0)
    assert ak.num(jets).tolist() == [2]
    # the leading jet holds the two collinear particles
    assert jets.pt[0, 0] == pytest.approx(30, rel=0.01)
    assert jets.pt[0, 1] == pytest.approx(15, rel=0.01)


def test_min_pt_and_empty_events():
    parts = _particles([[(3, 0, 0)], []])
    jets = cluster_jets(parts, min_pt=5.0)
    assert ak.num(jets).tolist() == [0, 0]


def test_block_round_trip_and_particles_from_block():
    block = ak.Array([[[1, 1, 10, 0.5, 0.0, 1.0, 11.3, -1], [0, 0, 0, 0, 0, 0, 0, 0]]])
    parts = particles_from_block(block)
    assert ak.num(parts).tolist() == [1]
    assert parts.phi[0, 0] == pytest.approx(0.0)
    jets = ak.Array([[{"pt": 1.0, "eta": 2.0, "phi": 3.0, "energy": 4.0}]])
    assert jets_from_block(jets_to_block(jets)).tolist() == jets.tolist()


def test_delta_r_wraps_phi():
    assert delta_r(0.0, np.pi - 0.05, 0.0, -np.pi + 0.05) == pytest.approx(0.1)


def test_match_jets_within_radius_only():
    gen = ak.Array([[{"pt": 50.0, "eta": 0.0, "phi": 0.0}, {"pt": 30.0, "eta": 1.0, "phi": 2.0}]])
    reco = ak.Array([[{"pt": 45.0, "eta": 0.02, "phi": 0.01}, {"pt": 28.0, "eta": 1.5, "phi": 2.0}]])
    g, r = match_jets(reco, gen, max_dr=0.1)
    assert g.pt.tolist() == [[50.0]] and r.pt.tolist() == [[45.0]]


# ---------------------------------------------------------------------------------------------------
# The compiled e+e- clustering against FastJet itself
# ---------------------------------------------------------------------------------------------------
def _fastjet_jets(particles: ak.Array, algorithm: str, radius: float, p: float, min_pt: float) -> ak.Array:
    """Jets straight from FastJet's awkward interface, sorted and rounded as `cluster_jets` does."""
    fastjet = pytest.importorskip("fastjet")
    from colliderflow.kinematics import stdout_fd_silenced

    if algorithm == "ee_genkt":
        jetdef = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, radius, p)
    else:
        jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    pt, eta, phi = particles.pt, particles.eta, particles.phi
    columns = {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pt * np.sinh(eta), "E": particles.energy}
    vectors = ak.zip({k: ak.values_astype(v, np.float64) for k, v in columns.items()}, with_name="Momentum4D")
    with stdout_fd_silenced():
        jets = fastjet.ClusterSequence(vectors, jetdef).inclusive_jets(min_pt=min_pt)
    jet_pt = np.hypot(jets.px, jets.py)
    out = ak.zip({"pt": jet_pt, "eta": np.arcsinh(jets.pz / jet_pt), "phi": np.arctan2(jets.py, jets.px),
                  "energy": jets.E})
    return ak.values_astype(out[ak.argsort(out.pt, axis=1, ascending=False)], np.float32)


def _random_events(n_events: int, seed: int, *, max_particles: int = 150) -> ak.Array:
    """Jet-like events: a few hard axes with collinear sprays, plus soft isotropic particles."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n_events):
        n_axes = rng.integers(0, 6)
        axes = [(rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi), rng.exponential(40.0)) for _ in range(n_axes)]
        rows = []
        for eta0, phi0, scale in axes:
            for _ in range(rng.integers(1, 25)):
                rows.append((scale * rng.exponential(0.1), eta0 + rng.normal(0, 0.15), phi0 + rng.normal(0, 0.15)))
        rows += [(rng.exponential(1.0), rng.uniform(-3, 3), rng.uniform(-np.pi, np.pi))
                 for _ in range(rng.integers(0, 30))]
        events.append(rows[:max_particles])
    arr = ak.Array([[{"pt": pt, "eta": eta, "phi": (phi + np.pi) % (2 * np.pi) - np.pi} for pt, eta, phi in ev]
                    for ev in events])
    return ak.with_field(arr, arr.pt * np.cosh(arr.eta) * rng.uniform(1.0, 1.01), "energy")


def _bits(jets: ak.Array) -> list:
    return [ak.to_list(ak.num(jets))] + [ak.to_numpy(ak.flatten(jets[k])).view(np.uint32).tolist()
                                         for k in ("pt", "eta", "phi", "energy")]


@pytest.mark.parametrize(("radius", "p", "min_pt"), [(0.4, -1.0, 5.0), (0.8, 1.0, 2.0), (0.4, 0.0, 1.0),
                                                     (4.0, 1.0, 0.0)])
def test_columnar_ee_genkt_matches_fastjet_per_event_bit_for_bit(radius: float, p: float, min_pt: float) -> None:
    particles = _random_events(300, seed=int(10 * radius + p + 3))
    ours = cluster_jets(particles, algorithm="ee_genkt", radius=radius, p=p, min_pt=min_pt)
    assert _bits(ours) == _bits(_fastjet_jets(particles, "ee_genkt", radius, p, min_pt))


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # η of jets at rest
def test_ee_genkt_resolves_ties_and_degenerate_particles_as_fastjet_does() -> None:
    # Exact copies (equal distances, equal d_iJ), a particle at rest, one without energy, and float32
    # inputs, where FastJet's order of comparisons decides which pair merges first.
    base = _random_events(40, seed=5, max_particles=30)
    twins = ak.concatenate([base, base], axis=1)
    still = ak.Array([[{"pt": 0.0, "eta": 0.0, "phi": 0.0, "energy": 0.0},
                       {"pt": 0.0, "eta": 0.0, "phi": 0.0, "energy": 3.0},
                       {"pt": 10.0, "eta": 0.1, "phi": 0.2, "energy": 10.0},
                       {"pt": 10.0, "eta": 0.1, "phi": 0.2, "energy": 10.0}]] * 3)
    single = ak.Array([[{"pt": 7.0, "eta": 0.3, "phi": 1.0, "energy": 8.0}]])
    for particles in (twins, still, single, ak.values_astype(base, np.float32)):
        for p in (-1.0, 0.0, 1.0):
            ours = cluster_jets(particles, algorithm="ee_genkt", radius=0.5, p=p, min_pt=0.0)
            assert _bits(ours) == _bits(_fastjet_jets(particles, "ee_genkt", 0.5, p, 0.0))


def test_antikt_goes_through_fastjet_unchanged() -> None:
    particles = _random_events(100, seed=9)
    ours = cluster_jets(particles, algorithm="antikt", radius=0.4, p=-1.0, min_pt=5.0)
    assert _bits(ours) == _bits(_fastjet_jets(particles, "antikt", 0.4, -1.0, 5.0))


def test_flat_momenta_round_trip_and_missing_et() -> None:
    from colliderflow.kinematics import Momenta, missing_et_cartesian

    particles = _random_events(50, seed=13)
    flat = Momenta.from_records(particles)
    assert flat.records().tolist() == particles.tolist()
    assert Momenta.concatenate([flat.events(0, 20), flat.events(20, 50)]).records().tolist() == particles.tolist()
    px, py, _, _ = flat.cartesian()
    expected = missing_et(particles)
    assert missing_et_cartesian(px, py, flat.counts).tobytes() == expected.tobytes()
    assert flat.missing_et().tobytes() == expected.tobytes()


# ---------------------------------------------------------------------------------------------------
# Nearest neighbours within events: the compiled search against the numpy one
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["delta_r2", "minus_cos", "delta_r"])
def test_nearest_in_events_agrees_with_pairs_nearest_within(metric: str) -> None:
    from colliderflow.kinematics import METRIC_DELTA_R, METRIC_DELTA_R2, METRIC_MINUS_COS, nearest_in_events
    from nearest_reference import delta_phi, nearest_within

    rng = np.random.default_rng(17)
    n_events = 300
    query_event = np.sort(rng.integers(0, n_events, 4000))
    ref_event = np.sort(rng.integers(0, n_events - 5, 3000))
    # Coarse coordinates make exact ties in distance common.
    q_eta, r_eta = (np.round(rng.uniform(-2, 2, n), 1) for n in (query_event.size, ref_event.size))
    q_phi, r_phi = (np.round(rng.uniform(-np.pi, np.pi, n), 1) for n in (query_event.size, ref_event.size))
    window = 0.5
    if metric == "minus_cos":
        def unit(eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return np.cos(phi) / np.cosh(eta), np.sin(phi) / np.cosh(eta), np.tanh(eta)

        q, r = unit(q_eta, q_phi), unit(r_eta, r_phi)
        q_key, r_key = np.arccos(q[2]), np.arccos(r[2])
        code, max_distance = METRIC_MINUS_COS, -np.cos(window)

        def distance(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            return -(q[0][i] * r[0][j] + q[1][i] * r[1][j] + q[2][i] * r[2][j])
    else:
        q, r = (q_eta, q_phi), (r_eta, r_phi)
        q_key, r_key = q_eta, r_eta
        code, max_distance = (METRIC_DELTA_R2, window**2) if metric == "delta_r2" else (METRIC_DELTA_R, window)

        def distance(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            deta, dphi = q_eta[i] - r_eta[j], delta_phi(q_phi[i], r_phi[j])
            return deta * deta + dphi * dphi if metric == "delta_r2" else np.hypot(deta, dphi)

    expected = nearest_within(query_event, q_key, ref_event, r_key, window=window, distance=distance,
                              max_distance=max_distance)
    ours = nearest_in_events(query_event, q_key, q, ref_event, r_key, r, metric=code, window=window,
                             max_distance=max_distance)
    assert np.array_equal(ours, expected)
    assert 0.1 < (expected >= 0).mean() < 0.9

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

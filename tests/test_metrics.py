"""Metric functions against values worked out by hand."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from colliderflow.evaluate.pf import metrics
from colliderflow.kinematics import cluster_jets, jets_to_block, particles_from_block


def _row(cls: int, pt: float, eta: float, phi: float, charge: float = 0.0) -> list[float]:
    """One element of a particle block, massless: E = pT cosh η."""
    return [cls, charge, pt, eta, np.sin(phi), np.cos(phi), pt * np.cosh(eta), 0.0]


# --------------------------------------------------------------------------------------------------
# Binned response and resolution
# --------------------------------------------------------------------------------------------------
def test_median_and_iqr_per_bin_by_hand() -> None:
    # bin [0, 10): ratios 1..5 → median 3, q25 2, q75 4, IQR/median 2/3; bin [10, 20): ratios 1, 1; bin [20, 30): none.
    reco = np.array([1, 2, 3, 4, 5, 10, 20], dtype=float)
    gen = np.array([1, 1, 1, 1, 1, 10, 20], dtype=float)
    var = np.array([1, 2, 3, 4, 9.99, 10, 15], dtype=float)
    rr = metrics.response_and_resolution(reco, gen, var, [0, 10, 20, 30], min_entries=2)
    assert rr["count"].tolist() == [5, 2, 0]
    assert rr["response"][:2].tolist() == [3.0, 1.0]
    assert rr["q25"][0] == 2.0 and rr["q75"][0] == 4.0
    assert rr["resolution"][0] == pytest.approx(2 / 3)
    assert rr["resolution"][1] == 0.0 and rr["resolution_err"][1] == 0.0
    assert np.isnan(rr["response"][2]) and np.isnan(rr["resolution"][2]) and np.isnan(rr["response_err"][2])
    assert rr["centers"].tolist() == [5, 15, 25]


def test_bins_are_half_open_and_bad_pairs_dropped() -> None:
    reco = np.array([2.0, 2.0, 2.0, 2.0, np.nan, 2.0])
    gen = np.array([1.0, 1.0, 0.0, -1.0, 1.0, 1.0])
    var = np.array([0.0, 10.0, 5.0, 5.0, 5.0, -1.0])  # 10 is the upper edge: outside; −1 below
    rr = metrics.response_and_resolution(reco, gen, var, [0, 10], min_entries=1)
    assert rr["count"].tolist() == [1]  # only the first pair: gen ≤ 0, NaN, and out-of-range are dropped
    assert rr["response"].tolist() == [2.0]


def test_bins_with_too_few_entries_are_missing_not_zero() -> None:
    # [0, 10): one pair, ratio 1.3 — its IQR is 0, which must not read as a perfect resolution.
    # [10, 20): four pairs. [20, 30): five pairs, ratios 0.8 0.9 1.0 1.1 1.6 → q25 0.9, median 1.0,
    # q75 1.1, IQR/median 0.2; Gaussian-limit errors with σ = 0.2/1.349 and n = 5.
    ratios = [1.3, 1.0, 1.0, 1.2, 0.9, 0.8, 0.9, 1.0, 1.1, 1.6]
    var = [5, 12, 14, 15, 19, 21, 22, 25, 27, 29]
    rr = metrics.response_and_resolution(np.array(ratios) * 10, np.full(10, 10.0), np.array(var), [0, 10, 20, 30])
    assert metrics.MIN_ENTRIES == 5
    assert rr["count"].tolist() == [1, 4, 5]
    for key in ("response", "resolution", "q25", "q75", "response_err", "resolution_err"):
        assert np.isnan(rr[key][:2]).all(), key
    assert rr["response"][2] == pytest.approx(1.0)
    assert (rr["q25"][2], rr["q75"][2]) == (pytest.approx(0.9), pytest.approx(1.1))
    assert rr["resolution"][2] == pytest.approx(0.2)
    sigma = 0.2 / 1.349
    assert rr["response_err"][2] == pytest.approx(1.2533 * sigma / np.sqrt(5))
    rel = np.hypot(1.573 * sigma / (0.2 * np.sqrt(5)), 1.2533 * sigma / np.sqrt(5))
    assert rr["resolution_err"][2] == pytest.approx(0.2 * rel)
    # The threshold is a choice of the caller; with one entry allowed, the lone pair gives the IQR of 0.
    loose = metrics.response_and_resolution(np.array([13.0]), np.array([10.0]), np.array([5.0]), [0, 10], min_entries=1)
    assert loose["response"][0] == pytest.approx(1.3) and loose["resolution"][0] == 0.0
    inc = metrics.inclusive_response(np.array([13.0, 9.0]), np.array([10.0, 10.0]))
    assert inc["count"] == 2 and np.isnan(inc["response"]) and np.isnan(inc["resolution"])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="min_entries"):
            metrics.response_and_resolution(np.ones(3), np.ones(3), np.ones(3), [0, 2], min_entries=bad)


def test_met_of_a_sample_with_one_event_in_range_is_missing() -> None:
    # Fully hadronic WW: gen MET mostly below the first edge (1 GeV), one event at 7 GeV reconstructed
    # at 6.3 — alone it would give response 0.9 and resolution exactly 0.
    gen = np.array([0.2, 0.4, 0.5, 0.3, 0.6, 0.1, 7.0])
    reco = np.array([2.0, 1.5, 3.0, 0.4, 1.0, 2.5, 6.3])
    res = metrics.met_response_from_values(reco, gen, bins=[1, 5, 10, 200])
    assert res["inclusive"]["count"] == 1
    assert np.isnan(res["inclusive"]["resolution"]) and np.isnan(res["inclusive"]["response"])
    assert res["vs_genmet"]["count"].tolist() == [0, 1, 0] and np.isnan(res["vs_genmet"]["resolution"]).all()
    # reco − gen over all 7 events: 1.8 1.1 2.5 0.1 0.4 2.4 −0.7 → sorted −0.7 0.1 0.4 1.1 1.8 2.4 2.5:
    # median 1.1, q25 (position 1.5) 0.25, q75 (position 4.5) 2.1.
    assert res["delta_median"] == pytest.approx(1.1)
    assert res["delta_iqr"] == pytest.approx(2.1 - 0.25)
    # Five events in range: ratios 0.5 1.0 1.5 2.0 2.5 → median 1.5, IQR 1.0, resolution 2/3.
    gen5 = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 0.5])
    reco5 = gen5 * np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    res5 = metrics.met_response_from_values(reco5, gen5, bins=[1, 200])
    assert res5["inclusive"]["count"] == 5
    assert res5["inclusive"]["response"] == pytest.approx(1.5)
    assert res5["inclusive"]["resolution"] == pytest.approx(1.0 / 1.5)
    few = metrics.met_response_from_values(np.array([1.0, 2.0]), np.array([1.5, 1.5]), bins=[1, 200])
    assert np.isnan(few["delta_median"]) and np.isnan(few["delta_iqr"])


def test_binned_quantiles_match_numpy() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(1, 0.2, 1000)
    index = rng.integers(-1, 4, 1000)  # −1 rows are ignored
    got = metrics.binned_quantiles(values, index, 5, (0.1, 0.25, 0.5, 0.75))
    for b in range(4):
        np.testing.assert_allclose(got[:, b], np.quantile(values[index == b], [0.1, 0.25, 0.5, 0.75]))
    assert np.isnan(got[:, 4]).all()


def test_errors_follow_the_spread_of_pseudo_experiments() -> None:
    rng = np.random.default_rng(11)
    n, sigma = 400, 0.1
    draws = rng.normal(1.0, sigma, (500, n))
    medians = np.median(draws, axis=1)
    q25, q75 = np.quantile(draws, [0.25, 0.75], axis=1)
    # All pseudo-experiments in one call: experiment k is bin k.
    experiment = np.repeat(np.arange(500), n)
    rr = metrics.response_and_resolution(draws.ravel(), np.ones(draws.size), experiment, np.arange(501) - 0.5)
    np.testing.assert_allclose(rr["response"], medians)
    assert rr["response_err"].mean() == pytest.approx(medians.std(), rel=0.1)
    assert rr["resolution_err"].mean() == pytest.approx(((q75 - q25) / medians).std(), rel=0.1)


def test_empty_and_malformed_input() -> None:
    rr = metrics.response_and_resolution(np.array([]), np.array([]), np.array([]), [0, 1, 2])
    assert rr["count"].tolist() == [0, 0] and np.isnan(rr["response"]).all()
    inc = metrics.inclusive_response(np.array([]), np.array([]))
    assert inc["count"] == 0 and np.isnan(inc["response"]) and np.isnan(inc["resolution"])
    with pytest.raises(ValueError, match="differ in length"):
        metrics.response_and_resolution(np.ones(3), np.ones(2), np.ones(3), [0, 1])
    with pytest.raises(ValueError, match="increasing"):
        metrics.response_and_resolution(np.ones(3), np.ones(3), np.ones(3), [1, 0])


def test_binned_fraction() -> None:
    frac = metrics.binned_fraction(np.array([1, 0, 1, 1, 0], bool), np.array([1, 2, 3, 15, 25.0]), [0, 10, 20, 30, 40])
    assert frac["count"].tolist() == [3, 1, 1, 0]
    np.testing.assert_allclose(frac["fraction"][:3], [2 / 3, 1.0, 0.0])
    assert frac["error"][0] == pytest.approx(np.sqrt(2 / 9 / 3))
    assert np.isnan(frac["fraction"][3])


# --------------------------------------------------------------------------------------------------
# Jets and MET
# --------------------------------------------------------------------------------------------------
def _two_jet_events() -> ak.Array:
    """Two events, each with two well-separated sprays of particles (and one empty element)."""
    ev1 = [
        _row(1, 20, 0.0, 0.0, 1),
        _row(3, 15, 0.05, 0.02),
        _row(2, 10, -0.03, 0.01),
        _row(1, 30, 1.0, 2.5, -1),
        _row(3, 12, 1.02, 2.48),
        _row(0, 0, 0, 0),
    ]
    ev2 = [_row(1, 50, -1.0, -2.0, 1), _row(2, 25, -1.04, -2.03), _row(3, 8, 0.5, 1.0)]
    return ak.Array([ev1, ev2])


def _gen_jets(block: ak.Array) -> ak.Array:
    return jets_to_block(cluster_jets(particles_from_block(block)))


def test_identical_reco_and_gen_jets_give_unit_response_and_zero_resolution() -> None:
    block = _two_jet_events()
    res = metrics.jet_response(block, _gen_jets(block), pt_bins=[5, 43.5, 80, 200], eta_bins=[-2, 0, 2], min_entries=1)
    assert res["n_gen"] == res["n_matched"] == 4
    vs_pt = res["vs_pt"]
    assert vs_pt["count"].tolist() == [2, 2, 0]  # jets of 8, 42 | 45, 75 GeV | none
    np.testing.assert_allclose(vs_pt["response"][:2], 1.0, rtol=1e-6)
    np.testing.assert_allclose(vs_pt["resolution"][:2], 0.0, atol=1e-6)
    assert np.isnan(vs_pt["response"][2]) and np.isnan(vs_pt["resolution"][2])
    np.testing.assert_allclose(res["matching_efficiency"]["fraction"][:2], 1.0)
    assert res["vs_eta"]["count"].tolist() == [1, 3]  # η of the jets: −1 | 0, 0.5, 1
    np.testing.assert_allclose(res["inclusive"]["response"], 1.0, rtol=1e-6)


def test_scaled_particles_scale_the_jet_response() -> None:
    block = _two_jet_events()
    scaled = ak.to_numpy(ak.flatten(block, axis=1)).copy()
    scaled[:, 2] *= 0.9
    scaled[:, 6] *= 0.9
    reco = ak.unflatten(scaled, ak.num(block, axis=1))
    res = metrics.jet_response(reco, _gen_jets(block), pt_bins=[5, 200], eta_bins=[-2, 2], min_entries=1)
    assert res["vs_pt"]["response"][0] == pytest.approx(0.9, rel=1e-5)


def test_jets_further_than_match_dr_are_unmatched() -> None:
    block = ak.Array([[_row(1, 30, 0.0, 0.0)]])
    gen = ak.Array([[[30.0, 0.0, 0.0, 30.0], [30.0, 0.2, 3.0, 30.6]]])  # second gen jet has no reco partner
    match = metrics.match_block_jets(block, gen, match_dr=0.1)
    assert match.matched.tolist() == [True, False]
    assert match.reco_pt[0] == pytest.approx(30.0) and np.isnan(match.reco_pt[1])
    shifted = ak.Array([[_row(1, 30, 0.15, 0.0)]])  # ΔR = 0.15 from the first gen jet
    assert not metrics.match_block_jets(shifted, gen, match_dr=0.1).matched.any()
    assert metrics.match_block_jets(shifted, gen, match_dr=0.2).matched.tolist() == [True, False]


def test_events_without_particles_or_jets() -> None:
    empty = ak.Array([[_row(0, 0, 0, 0)], []])
    gen = ak.Array([[[20.0, 0.0, 0.0, 20.0]], []])
    res = metrics.jet_response(empty, gen, pt_bins=[10, 100], eta_bins=[-1, 1])
    assert res["n_gen"] == 1 and res["n_matched"] == 0
    assert np.isnan(res["vs_pt"]["response"]).all() and res["matching_efficiency"]["fraction"].tolist() == [0.0]


def test_met_of_back_to_back_and_single_particles() -> None:
    block = ak.Array(
        [
            [_row(1, 25, 0.3, 0.7), _row(1, 25, -1.0, 0.7 - np.pi)],  # balanced in the transverse plane
            [_row(3, 17, 1.5, 2.0)],  # one particle: MET = its pT
            [_row(0, 0, 0, 0)],  # nothing
        ]
    )
    np.testing.assert_allclose(metrics.block_met(block), [0.0, 17.0, 0.0], atol=1e-4)
    res = metrics.met_response(block, np.array([1.0, 17.0, 0.0]), bins=[0.5, 10, 100], min_entries=1)
    assert res["vs_genmet"]["count"].tolist() == [1, 1]
    assert res["vs_genmet"]["response"][1] == pytest.approx(1.0, rel=1e-5)
    assert res["inclusive"]["count"] == 2  # the event with gen MET 0 is outside the bins
    assert res["delta_median"] == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="gen MET"):
        metrics.met_response(block, np.ones(2), bins=[0, 1])


# --------------------------------------------------------------------------------------------------
# Element-wise classification and regression
# --------------------------------------------------------------------------------------------------
def test_confusion_matrix_of_a_tiny_example() -> None:
    true = np.array([0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 2, 2, 2, 1])
    cm = metrics.confusion_matrix(true, pred, n_classes=4)
    expected = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 2, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(cm["counts"], expected)
    np.testing.assert_allclose(cm["normalised"][:3], [[1, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 1 / 3, 2 / 3, 0]])
    assert np.isnan(cm["normalised"][3]).all()  # no element of true class 3
    assert metrics.classification_accuracy(true, pred) == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="outside"):
        metrics.confusion_matrix(np.array([0, 6]), np.array([0, 1]), n_classes=6)


def test_element_classes_round_stored_floats() -> None:
    block = ak.Array([[[0.9999, 0, 0, 0, 0, 1, 0, 0], [3.0, 0, 1, 0, 0, 1, 1, 0]], [[2.00001, 0, 1, 0, 0, 1, 1, 0]]])
    assert metrics.element_classes(block).tolist() == [1, 3, 2]


def test_efficiency_and_fake_rate_by_hand() -> None:
    # Elements: target class / pT, predicted class / pT.
    true_cls = np.array([1, 1, 1, 2, 0, 0, 2])
    true_pt = np.array([1.0, 1.0, 20.0, 5.0, 0.0, 0.0, 30.0])
    pred_cls = np.array([1, 2, 1, 2, 1, 0, 1])
    pred_pt = np.array([1.1, 0.9, 19.0, 5.5, 3.0, 0.0, 28.0])
    eff = metrics.class_efficiency_and_fake_rate(true_cls, true_pt, pred_cls, pred_pt, bins=[0.5, 10, 50], n_classes=3)
    # class 1: targets at 1, 1 (one found) and 20 (found) → [1/2, 1]; class 2: targets at 5 (found), 30 (missed).
    np.testing.assert_allclose(eff["efficiency"][1], [0.5, 1.0])
    np.testing.assert_allclose(eff["efficiency"][2], [1.0, 0.0])
    # predicted class 1 at 1.1 (right), 3.0 (no target: fake) → [1/2] low bin; 19 (right), 28 (target is 2: fake) → 1/2.
    np.testing.assert_allclose(eff["fake_rate"][1], [0.5, 0.5])
    np.testing.assert_allclose(eff["fake_rate"][2], [0.5, np.nan])  # predicted 2 at 0.9 (target 1) and 5.5 (right)
    assert eff["n_true"][1].tolist() == [2, 1] and eff["n_pred"][2].tolist() == [2, 0]
    np.testing.assert_allclose(eff["efficiency_inclusive"], [1 / 2, 2 / 3, 1 / 2])
    np.testing.assert_allclose(eff["fake_rate_inclusive"], [0.0, 1 / 2, 1 / 2])
    assert np.isnan(eff["efficiency"][0]).all()  # class-0 targets have pT 0: below every bin


def test_particle_response_only_on_agreeing_classes() -> None:
    true_cls = np.array([1, 1, 1, 3, 3])
    pred_cls = np.array([1, 1, 2, 3, 0])
    true_pt = np.array([2.0, 4.0, 4.0, 10.0, 10.0])
    pred_pt = np.array([2.2, 4.4, 100.0, 9.0, 0.0])  # the mis-classified and missed elements must not count
    energy_t = true_pt * 2
    energy_p = pred_pt * 2
    res = metrics.particle_response(
        true_cls, pred_cls, true_pt, pred_pt, energy_t, energy_p, bins=[1, 5, 50], n_classes=4, min_entries=1
    )
    assert res[1]["pt"]["count"].tolist() == [2, 0]
    assert res[1]["pt"]["response"][0] == pytest.approx(1.1)
    assert res[1]["pt"]["resolution"][0] == pytest.approx(0.0, abs=1e-12)
    assert res[3]["pt_inclusive"]["response"] == pytest.approx(0.9)
    assert res[3]["energy"]["count"].tolist() == [0, 1]  # binned in target energy (20 GeV)
    assert res[2]["pt_inclusive"]["count"] == 0 and np.isnan(res[2]["pt_inclusive"]["response"])

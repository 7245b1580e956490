"""Secondaries from the tracker material: conversions, nuclear interactions, V0 daughters, their truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from colliderflow.generate.detector import detector_rng, simulate_detector
from colliderflow.generate.geometry import TrackerConfig, detector_config
from colliderflow.generate.particles import GenParticles
from colliderflow.generate.secondaries import PAIR_PER_RADIATION_LENGTH, simulate_secondaries
from colliderflow.generate.tracker import simulate_tracks
from tests.test_generate_detector import make_gen

CLIC = detector_config("clic_like")
NO_FAKES = replace(CLIC, tracker=replace(CLIC.tracker, fake_tracks_per_track=0.0))


def material_paths(gen: GenParticles, tracker: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(3D path from the production vertex to the material's start, 3D path through the material), mm.

    Straight lines from the production vertex; the material fills material_inner_radius_mm <= r <=
    outer_radius_mm, |z| <= half_length_mm. An independent array form of what the simulation computes inside
    its compiled pass (secondaries._interaction_kernel), to check the material budget against.
    """
    p = np.maximum(gen.p, 1e-12)
    ux, uy, uz = gen.px / p, gen.py / p, gen.pz / p
    ut2 = ux * ux + uy * uy
    safe_ut2 = np.maximum(ut2, 1e-300)
    b = (gen.vx * ux + gen.vy * uy) / safe_ut2
    c0 = (gen.vx * gen.vx + gen.vy * gen.vy) / safe_ut2

    def path_to_radius(r: float) -> np.ndarray:
        # Forward 3D path to the cylinder of radius r (0 if already outside it, inf along the beam).
        disc = b * b - c0 + r * r / safe_ut2
        out = -b + np.sqrt(np.maximum(disc, 0.0))
        return np.where(ut2 > 0, np.maximum(out, 0.0), np.inf)

    with np.errstate(divide="ignore"):
        to_end_z = np.where(uz != 0, (np.copysign(tracker.half_length_mm, uz) - gen.vz) / uz, np.inf)
    exit_path = np.minimum(path_to_radius(tracker.outer_radius_mm), np.maximum(to_end_z, 0.0))
    entry = np.minimum(path_to_radius(tracker.material_inner_radius_mm), exit_path)
    return entry, exit_path - entry


def test_conversion_probability_follows_the_material_formula() -> None:
    n = 200_000
    rng = np.random.default_rng(3)
    eta = rng.uniform(-2.0, 2.0, n)
    gen = make_gen([22] * n, 10.0, eta, rng.uniform(-np.pi, np.pi, n))
    t = CLIC.tracker
    _, material = material_paths(gen, t)
    x_over_x0 = material * t.material_radiation_lengths / (t.outer_radius_mm - t.material_inner_radius_mm)
    # Normal incidence gives the configured budget, and it grows as 1/sin(theta) = cosh(eta) in the barrel.
    central = np.abs(eta) < 0.05
    assert np.allclose(x_over_x0[central], t.material_radiation_lengths * np.cosh(eta[central]), rtol=0.03)
    converted = simulate_secondaries(gen, CLIC, np.random.default_rng(4)).converted
    for low, high in ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0)):
        sel = (np.abs(eta) >= low) & (np.abs(eta) < high)
        expected = np.mean(1.0 - np.exp(-PAIR_PER_RADIATION_LENGTH * x_over_x0[sel]))
        measured = converted[sel].mean()
        sigma = np.sqrt(expected * (1.0 - expected) / sel.sum())
        assert abs(measured - expected) < 4.0 * sigma, (low, measured, expected)


def test_conversion_legs_carry_the_photon_and_record_it_as_their_parent() -> None:
    n = 20_000
    rng = np.random.default_rng(5)
    gen = make_gen([22] * n, 20.0, rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n))
    # The detector draws the secondaries first from its Generator: the same seed gives the same ones.
    sec = simulate_secondaries(gen, NO_FAKES, detector_rng(7))
    legs = sec.particles
    assert legs.n_particles == 2 * sec.converted.sum()
    assert np.all(sec.converted[sec.parent])
    assert np.array_equal(np.sort(np.abs(legs.pdgid)), np.full(legs.n_particles, 11))
    energy = np.bincount(sec.parent, weights=legs.energy, minlength=n)
    assert np.allclose(energy[sec.converted], gen.energy[sec.converted], rtol=1e-6)
    r = np.hypot(legs.vx, legs.vy)
    assert np.all((r >= CLIC.tracker.material_inner_radius_mm - 1e-6) & (r <= CLIC.tracker.outer_radius_mm + 1e-6))
    # Tracks of the legs point to the converted photon; its calorimeter links too, never to a missing row.
    response = simulate_detector(gen, NO_FAKES, detector_rng(7))
    track_event = np.repeat(np.arange(n), response.tracks.counts)
    assert np.all(response.tracks.columns["track_gen_idx"] == 0)  # the photon is particle 0 of its event
    assert set(track_event) <= set(np.flatnonzero(sec.converted))
    assert 0.3 * sec.converted.sum() < response.tracks.n_rows < 2 * sec.converted.sum()
    assert np.all(response.calolinks.columns["calolink_gen_idx"] == 0)
    link_event = np.repeat(np.arange(n), response.calolinks.counts)
    key = link_event * 1000 + response.calolinks.columns["calolink_cluster_idx"]
    assert np.unique(key).size == key.size  # legs in one cluster make one link


def test_nuclear_interactions_end_the_primary_track() -> None:
    n = 50_000
    rng = np.random.default_rng(8)
    gen = make_gen([211] * n, 5.0, rng.uniform(-0.8, 0.8, n), rng.uniform(-np.pi, np.pi, n))
    sec = simulate_secondaries(gen, CLIC, np.random.default_rng(9))
    hit = sec.interacted
    assert 0.01 < hit.mean() < 0.06  # a few per cent of lambda_I
    assert np.all(np.isfinite(sec.end_path[hit])) and np.all(np.isinf(sec.end_path[~hit]))
    full = simulate_tracks(gen, NO_FAKES, np.random.default_rng(10))
    ended = simulate_tracks(gen, NO_FAKES, np.random.default_rng(10), end_path=sec.end_path)
    hits_full = np.full(n, -1)
    hits_full[np.repeat(np.arange(n), full.counts)] = full.columns["track_ndf"]
    hits_ended = np.full(n, -1)
    hits_ended[np.repeat(np.arange(n), ended.counts)] = ended.columns["track_ndf"]
    # Hits follow from the geometry alone (the random draws shift once a track is lost, so compare where
    # both found one).
    both = ~hit & (hits_ended >= 0) & (hits_full >= 0)
    assert both.sum() > 0.9 * (~hit).sum()
    assert np.array_equal(hits_ended[both], hits_full[both])
    early = hit & (sec.end_path < 100.0)  # ends inside the vertex detector: too few hits for a track
    assert early.sum() > 20 and np.all(hits_ended[early] == -1)
    found_both = hit & (hits_ended >= 0) & (hits_full >= 0)
    assert np.all(hits_ended[found_both] <= hits_full[found_both])
    assert np.mean(hits_ended[found_both] < hits_full[found_both]) > 0.8
    # Its secondaries (a pion of its charge and a neutron) record it and carry its energy.
    assert np.array_equal(np.unique(sec.parent), np.flatnonzero(hit))
    energy = np.bincount(sec.parent, weights=sec.particles.energy, minlength=n)
    assert np.allclose(energy[hit], gen.energy[hit])
    charge = np.bincount(sec.parent, weights=sec.particles.charge, minlength=n)
    assert np.allclose(charge[hit], 1.0)


def test_secondary_tracks_record_their_truth_parent_in_busy_events() -> None:
    from colliderflow.generate.pythia import PythiaGenerator

    gen = PythiaGenerator("ee_ttbar", sqrt_s=380.0, seed=11).generate(30)
    sec = simulate_secondaries(gen, NO_FAKES, detector_rng(12))  # what the detector draws first
    assert sec.converted.sum() > 0 and sec.interacted.sum() > 0
    response = simulate_detector(gen, NO_FAKES, detector_rng(12))
    idx = response.tracks.columns["track_gen_idx"]
    event = np.repeat(np.arange(gen.n_events), response.tracks.counts)
    assert np.all((idx >= 0) & (idx < gen.counts[event]))
    flat = gen.offsets[event] + idx
    # Every track belongs to a charged truth particle, a photon that converted or a hadron that interacted.
    assert np.all((gen.charge[flat] != 0) | sec.converted[flat] | sec.interacted[flat])
    assert np.any(sec.converted[flat])
    link_event = np.repeat(np.arange(gen.n_events), response.calolinks.counts)
    link_flat = gen.offsets[link_event] + response.calolinks.columns["calolink_gen_idx"]
    assert np.all(response.calolinks.columns["calolink_gen_idx"] < gen.counts[link_event])
    # Stopped particles deposit through their secondaries, recorded against them.
    assert np.all(np.abs(gen.pdgid[link_flat]) != 12)
    assert np.any(sec.stopped[link_flat])


def test_v0_daughters_start_at_the_decay_vertex() -> None:
    from colliderflow.generate.pythia import PythiaGenerator

    gen = PythiaGenerator("ee_qq", sqrt_s=380.0, seed=13).generate(200)
    r = np.hypot(gen.vx, gen.vy)
    pions = np.abs(gen.pdgid) == 211
    displaced = pions & (r > 50.0) & (r < 1000.0)  # K0S / Lambda daughters well inside the tracker
    assert displaced.sum() > 20
    tracks = simulate_tracks(gen, NO_FAKES, np.random.default_rng(14))
    event = np.repeat(np.arange(gen.n_events), tracks.counts)
    flat = gen.offsets[event] + tracks.columns["track_gen_idx"]
    inner = tracks.columns["track_radius_innermost_hit"]
    on_displaced = displaced[flat]
    assert on_displaced.sum() > 5
    # The first hit lies outside the decay vertex: a daughter's helix starts there.
    assert np.all(inner[on_displaced] >= r[flat][on_displaced] - 1e-3)


def test_secondaries_are_deterministic() -> None:
    from colliderflow.generate.pythia import PythiaGenerator

    gen = PythiaGenerator("ee_ttbar", sqrt_s=380.0, seed=15).generate(20)
    a = simulate_detector(gen, CLIC, detector_rng(16))
    b = simulate_detector(gen, CLIC, detector_rng(16))
    for col_a, col_b in ((a.tracks, b.tracks), (a.clusters, b.clusters), (a.calolinks, b.calolinks)):
        assert np.array_equal(col_a.counts, col_b.counts)
        for name in col_a.columns:
            assert np.array_equal(col_a.columns[name], col_b.columns[name]), name

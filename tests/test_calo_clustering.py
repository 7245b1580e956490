"""Calorimeter cells and clustering: what merges follows cell adjacency, hadron showers split, noise has no truth."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from colliderflow.generate.cells import cluster_fragments
from colliderflow.generate.noise import gaussian_tail, mean_noise_clusters, noise_threshold_sigma
from colliderflow.generate.particles import GenParticles
from test_generate_detector import CLIC, SHARP, event_index, make_gen, simulate

CALO = CLIC.calorimeter
R = CALO.ecal_barrel_radius_mm


def pair_events(pdgids: tuple[int, int], energies: tuple[float, float], separation_mm: float, n: int,
                eta: float = 0.2) -> GenParticles:
    """n events, each with two particles at the same eta, `separation_mm` apart in r·phi on the ECAL face."""
    rng = np.random.default_rng(4)
    phi = np.repeat(rng.uniform(-3.0, 3.0, n), 2)
    phi[1::2] += separation_mm / R
    return make_gen(list(pdgids) * n, list(energies) * n, eta, phi, event=np.repeat(np.arange(n), 2))


# ---------------------------------------------------------------------------------------------- cell adjacency


def fragments_at(u_cells: list[float], v_cells: list[float], *, hcal: bool = False) -> tuple[np.ndarray, int]:
    """Cluster labels of fragments placed at barrel cell centres (z = u cells, r·phi = v cells), one event."""
    n = len(u_cells)
    z = (np.asarray(u_cells) + 0.5) * CALO.ecal_cell_mm
    phi = (np.asarray(v_cells) + 0.5) * CALO.ecal_cell_mm / R
    e_ecal, e_hcal = (np.zeros(n), np.ones(n)) if hcal else (np.ones(n), np.zeros(n))
    order, label, n_clusters = cluster_fragments(
        np.zeros(n, dtype=np.int64), R * np.cos(phi), R * np.sin(phi), z, e_ecal, e_hcal, np.zeros(n),
        np.zeros(n, dtype=bool), CALO,
    )  # fmt: skip
    out = np.empty(n, dtype=np.int64)
    out[order] = label
    return out, n_clusters


def test_ecal_fragments_merge_when_their_cell_boxes_touch() -> None:
    core = CALO.em_core_cells
    # Boxes of +-core cells touch up to 2 core + 1 cells apart (side or corner), not beyond.
    for du, dv in ((2 * core + 1, 0), (0, 2 * core + 1), (2 * core + 1, 2 * core + 1), (1, 1)):
        assert fragments_at([10, 10 + du], [100, 100 + dv])[1] == 1
    for du, dv in ((2 * core + 2, 0), (0, 2 * core + 2), (2 * core + 2, 1)):
        assert fragments_at([10, 10 + du], [100, 100 + dv])[1] == 2
    # Chains: A-B and B-C touch, A-C do not: one cluster (connected components, not pairs).
    labels, n = fragments_at([0, 3, 6, 40], [0, 0, 0, 0])
    assert n == 2 and labels[0] == labels[1] == labels[2] != labels[3]


def test_barrel_phi_wraps_and_events_do_not_mix() -> None:
    n_phi = round(2 * math.pi * R / CALO.ecal_cell_mm)
    assert fragments_at([5, 5], [n_phi // 2 - 1, -(n_phi // 2)])[1] == 1
    z = np.array([50.0, 50.0])
    x, y = np.array([R, R]), np.zeros(2)
    _, _, n_clusters = cluster_fragments(np.array([0, 1]), x, y, z, np.ones(2), np.zeros(2), np.zeros(2),
                                         np.zeros(2, dtype=bool), CALO)  # fmt: skip
    assert n_clusters == 2


def test_hcal_tiles_are_coarser_than_ecal_cells() -> None:
    # Two HCAL-dominated cores 8 ECAL cells (41 mm) apart share neighbouring tiles; ECAL ones do not.
    assert fragments_at([10, 18], [100, 100], hcal=True)[1] == 1
    assert fragments_at([10, 18], [100, 100])[1] == 2


# ---------------------------------------------------------------------------------------------- showers


def test_close_photons_merge_and_separated_ones_do_not() -> None:
    n = 400
    merged = simulate(pair_events((22, 22), (5.0, 7.0), 3.0, n), SHARP)
    assert np.mean(merged.clusters.counts == 1) > 0.99
    assert np.all(merged.calolinks.counts == 2)
    # 150 mm = 30 ECAL cells: only a shower's far tail can still reach the other one's cells.
    apart = simulate(pair_events((22, 22), (5.0, 7.0), 150.0, n), SHARP)
    assert np.mean(apart.clusters.counts == 2) > 0.99
    assert np.all(apart.calolinks.counts == 2)
    # In between, the cells each shower occupies decide: half of the pairs 30 mm apart merge
    # (docs/detector.md), as their centroids and lateral sizes fluctuate.
    between = np.mean(simulate(pair_events((22, 22), (5.0, 7.0), 30.0, n), SHARP).clusters.counts == 1)
    assert 0.3 < between < 0.65


def test_photon_joins_a_nearby_hadron_shower_and_not_a_distant_one() -> None:
    n = 400
    for separation, joined_min, joined_max in ((20.0, 0.99, 1.0), (500.0, 0.0, 0.05)):
        response = simulate(pair_events((130, 22), (20.0, 3.0), separation, n), SHARP)
        links = response.calolinks
        cluster = links.columns["calolink_cluster_idx"]
        gen = links.columns["calolink_gen_idx"]
        event = event_index(links.counts)
        # The photon (particle 1 of its event) shares a cluster with the hadron (particle 0).
        photon_cluster = {(e, c) for e, c, g in zip(event, cluster, gen, strict=True) if g == 1}
        hadron_cluster = {(e, c) for e, c, g in zip(event, cluster, gen, strict=True) if g == 0}
        joined = len({e for e, c in photon_cluster & hadron_cluster}) / n
        assert joined_min <= joined <= joined_max, separation


@pytest.mark.parametrize("pdgid", [130, 2112, 211])
def test_hadron_showers_split_at_the_documented_rate(pdgid: int) -> None:
    """docs/detector.md: 1.27 clusters per 10 GeV hadron (24 % split), from the satellite fragments."""
    n = 3000
    rng = np.random.default_rng(11)
    response = simulate(make_gen([pdgid] * n, 10.0, rng.uniform(-0.8, 0.8, n), rng.uniform(-3, 3, n)))
    counts = response.clusters.counts
    assert np.mean(counts) == pytest.approx(1.27, abs=0.04)
    assert np.mean(counts >= 2) == pytest.approx(0.24, abs=0.03)
    # Each cluster of a split shower links to its one particle; the links carry all the cluster energy.
    assert np.all(response.calolinks.counts == counts)
    linked = response.calolinks.columns["calolink_energy"]
    np.testing.assert_allclose(linked, response.clusters.columns["cluster_energy"], rtol=1e-5)
    # Photons do not split (their showers are compact).
    photons = simulate(make_gen([22] * n, 10.0, rng.uniform(-0.8, 0.8, n), rng.uniform(-3, 3, n)))
    assert np.all(photons.clusters.counts == 1)


# ---------------------------------------------------------------------------------------------- noise


# Noise that passes the (lowered) thresholds often, on a few thousand cells: tens of noise clusters per event.
NOISY = replace(CLIC, calorimeter=replace(CALO, cluster_energy_min_gev=0.0, ecal_noise_mip=0.25, hcal_noise_mip=0.25,
                                          ecal_cells=1000.0, hcal_cells=500.0))


def test_noise_clusters_have_no_truth_and_the_model_rate() -> None:
    # Events holding only a neutrino: every cluster is noise.
    n = 200
    response = simulate(make_gen([12] * n, 10.0, 0.0, 0.0), NOISY, seed=3)
    expected = mean_noise_clusters(NOISY.calorimeter, False) + mean_noise_clusters(NOISY.calorimeter, True)
    counts = response.clusters.counts
    assert expected > 10
    assert abs(counts.mean() - expected) < 5 * math.sqrt(expected / n)
    assert response.calolinks.n_rows == 0
    c = response.clusters.columns
    ecal = c["cluster_energy_ecal"] > 0
    threshold_gev = NOISY.calorimeter.hit_threshold_mip * NOISY.calorimeter.ecal_mip_gev
    assert np.all(c["cluster_energy_ecal"][ecal] > threshold_gev)
    assert np.all(c["cluster_energy"] == c["cluster_energy_ecal"] + c["cluster_energy_hcal"])
    # Noise clusters follow the event's particle clusters, so truth links keep their indices.
    mixed = simulate(make_gen([22] * n, 10.0, 0.0, 0.0), NOISY, seed=3)
    assert np.all(mixed.calolinks.columns["calolink_cluster_idx"] == 0)
    first = np.concatenate([[0], np.cumsum(mixed.clusters.counts)[:-1]])
    photon_cluster = mixed.clusters.columns["cluster_energy"][first]
    np.testing.assert_allclose(photon_cluster, mixed.calolinks.columns["calolink_energy"])


def test_default_noise_cannot_pass_the_cluster_threshold() -> None:
    """Gaussian cell noise at CLICdet levels: a 0.1 GeV cluster is hundreds of σ away (docs/detector.md)."""
    for hcal in (False, True):
        assert noise_threshold_sigma(CALO, hcal) > 50
        assert mean_noise_clusters(CALO, hcal) == 0.0
    # At hit level the same noise fires tens (ECAL) and thousands (HCAL) of cells per event.
    hits = replace(CALO, cluster_energy_min_gev=0.0)
    assert 5 < mean_noise_clusters(hits, False) < 100
    assert 500 < mean_noise_clusters(hits, True) < 5000


@pytest.mark.parametrize("threshold", [-1.0, 0.5, 3.0, 6.0])
def test_gaussian_tail_sampler(threshold: float) -> None:
    x = gaussian_tail(np.random.default_rng(2), threshold, 100_000)
    assert x.min() > threshold
    tail = 0.5 * math.erfc(threshold / math.sqrt(2))
    mean = math.exp(-0.5 * threshold**2) / math.sqrt(2 * math.pi) / tail
    assert x.mean() == pytest.approx(mean, rel=0.01)


def test_clustering_and_noise_are_deterministic() -> None:
    rng = np.random.default_rng(8)
    n = 300
    m = n * 20
    gen = make_gen(rng.choice([22, 130, 211, 2112], m), rng.exponential(5.0, m) + 0.5, rng.uniform(-1, 1, m),
                   rng.uniform(-3, 3, m), event=np.repeat(np.arange(n), 20))  # fmt: skip
    a, b, c = simulate(gen, NOISY, seed=5), simulate(gen, NOISY, seed=5), simulate(gen, NOISY, seed=6)
    for name, column in a.clusters.columns.items():
        np.testing.assert_array_equal(column, b.clusters.columns[name])
    for name, column in a.calolinks.columns.items():
        np.testing.assert_array_equal(column, b.calolinks.columns[name])
    assert not np.array_equal(a.clusters.columns["cluster_energy"], c.clusters.columns["cluster_energy"])


def test_satellites_keep_the_hadronic_depth_profile() -> None:
    """Whether a hadronic point is a satellite (far from the axis) must not change where it lies in depth:
    with every point a satellite or none, the ECAL share of the hadrons' energy is the same."""
    n = 3000
    rng = np.random.default_rng(12)
    gen = make_gen([130] * n, 10.0, rng.uniform(-0.8, 0.8, n), rng.uniform(-3, 3, n))

    def ecal_share(fragment_radius_mm: float) -> float:
        detector = replace(CLIC, calorimeter=replace(CALO, hadron_fragment_radius_mm=fragment_radius_mm))
        columns = simulate(gen, detector).clusters.columns
        return float(np.sum(columns["cluster_energy_ecal"]) / np.sum(columns["cluster_energy"]))

    assert ecal_share(0.0) == pytest.approx(ecal_share(1e9), abs=0.02)

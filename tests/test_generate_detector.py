"""The parametric detector on synthetic particles: resolutions, acceptance, merging and truth links."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from colliderflow.generate.detector import DetectorResponse, detector_rng, simulate_detector
from colliderflow.generate.geometry import DetectorConfig, detector_config
from colliderflow.generate.helix import C_GEV_PER_TESLA_METRE
from colliderflow.generate.particles import GenParticles
from colliderflow.schema import SIM_CALOLINK_BRANCHES, SIM_CLUSTER_BRANCHES, SIM_TRACK_BRANCHES

CLIC_WITH_FAKES = detector_config("clic_like")
# Resolution and acceptance tests look at one particle at a time: without fake tracks and without the
# tracker material's conversions and nuclear interactions (each tested on their own).
CLIC = replace(CLIC_WITH_FAKES, tracker=replace(CLIC_WITH_FAKES.tracker, fake_tracks_per_track=0.0,
                                                material_radiation_lengths=0.0, material_interaction_lengths=0.0))
# The merging tests place particles at cell centres; without position smearing their cells are exact.
SHARP = replace(
    CLIC, calorimeter=replace(CLIC.calorimeter, em_position_resolution_mm=0.0, hadron_position_resolution_mm=0.0)
)

MASS = {22: 0.0, 11: 0.000511, 13: 0.10566, 211: 0.13957, 130: 0.49761, 2112: 0.93957, 2212: 0.93827,
        12: 0.0, 14: 0.0, 16: 0.0}  # fmt: skip
CHARGE = {22: 0.0, 11: -1.0, 13: -1.0, 211: 1.0, 130: 0.0, 2112: 0.0, 2212: 1.0, 12: 0.0, 14: 0.0, 16: 0.0}


def make_gen(
    pdgid: list[int] | np.ndarray,
    p: list[float] | np.ndarray,
    eta: list[float] | np.ndarray,
    phi: list[float] | np.ndarray,
    *,
    event: list[int] | np.ndarray | None = None,
    vertex: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> GenParticles:
    """Particles of momentum p in direction (eta, phi), one per event unless `event` says otherwise."""
    pdgid = np.asarray(pdgid, dtype=np.int32)
    n = len(pdgid)
    p, eta, phi = (np.broadcast_to(np.asarray(a, dtype=float), (n,)).copy() for a in (p, eta, phi))
    event = np.arange(n) if event is None else np.asarray(event)
    mass = np.array([MASS[abs(int(i))] for i in pdgid])
    charge = np.array([CHARGE[abs(int(i))] * (1 if i > 0 else -1) for i in pdgid])
    pt = p / np.cosh(eta)
    zeros = np.zeros(n)
    return GenParticles(
        counts=np.bincount(event, minlength=int(event.max()) + 1).astype(np.int64),
        event_weight=np.ones(int(event.max()) + 1),
        pdgid=pdgid, charge=charge, px=pt * np.cos(phi), py=pt * np.sin(phi), pz=pt * np.sinh(eta),
        energy=np.sqrt(p**2 + mass**2), mass=mass,
        vx=zeros + vertex[0], vy=zeros + vertex[1], vz=zeros + vertex[2], vt=zeros.copy(),
    )  # fmt: skip


def simulate(gen: GenParticles, detector: DetectorConfig = CLIC, seed: int = 1) -> DetectorResponse:
    return simulate_detector(gen, detector, detector_rng(seed))


def event_index(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts)), counts)


def per_event(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of a cluster column over each event's clusters (a split shower counts whole)."""
    return np.bincount(event_index(counts), weights=values, minlength=len(counts))


def measured_pt(omega: np.ndarray) -> np.ndarray:
    return C_GEV_PER_TESLA_METRE * CLIC.b_field_t / 1000.0 / np.abs(omega.astype(np.float64))


# ------------------------------------------------------------------------------------------------ calorimeter


@pytest.mark.parametrize("energy", [10.0, 100.0])
def test_photon_energy_resolution_matches_em_parametrisation(energy: float) -> None:
    n = 20_000
    rng = np.random.default_rng(5)
    gen = make_gen([22] * n, energy, rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n))
    clusters = simulate(gen).clusters
    assert np.all(clusters.counts == 1)
    e = clusters.columns["cluster_energy"].astype(np.float64)
    expected = np.hypot(0.15 / np.sqrt(energy), 0.01)
    assert np.mean(e) / energy == pytest.approx(1.0, abs=3 * expected / np.sqrt(n))
    assert np.std(e) / energy == pytest.approx(expected, rel=0.03)
    # The sampled longitudinal profile leaks past the 22 X0 ECAL now and then (it was exactly 0 when every
    # photon was one ECAL deposit): a few per cent of the energy on average, more at higher energy.
    hcal = clusters.columns["cluster_energy_hcal"].astype(np.float64)
    assert 0.0 < np.mean(hcal / e) < 0.06
    assert 0.01 < np.mean(hcal > 0) < 0.6


def test_shower_shapes_fluctuate_and_overlap_between_species() -> None:
    """σx/σy/σz come from each shower's sampled points: no value repeats, and species overlap.

    Before the sampled showers every EM cluster had σ = 15.00 mm exactly (a species tag).
    """
    n = 4000
    rng = np.random.default_rng(12)
    pdgid = rng.choice([22, 11, 130, 211, 2112], n)
    gen = make_gen(pdgid, rng.uniform(2.0, 30.0, n), rng.uniform(-1.0, 1.0, n), rng.uniform(-3, 3, n))
    response = simulate(gen)
    c = response.clusters.columns
    for name in ("cluster_sigma_x", "cluster_sigma_y", "cluster_sigma_z"):
        _, counts = np.unique(c[name], return_counts=True)
        assert counts.max() / len(c[name]) < 0.05, name
    links = response.calolinks.columns
    first = np.concatenate([[0], np.cumsum(response.clusters.counts)])[:-1]
    link_event = np.repeat(np.arange(len(response.clusters.counts)), response.calolinks.counts)
    cluster = first[link_event] + links["calolink_cluster_idx"]
    species = np.abs(pdgid[link_event])  # one particle per event here
    sx = c["cluster_sigma_x"][cluster]
    em_sx, had_sx = sx[np.isin(species, [22, 11])], sx[~np.isin(species, [22, 11])]
    # The distributions overlap: some hadron showers are narrower than the widest EM ones.
    assert np.mean(had_sx < np.percentile(em_sx, 95)) > 0.01


def test_neutral_hadron_energy_resolution_and_ecal_hcal_sharing() -> None:
    n, energy = 20_000, 20.0
    rng = np.random.default_rng(6)
    gen = make_gen([130] * n, np.sqrt(energy**2 - MASS[130] ** 2), rng.uniform(-1, 1, n), rng.uniform(-3, 3, n))
    # One K0L per event; a shower split into several clusters (cells.py) is summed over its event.
    clusters = simulate(gen).clusters
    seen = clusters.counts > 0
    c = {name: per_event(clusters.counts, clusters.columns[name].astype(np.float64))[seen]
         for name in ("cluster_energy", "cluster_energy_ecal")}  # fmt: skip
    e = c["cluster_energy"]
    assert len(e) > 0.99 * n
    expected = np.hypot(0.5 / np.sqrt(energy), 0.05)
    # Showers that start deep in the 8.5 lambda_I of ECAL + HCAL leak out at the back: the mean response
    # sits up to a per cent or so below 1 (it was exactly 1 before showers had a longitudinal profile).
    assert 0.985 < np.mean(e) / energy < 1.0
    assert np.std(e) / energy == pytest.approx(expected, rel=0.06)
    # The first interaction is exponential in lambda_I: 1 - exp(-1) = 63 % of K0L interact in the
    # 1 lambda_I ECAL; those interacting near its back deposit behind it, so somewhat fewer have ECAL
    # energy. The ECAL share varies continuously (no fixed per-species split).
    in_ecal = np.mean(c["cluster_energy_ecal"] > 0)
    start_in_ecal = 1 - np.exp(-CLIC.calorimeter.ecal_interaction_lengths)
    assert 0.75 * start_in_ecal < in_ecal <= start_in_ecal + 0.01
    fraction = (c["cluster_energy_ecal"] / c["cluster_energy"])[c["cluster_energy_ecal"] > 0]
    assert fraction.min() < 0.05 and fraction.max() > 0.8
    # Charged hadrons always ionise the ECAL before (or instead of) showering there (their satellites,
    # split off in the HCAL, need not).
    pions = simulate(make_gen([211] * 2000, 20.0, rng.uniform(-1, 1, 2000), rng.uniform(-3, 3, 2000))).clusters
    # (A pion first interacting behind the HCAL, e^-8.5 of them, leaves only its sub-threshold MIP track.)
    assert np.all(per_event(pions.counts, pions.columns["cluster_energy_ecal"])[pions.counts > 0] > 0)


def test_baryons_deposit_kinetic_energy_and_antibaryons_annihilate() -> None:
    n, p = 4000, 5.0
    rng = np.random.default_rng(7)
    eta, phi = rng.uniform(-1, 1, n), rng.uniform(-3, 3, n)
    energy = np.hypot(p, MASS[2112])
    for pdgid, expected in ((2112, energy - MASS[2112]), (-2112, energy + MASS[2112])):
        clusters = simulate(make_gen([pdgid] * n, p, eta, phi)).clusters
        e = per_event(clusters.counts, clusters.columns["cluster_energy"])[clusters.counts > 0]
        assert np.mean(e) == pytest.approx(expected, rel=0.02)


def test_muons_leave_minimum_ionising_deposits() -> None:
    n = 2000
    gen = make_gen([13] * n, 20.0, np.linspace(-1, 1, n), np.linspace(-3, 3, n))
    c = simulate(gen).clusters.columns
    assert len(c["cluster_energy"]) == n
    assert np.median(c["cluster_energy_ecal"]) == pytest.approx(CLIC.calorimeter.mip_ecal_gev, rel=0.1)
    assert np.median(c["cluster_energy_hcal"]) == pytest.approx(CLIC.calorimeter.mip_hcal_gev, rel=0.1)


def test_neutrinos_leave_nothing() -> None:
    n = 300
    rng = np.random.default_rng(8)
    pdgid = rng.choice([12, -12, 14, -14, 16, -16], n)
    only_neutrinos = simulate(make_gen(pdgid, 50.0, rng.uniform(-2, 2, n), rng.uniform(-3, 3, n)))
    for collection in (only_neutrinos.tracks, only_neutrinos.clusters, only_neutrinos.calolinks):
        assert collection.n_rows == 0
        assert len(collection.counts) == n
    # With a photon beside each neutrino, only photons show up in the truth links.
    mixed = make_gen(
        np.ravel(np.column_stack([pdgid, np.full(n, 22)])), 50.0, np.repeat(rng.uniform(-1, 1, n), 2),
        np.ravel(np.column_stack([np.zeros(n), np.full(n, 2.0)])), event=np.repeat(np.arange(n), 2),
    )  # fmt: skip
    links = simulate(mixed).calolinks.columns
    np.testing.assert_array_equal(links["calolink_gen_idx"], 1)


def test_link_energies_sum_to_cluster_energies_in_busy_events() -> None:
    # Jet-like events: particles of mixed species in narrow cones, so that deposits do merge.
    rng = np.random.default_rng(9)
    n_events, per_event = 300, 40
    species = rng.choice([22, 22, 211, -211, 130, 2112, 11, 13, 12], n_events * per_event)
    axis_eta = np.repeat(rng.uniform(-1.5, 1.5, (n_events, 2)), per_event // 2)
    axis_phi = np.repeat(rng.uniform(-3, 3, (n_events, 2)), per_event // 2)
    gen = make_gen(
        species, rng.exponential(5.0, n_events * per_event) + 0.2, axis_eta + rng.normal(0, 0.05, axis_eta.size),
        axis_phi + rng.normal(0, 0.05, axis_phi.size), event=np.repeat(np.arange(n_events), per_event),
    )  # fmt: skip
    response = simulate(gen)
    c, links = response.clusters, response.calolinks
    cluster_event = event_index(c.counts)
    link_event = event_index(links.counts)
    first_cluster = np.concatenate([[0], np.cumsum(c.counts)])[:-1]
    flat_cluster = first_cluster[link_event] + links.columns["calolink_cluster_idx"]
    assert np.all(links.columns["calolink_cluster_idx"] < c.counts[link_event])
    assert np.all(links.columns["calolink_gen_idx"] < gen.counts[link_event])
    linked_energy = np.bincount(flat_cluster, weights=links.columns["calolink_energy"], minlength=c.n_rows)
    np.testing.assert_allclose(linked_energy, c.columns["cluster_energy"], rtol=1e-5)
    # Every cluster has a link, many have several (merged); a particle is linked to a cluster at most once
    # (a split hadron shower links to each of its clusters once).
    links_per_cluster = np.bincount(flat_cluster, minlength=c.n_rows)
    assert links_per_cluster.min() >= 1
    assert np.mean(links_per_cluster > 1) > 0.1
    flat_gen = gen.offsets[link_event] + links.columns["calolink_gen_idx"]
    pair = flat_cluster.astype(np.int64) * gen.n_particles + flat_gen
    assert len(np.unique(pair)) == len(pair)
    assert not np.any(np.abs(gen.pdgid[flat_gen]) == 12)
    # Cluster bookkeeping: sub-detector energies add up, thresholds and minimum sizes hold.
    cols = c.columns
    total = cols["cluster_energy_ecal"] + cols["cluster_energy_hcal"] + cols["cluster_energy_other"]
    np.testing.assert_allclose(total, cols["cluster_energy"], rtol=1e-5)
    assert cols["cluster_energy"].min() >= CLIC.calorimeter.cluster_energy_min_gev
    assert cols["cluster_nhits"].min() >= 1
    # Spreads come from the sampled points; only a hadron first interacting at the very back of the HCAL
    # (e^-8 of them) can keep a single point inside and so a zero spread.
    assert np.mean(cols["cluster_sigma_x"] == 0.0) < 1e-3
    assert np.all(np.diff(cluster_event) >= 0)


def test_cluster_energy_threshold() -> None:
    n = 2000
    eta, phi = np.linspace(-1, 1, n), np.linspace(-3, 3, n)
    soft = make_gen([22] * n, 0.05, eta, phi)
    kept = simulate(soft).clusters
    # 50 MeV photons pass the 0.1 GeV threshold only on an upward fluctuation (sigma/E ~ 67 %).
    assert kept.n_rows < 0.1 * n
    assert kept.columns["cluster_energy"].min() >= CLIC.calorimeter.cluster_energy_min_gev
    no_threshold = replace(CLIC, calorimeter=replace(CLIC.calorimeter, cluster_energy_min_gev=0.0))
    assert simulate(soft, no_threshold).clusters.n_rows > 0.9 * n
    assert simulate(make_gen([22] * n, 1.0, eta, phi)).clusters.n_rows == n


def test_charged_particles_bend_curl_and_neutral_ones_escape_through_the_beam_hole() -> None:
    phi0 = 0.3
    # A 2 GeV pi+ reaches the barrel bent clockwise: its azimuth there is phi0 - asin(r / 2R).
    radius_mm = 2.0 / (C_GEV_PER_TESLA_METRE * CLIC.b_field_t) * 1000.0
    # The cluster position is the shower's centroid (behind the ECAL face, scattered by the sampled
    # lateral profile), no longer the impact point itself: the bend (0.47 rad) is checked to 0.05 rad.
    c = simulate(make_gen([211], 2.0, 0.0, phi0), SHARP).clusters.columns
    assert 1500.0 <= np.hypot(c["cluster_x"], c["cluster_y"])[0] < 1500.0 + 202.0 + 38.0 + 1590.0
    expected_phi = phi0 - np.arcsin(1500.0 / (2 * radius_mm))
    assert np.arctan2(c["cluster_y"], c["cluster_x"])[0] == pytest.approx(expected_phi, abs=0.05)
    # A 0.5 GeV pi+ curls up inside the ECAL radius: a track, no cluster; a K0L of the same momentum
    # goes straight through.
    curler = simulate(make_gen([211], 0.5, 0.0, phi0))
    assert curler.tracks.n_rows == 1 and curler.clusters.n_rows == 0
    assert simulate(make_gen([130], 0.5, 0.0, phi0), SHARP).clusters.n_rows == 1
    # Photons at 3 degrees leave through the beam hole; at 20 degrees they hit the endcap face.
    forward = simulate(make_gen([22, 22], 50.0, [-np.log(np.tan(np.radians(3) / 2)), 1.735], 1.0), SHARP)
    np.testing.assert_array_equal(forward.clusters.counts, [0, 1])
    assert 2307.0 <= forward.clusters.columns["cluster_z"][0] < 2307.0 + 202.0


def test_a_particle_along_the_beam_line_meets_only_an_endcap_outside_its_hole() -> None:
    # pT exactly 0, as the lepton PDF's collinear ISR photons have: made on the beam line it leaves through
    # the endcap hole; made beyond the hole's radius it showers in the endcap there. No NaN either way (a
    # 0.41 GeV photon along -z once gave a cluster at z = -inf).
    gen = make_gen([22, 22], 1.0, 0.0, 0.0)
    gen = replace(gen, px=np.zeros(2), py=np.zeros(2), pz=np.array([-0.41, 5.0]), energy=np.array([0.41, 5.0]),
                  vx=np.array([-0.05, 400.0]), vy=np.zeros(2), vz=np.array([-0.6, 0.0]))
    clusters = simulate(gen, SHARP).clusters
    np.testing.assert_array_equal(clusters.counts, [0, 1])
    for name, values in clusters.columns.items():
        assert np.all(np.isfinite(values)), name
    c = clusters.columns
    assert 2307.0 <= c["cluster_z"][0] < 2307.0 + 202.0
    assert np.hypot(c["cluster_x"], c["cluster_y"])[0] == pytest.approx(400.0, abs=30.0)


# ------------------------------------------------------------------------------------------------ tracker


@pytest.mark.parametrize(("pt", "theta_deg"), [(10.0, 90.0), (100.0, 90.0), (1.0, 60.0)])
def test_track_curvature_resolution_matches_parametrisation(pt: float, theta_deg: float) -> None:
    n = 20_000
    theta = np.radians(theta_deg)
    eta = -np.log(np.tan(theta / 2))
    rng = np.random.default_rng(10)
    gen = make_gen(rng.choice([211, -211], n), pt / np.sin(theta), eta, rng.uniform(-np.pi, np.pi, n))
    tracks = simulate(gen).tracks
    cols = tracks.columns
    found = tracks.n_rows / n
    assert found == pytest.approx(CLIC.tracker.efficiency_plateau, abs=0.01 if pt >= 10 else 0.03)
    residual = 1.0 / measured_pt(cols["track_omega"]) - 1.0 / pt
    expected = np.hypot(2e-5, 1e-3 / (pt * np.sin(theta)))
    assert np.std(residual) == pytest.approx(expected, rel=0.03)
    assert abs(np.mean(residual)) < 3 * expected / np.sqrt(tracks.n_rows)
    # The omega sign is the charge (EDM4hep convention with B along +z) and the charge is measured right.
    true_charge = gen.charge[cols["track_gen_idx"] + gen.offsets[event_index(tracks.counts)]]
    np.testing.assert_array_equal(np.sign(cols["track_omega"]), cols["track_charge"])
    assert np.mean(cols["track_charge"] == true_charge) > 0.999


def test_prompt_central_track_parameters() -> None:
    n = 5000
    rng = np.random.default_rng(11)
    phi = rng.uniform(-np.pi, np.pi, n)
    tracks = simulate(make_gen([211] * n, 10.0, 0.0, phi)).tracks
    c = tracks.columns
    expected_d0 = np.hypot(0.005, 0.015 / 10.0)
    assert np.std(c["track_d0"]) == pytest.approx(expected_d0, rel=0.05)
    assert np.std(c["track_z0"]) == pytest.approx(expected_d0, rel=0.05)
    assert abs(np.mean(c["track_d0"])) < 4 * expected_d0 / np.sqrt(tracks.n_rows)
    np.testing.assert_array_equal(c["track_radius_innermost_hit"], 31.0)
    np.testing.assert_array_equal(c["track_ndf"], 2 * len(CLIC.tracker.barrel_layers_mm) - 5)
    np.testing.assert_allclose(c["track_tanlambda"], 0.0, atol=1e-3)
    found_phi = phi[c["track_gen_idx"] + np.flatnonzero(tracks.counts)]
    np.testing.assert_allclose(np.angle(np.exp(1j * (c["track_phi"] - found_phi))), 0.0, atol=2e-3)
    np.testing.assert_allclose(c["track_time"].mean(), 0.0, atol=0.01)
    # chi2 follows the chi2 distribution of the fit's ndf; dE/dx sits near the MIP value.
    assert np.mean(c["track_chi2"]) == pytest.approx(np.mean(c["track_ndf"]), rel=0.03)
    assert np.median(c["track_dedx"]) == pytest.approx(CLIC.tracker.dedx_mip_gev_per_mm, rel=0.3)


@pytest.mark.parametrize(("vy", "expected_d0"), [(50.0, 50.0), (-50.0, -50.0)])
def test_displaced_track_impact_parameter_and_innermost_hit(vy: float, expected_d0: float) -> None:
    n = 300
    tracks = simulate(make_gen([211] * n, 50.0, 0.0, 0.0, vertex=(0.0, vy, 0.0))).tracks
    c = tracks.columns
    assert tracks.n_rows > 0.8 * n
    # Made at (0, vy) moving along +x: the closest approach to the beam is vy itself (PCA = (0, d0)).
    np.testing.assert_allclose(c["track_d0"], expected_d0, atol=0.1)
    np.testing.assert_allclose(c["track_z0"], 0.0, atol=0.05)
    np.testing.assert_array_equal(c["track_radius_innermost_hit"], 58.0)  # the first layer beyond 50 mm
    np.testing.assert_array_equal(c["track_ndf"], 2 * 7 - 5)


def test_tracker_acceptance() -> None:
    cos_theta = np.array([0.0, 0.98, 0.995])
    eta = np.arctanh(cos_theta)
    n = 500
    gen = make_gen(np.tile([211, 211, 211, 211], n), np.tile([5.0, 5.0, 5.0, 0.08], n),
                   np.tile([*eta, 0.0], n), 0.0, event=np.repeat(np.arange(n), 4))  # fmt: skip
    tracks = simulate(gen).tracks
    found = np.bincount(tracks.columns["track_gen_idx"], minlength=4) / n
    assert found[0] > 0.95 and found[1] > 0.9  # central, and forward inside |cos(theta)| < 0.99
    assert found[2] == 0 and found[3] == 0  # beyond the acceptance, and below pT 0.1 GeV


# ------------------------------------------------------------------------------------------------ output


def test_columns_follow_the_schema() -> None:
    response = simulate(make_gen([211, 22, 130, 13], 10.0, [0.0, 0.5, -0.5, 1.0], [0.0, 1.0, 2.0, 3.0]))
    assert tuple(response.tracks.columns) == SIM_TRACK_BRANCHES
    assert tuple(response.clusters.columns) == SIM_CLUSTER_BRANCHES
    assert tuple(response.calolinks.columns) == SIM_CALOLINK_BRANCHES
    for collection in (response.tracks, response.clusters, response.calolinks):
        for name, values in collection.columns.items():
            integer = name.endswith(("_idx", "_ndf", "_nhits"))
            assert values.dtype == (np.int32 if integer else np.float32), name


def test_detector_is_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(12)
    n = 2000
    gen = make_gen(rng.choice([22, 211, -211, 130], n), rng.exponential(5, n) + 0.3, rng.uniform(-2, 2, n),
                   rng.uniform(-3, 3, n), event=np.sort(rng.integers(0, 50, n)))  # fmt: skip
    a, b, c = simulate(gen, seed=3), simulate(gen, seed=3), simulate(gen, seed=4)
    for name in ("tracks", "clusters", "calolinks"):
        ca, cb = getattr(a, name), getattr(b, name)
        np.testing.assert_array_equal(ca.counts, cb.counts)
        for col in ca.columns:
            np.testing.assert_array_equal(ca.columns[col], cb.columns[col])
    assert not np.array_equal(a.clusters.columns["cluster_energy"], c.clusters.columns["cluster_energy"])
    assert not np.array_equal(a.tracks.columns["track_d0"], c.tracks.columns["track_d0"])


def test_shared_batch_geometry_is_what_each_kernel_would_compute() -> None:
    # Tracker and calorimeter take pT, the production radius and the circle from one pre-pass; these must
    # be the very numbers the scalar helix functions give, displaced and neutral particles included.
    from colliderflow.generate.calorimeter import impact_point, impact_point_on_circle
    from colliderflow.generate.helix import STRAIGHT_CURVATURE, circle_geometry
    from colliderflow.generate.tracker import particle_geometry

    rng = np.random.default_rng(21)
    n = 3000
    gen = make_gen(rng.choice([22, 211, -211, 13, 130, 2212], n), rng.exponential(3, n) + 0.05,
                   rng.uniform(-3, 3, n), rng.uniform(-3, 3, n), event=np.sort(rng.integers(0, 30, n)))  # fmt: skip
    gen = replace(gen, vx=rng.normal(0, 30, n), vy=rng.normal(0, 30, n), vz=rng.normal(0, 50, n))
    geometry = particle_geometry(gen, CLIC)
    k_per_inv_pt = C_GEV_PER_TESLA_METRE * CLIC.b_field_t / 1000.0
    calo = CLIC.calorimeter
    for i in range(n):
        pt = np.sqrt(gen.px[i] * gen.px[i] + gen.py[i] * gen.py[i])  # as GenParticles.pt
        cos0, sin0, tl = gen.px[i] / pt, gen.py[i] / pt, gen.pz[i] / pt
        k = gen.charge[i] * k_per_inv_pt / pt if gen.charge[i] != 0 else 0.0
        assert geometry.pt[i] == pt and geometry.r0[i] == np.sqrt(gen.vx[i] * gen.vx[i] + gen.vy[i] * gen.vy[i])
        if abs(k) >= STRAIGHT_CURVATURE:
            _, dist, base = circle_geometry(gen.vx[i], gen.vy[i], cos0, sin0, k)
            assert (geometry.dist[i], geometry.base[i]) == (dist, base)
        else:
            assert np.isnan(geometry.dist[i]) and np.isnan(geometry.base[i])
        faces = (calo.ecal_barrel_radius_mm, calo.ecal_endcap_z_mm, calo.ecal_endcap_inner_radius_mm)
        own = impact_point(gen.vx[i], gen.vy[i], gen.vz[i], cos0, sin0, tl, k, *faces)
        shared = impact_point_on_circle(gen.vx[i], gen.vy[i], gen.vz[i], cos0, sin0, tl, k, geometry.r0[i],
                                        geometry.dist[i], geometry.base[i], *faces)
        assert own == shared


def test_fake_tracks_have_no_truth_and_the_configured_rate() -> None:
    """About `fake_tracks_per_track` fakes per real track, each with track_gen_idx -1 and a poor fit."""
    n = 20_000
    rng = np.random.default_rng(31)
    gen = make_gen([211] * n, 5.0, rng.uniform(-1, 1, n), rng.uniform(-3, 3, n))
    tracks = simulate_detector(gen, CLIC_WITH_FAKES, detector_rng(3)).tracks
    gen_idx = tracks.columns["track_gen_idx"]
    fake = gen_idx == -1
    n_real = int(np.sum(~fake))
    rate = CLIC_WITH_FAKES.tracker.fake_tracks_per_track
    assert np.sum(fake) == pytest.approx(rate * n_real, rel=5 / np.sqrt(rate * n_real))
    chi2_ndf = tracks.columns["track_chi2"] / tracks.columns["track_ndf"]
    assert np.median(chi2_ndf[fake]) > 2.0 * np.median(chi2_ndf[~fake])
    # Tracks stay grouped by event: every event's tracks are contiguous and counted.
    assert tracks.counts.sum() == len(gen_idx)

"""The ntuplizer on hand-made events whose every element, target and candidate is predicted here.

Event 0 (12 elements: tracks t0–t3, then clusters c0–c7):
  g0  π+ with track t0 and its own hadronic cluster c0       → target on t0, c0 empty
  g1  photon alone in ECAL cluster c1                         → photon target on c1
  g2, g3  two photons merged into cluster c2                  → one summed photon target on c2
  g4  neutrino                                                → nothing, not in gen MET
  g5  electron with track t1 and ECAL cluster c3 (E/p = 1)    → electron on t1
  g6  K0L outside the calorimeter                             → gen_unassigned_energy
  g7  π− with track t2, sharing hadronic cluster c4 with g8   → charged hadron on t2
  g8  neutron depositing 15 GeV in c4                         → neutral hadron on c4
  g9  muon with track t3 and a MIP cluster c5                 → muon on t3
  g10 K0L split over c6 (3 GeV) and c7 (5 GeV)                → target on c7, c6 empty
  g11 a status-2 Z                                            → ignored
Event 1: one photon cluster, and a π+ whose only track is a fake (gen index −1) → unassigned.
Event 2: a lone neutrino, no elements.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from sim_fixture import BFIELD, EventBuilder, calo_position, events_to_arrays, omega_of, write_sim

from colliderflow.io.parquet import read_event_parquet
from colliderflow.io.sim_reader import read_sim
from colliderflow.params import stage_params
from colliderflow.ntuplize.baseline import BaselineParams, baseline_candidates, extrapolate_to_calo
from colliderflow.ntuplize.elements import (
    CLU,
    TRK,
    cluster_features,
    element_rows,
    layout_of,
    track_features,
)
from colliderflow.ntuplize.events import ntuplize_files
from colliderflow.ntuplize.targets import (
    CLS_CHARGED_HADRON,
    CLS_ELECTRON,
    CLS_MUON,
    CLS_NEUTRAL_HADRON,
    CLS_NONE,
    CLS_PHOTON,
    assign_targets,
    jet_index,
)
from colliderflow.schema import PF

K = 0.299792458e-3
PI_MASS, K0_MASS, N_MASS, E_MASS, MU_MASS = 0.13957, 0.497611, 0.939565, 0.000511, 0.105658
PARAMS = {
    "split_fractions": {"train": 0.7, "val": 0.1, "test": 0.2},
    "jets": {"algorithm": "ee_genkt", "radius": 0.4, "p": -1.0, "min_pt": 5.0},
}


def p3(pt: float, eta: float, phi: float) -> tuple[float, float, float]:
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)


def position(eta: float, phi: float, r: float = 1500.0) -> tuple[float, float, float]:
    return r * np.cos(phi), r * np.sin(phi), r * np.sinh(eta)


def build_events() -> list[EventBuilder]:
    ev = EventBuilder()
    g0 = ev.particle(211, 1.0, *p3(10, 0.5, 0.0), mass=PI_MASS)
    g1 = ev.particle(22, 0.0, *p3(8, 0.0, 2.0))
    g2 = ev.particle(22, 0.0, *p3(5, -1.0, -1.0))
    g3 = ev.particle(22, 0.0, *p3(3, -1.02, -0.98))
    ev.particle(12, 0.0, *p3(7, 0.3, 1.0))
    g5 = ev.particle(11, -1.0, *p3(6, -0.4, 2.8), mass=E_MASS)
    ev.particle(130, 0.0, *p3(6, 2.5, -2.5), mass=K0_MASS)  # inside the |cos θ| ≤ 0.99 acceptance, no element
    g7 = ev.particle(-211, -1.0, *p3(8, 0.2, 1.3), mass=PI_MASS)
    g8 = ev.particle(2112, 0.0, *p3(12, 0.25, 1.4), mass=N_MASS)
    g9 = ev.particle(13, -1.0, *p3(20, -1.5, -2.0), mass=MU_MASS)
    g10 = ev.particle(130, 0.0, *p3(6, 1.5, -0.5), mass=K0_MASS)
    ev.particle(23, 0.0, *p3(1, 0.0, 0.0), mass=91.19, status=2)
    ev.track(g0)
    ev.track(g5)
    ev.track(g7)
    ev.track(g9)
    ev.cluster({g0: 11.0}, ecal_fraction=0.3)
    ev.cluster({g1: 8.0}, ecal_fraction=0.98)
    ev.cluster({g2: 5.0 * np.cosh(-1.0), g3: 3.0 * np.cosh(-1.02)}, ecal_fraction=0.97)
    ev.cluster({g5: ev.columns["gen_energy"][g5]}, ecal_fraction=0.95)
    ev.cluster({g7: ev.columns["gen_energy"][g7], g8: 15.0}, ecal_fraction=0.3, position_of=g7)
    ev.cluster({g9: 0.3}, ecal_fraction=0.1)
    ev.cluster({g10: 3.0}, ecal_fraction=0.2, position=position(1.9, -0.9))
    ev.cluster({g10: 5.0}, ecal_fraction=0.2)

    ev1 = EventBuilder()
    h0 = ev1.particle(22, 0.0, *p3(20, 0.1, 0.5))
    ev1.particle(211, 1.0, *p3(3, -0.5, -2.0), mass=PI_MASS)
    ev1.track(1, track_gen_idx=-1)  # a fake: the track is not attributed to any particle
    ev1.cluster({h0: 20.0 * np.cosh(0.1)}, ecal_fraction=0.99)

    ev2 = EventBuilder()
    ev2.particle(-14, 0.0, *p3(30, 0.0, 0.0))
    return [ev, ev1, ev2]


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "handmade.root"
    return write_sim(path, events_to_arrays(build_events()))


@pytest.fixture(scope="module")
def sim(sim_file: Path) -> ak.Array:
    return read_sim(sim_file)


@pytest.fixture(scope="module")
def ntuple(sim_file: Path, tmp_path_factory: pytest.TempPathFactory) -> ak.Array:
    out = tmp_path_factory.mktemp("nt") / "handmade.parquet"
    ntuplize_files([sim_file], output=out, sample="hand", shard=5, params=PARAMS, seed=3, provenance=None)
    return read_event_parquet(out)


def gen(sim: ak.Array, event: int, idx: int) -> dict[str, float]:
    return {b[4:]: float(sim[b][event][idx]) for b in sim.fields if b.startswith("gen_")}


# ---------------------------------------------------------------------------------------------------
# Elements
# ---------------------------------------------------------------------------------------------------
def test_element_order_and_counts(ntuple: ak.Array) -> None:
    assert ak.to_list(ntuple.n_elements) == [12, 2, 0]
    elemtype = ak.to_list(ntuple.X[:, :, 0])
    assert elemtype[0] == [1] * 4 + [2] * 8
    assert elemtype[1] == [1, 2]
    assert elemtype[2] == []


def test_track_features_from_helix_parameters(sim: ak.Array, ntuple: ak.Array) -> None:
    x = ak.to_numpy(ntuple.X[0])
    omega, tanl, phi = (float(sim[b][0][0]) for b in ("track_omega", "track_tanlambda", "track_phi"))
    pt = K * BFIELD / abs(omega)
    assert pt == pytest.approx(10.0, rel=1e-6)
    expected = {
        "elemtype": 1, "pt": pt, "eta": np.arcsinh(tanl), "sin_phi": np.sin(phi), "cos_phi": np.cos(phi),
        "p": pt * np.sqrt(1 + tanl**2), "chi2": 12.5, "ndf": 9, "dEdx": 3.1e-7, "dEdxError": 1.5e-8,
        "radiusOfInnermostHit": 31.0, "tanLambda": tanl, "D0": 0.01, "omega": omega, "Z0": -0.02,
        "time": 0.25, "pad": 0.0,
    }
    for name, value in expected.items():
        assert x[0, TRK[name]] == pytest.approx(value, rel=1e-6, abs=1e-12), name
    assert x[0, TRK["eta"]] == pytest.approx(0.5, rel=1e-6)  # the π+ was made at η = 0.5


def test_cluster_features_from_position(sim: ak.Array, ntuple: ak.Array) -> None:
    x = ak.to_numpy(ntuple.X[0])[4 + 1]  # c1, the lone photon
    cx, cy, cz = (float(sim[b][0][1]) for b in ("cluster_x", "cluster_y", "cluster_z"))
    r = np.hypot(cx, cy)
    energy = float(sim.cluster_energy[0][1])
    assert energy == pytest.approx(8.0, rel=1e-6)
    expected = {
        "elemtype": 2, "et": energy * r / np.hypot(r, cz), "eta": np.arcsinh(cz / r),
        "sin_phi": cy / r, "cos_phi": cx / r, "energy": energy, "position.x": cx, "position.y": cy,
        "position.z": cz, "iTheta": float(sim.cluster_itheta[0][1]), "energy_ecal": 0.98 * energy,
        "energy_hcal": 0.02 * energy, "energy_other": 0.0, "num_hits": 25, "sigma_x": 10.0, "sigma_y": 11.0,
        "sigma_z": 12.0,
    }
    for name, value in expected.items():
        assert x[CLU[name]] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    assert x[CLU["eta"]] == pytest.approx(0.0, abs=1e-6)
    assert np.arctan2(x[CLU["sin_phi"]], x[CLU["cos_phi"]]) == pytest.approx(2.0, abs=1e-6)


def test_track_with_zero_curvature_is_a_clear_error(tmp_path: Path) -> None:
    events = build_events()
    events[0].columns["track_omega"][1] = 0.0
    path = write_sim(tmp_path / "straight.root", events_to_arrays(events))
    with pytest.raises(ValueError, match=r"straight\.root.*omega = 0"):
        ntuplize_files([path], output=tmp_path / "o.parquet", sample=None, shard=0, params=PARAMS, seed=0,
                       provenance=None)
    assert not (tmp_path / "o.parquet").exists()


# ---------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------
def test_target_classes_per_element(ntuple: ak.Array) -> None:
    cls = ak.to_list(ntuple.ytarget[:, :, PF["cls_id"]])
    assert cls[0] == [
        CLS_CHARGED_HADRON, CLS_ELECTRON, CLS_CHARGED_HADRON, CLS_MUON,  # t0..t3
        CLS_NONE, CLS_PHOTON, CLS_PHOTON, CLS_NONE, CLS_NEUTRAL_HADRON, CLS_NONE, CLS_NONE, CLS_NEUTRAL_HADRON,
    ]
    assert cls[1] == [CLS_NONE, CLS_PHOTON]  # the fake track has no target
    assert ak.to_list(ntuple.ytarget[:, :, PF["charge"]])[0][:4] == [1.0, -1.0, -1.0, -1.0]


def test_target_kinematics_of_single_particles(sim: ak.Array, ntuple: ak.Array) -> None:
    y = ak.to_numpy(ntuple.ytarget[0])
    for element, particle in ((0, 0), (5, 1), (8, 8), (11, 10)):
        g = gen(sim, 0, particle)
        pt = np.hypot(g["px"], g["py"])
        assert y[element, PF["pt"]] == pytest.approx(pt, rel=1e-6)
        assert y[element, PF["eta"]] == pytest.approx(np.arcsinh(g["pz"] / pt), rel=1e-5, abs=1e-6)
        assert y[element, PF["sin_phi"]] == pytest.approx(g["py"] / pt, abs=1e-6)
        assert y[element, PF["cos_phi"]] == pytest.approx(g["px"] / pt, abs=1e-6)
        assert y[element, PF["energy"]] == pytest.approx(g["energy"], rel=1e-6)


def test_merged_photons_sum_their_four_momenta(sim: ak.Array, ntuple: ak.Array) -> None:
    y = ak.to_numpy(ntuple.ytarget[0])[4 + 2]  # c2
    a, b = gen(sim, 0, 2), gen(sim, 0, 3)
    px, py, pz = a["px"] + b["px"], a["py"] + b["py"], a["pz"] + b["pz"]
    pt = np.hypot(px, py)
    assert y[PF["cls_id"]] == CLS_PHOTON
    assert y[PF["energy"]] == pytest.approx(a["energy"] + b["energy"], rel=1e-6)
    assert y[PF["pt"]] == pytest.approx(pt, rel=1e-6)
    assert y[PF["eta"]] == pytest.approx(np.arcsinh(pz / pt), rel=1e-5)
    assert y[PF["cos_phi"]] == pytest.approx(px / pt, abs=1e-6)


def test_class_and_charge_of_a_merged_target_come_from_the_most_energetic_particle(tmp_path: Path) -> None:
    """The leading particle gives the class, which is then remapped by the hosting cluster.

    Before the particleflow element rule this cluster-hosted pion target was a charged hadron with
    charge +1; a cluster cannot show a charge, so particleflow (and now we) make it a neutral hadron.
    With the photon leading instead, the merged target is a photon.
    """
    ev = EventBuilder()
    photon = ev.particle(22, 0.0, *p3(2, 0.0, 0.0))
    pion = ev.particle(211, 1.0, *p3(9, 0.01, 0.01), mass=PI_MASS)  # no track: deposits only
    ev.cluster({photon: 2.0, pion: 9.0}, ecal_fraction=0.5)
    ev2 = EventBuilder()
    photon2 = ev2.particle(22, 0.0, *p3(9, 0.0, 0.0))
    pion2 = ev2.particle(211, 1.0, *p3(2, 0.01, 0.01), mass=PI_MASS)
    ev2.cluster({photon2: 9.0, pion2: 2.0}, ecal_fraction=0.5)
    events = read_sim(write_sim(tmp_path / "m.root", events_to_arrays([ev, ev2])))
    targets = assign_targets(events, layout_of(events))
    row = targets.rows[0]
    assert row[PF["cls_id"]] == CLS_NEUTRAL_HADRON
    assert row[PF["charge"]] == 0.0
    assert row[PF["energy"]] == pytest.approx(2.0 + float(events.gen_energy[0][1]), rel=1e-6)
    assert targets.rows[1][PF["cls_id"]] == CLS_PHOTON


@pytest.mark.parametrize(("pdgid", "charge", "expected"), [
    (11, -1.0, CLS_PHOTON), (22, 0.0, CLS_PHOTON), (13, -1.0, CLS_NEUTRAL_HADRON),
    (211, 1.0, CLS_NEUTRAL_HADRON), (2112, 0.0, CLS_NEUTRAL_HADRON)])
def test_a_cluster_hosted_target_is_a_neutral_by_the_particleflow_rule(tmp_path: Path, pdgid: int, charge: float,
                                                                       expected: int) -> None:
    ev = EventBuilder()
    g = ev.particle(pdgid, charge, *p3(5, 0.2, 0.3), mass=0.0)
    ev.cluster({g: 5.0}, ecal_fraction=0.9)
    events = read_sim(write_sim(tmp_path / "c.root", events_to_arrays([ev])))
    row = assign_targets(events, layout_of(events)).rows[0]
    assert (row[PF["cls_id"]], row[PF["charge"]]) == (expected, 0.0)


@pytest.mark.parametrize(("pdgid", "charge", "expected"), [
    (11, -1.0, CLS_ELECTRON), (13, 1.0, CLS_MUON), (211, -1.0, CLS_CHARGED_HADRON),
    (22, 0.0, CLS_CHARGED_HADRON), (130, 0.0, CLS_CHARGED_HADRON)])
def test_a_track_hosted_target_is_charged_by_the_particleflow_rule(tmp_path: Path, pdgid: int, charge: float,
                                                                   expected: int) -> None:
    """A neutral on a track (a conversion leg or a fake) becomes a charged hadron with the track's charge."""
    ev = EventBuilder()
    g = ev.particle(pdgid, charge, *p3(5, 0.2, 0.3), mass=0.0)
    ev.track(g, track_charge=-1.0, track_omega=float(omega_of(5.0, -1.0)))
    events = read_sim(write_sim(tmp_path / "t.root", events_to_arrays([ev])))
    row = assign_targets(events, layout_of(events)).rows[0]
    assert row[PF["cls_id"]] == expected
    assert row[PF["charge"]] == (charge if charge != 0 else -1.0)


def test_unassigned_energy_counts_only_visible_particles_without_element(sim: ak.Array, ntuple: ak.Array) -> None:
    k0 = gen(sim, 0, 6)
    pion = gen(sim, 1, 1)  # its only track is a fake not attributed to it, and it deposits nothing
    assert ak.to_list(ntuple.gen_unassigned_energy) == pytest.approx([k0["energy"], pion["energy"], 0.0], rel=1e-6)


def test_energy_is_conserved_between_targets_and_unassigned(sim: ak.Array, ntuple: ak.Array) -> None:
    apdg = np.abs(ak.to_numpy(sim.gen_pdgid[0]))
    status = ak.to_numpy(sim.gen_status[0])
    visible = (status == 1) & ~np.isin(apdg, (12, 14, 16))
    visible_energy = float(np.sum(ak.to_numpy(sim.gen_energy[0])[visible]))
    target_energy = float(ak.sum(ntuple.ytarget[0][:, PF["energy"]]))
    assert target_energy + float(ntuple.gen_unassigned_energy[0]) == pytest.approx(visible_energy, rel=1e-6)


def test_gen_met_excludes_neutrinos_and_unstable_particles(sim: ak.Array, ntuple: ak.Array) -> None:
    visible = [i for i in range(12) if i not in (4, 11)]
    px = sum(gen(sim, 0, i)["px"] for i in visible)
    py = sum(gen(sim, 0, i)["py"] for i in visible)
    assert float(ntuple.genmet[0]) == pytest.approx(np.hypot(px, py), rel=1e-5)
    assert float(ntuple.genmet[2]) == 0.0  # only a neutrino


def test_jets_of_the_event(ntuple: ak.Array) -> None:
    genjets = ak.to_list(ntuple.genjets)
    targetjets = ak.to_list(ntuple.targetjets)
    assert genjets[2] == [] and targetjets[2] == []
    assert len(genjets[1]) == 1 and genjets[1][0][0] == pytest.approx(20.0, rel=1e-5)  # the lone photon
    pts = [j[0] for j in targetjets[0]]
    assert pts == sorted(pts, reverse=True) and min(pts) >= 5.0
    # The forward K0L (pT 6 GeV) that reached no element is a gen jet of its own, but no target jet.
    assert len(genjets[0]) == len(targetjets[0]) + 1
    k0_jets = [j for j in genjets[0] if abs(j[1] - 2.5) < 0.01]
    assert len(k0_jets) == 1 and k0_jets[0][0] == pytest.approx(6.0, rel=1e-5)


def test_target_jet_index_points_at_the_jet_around_the_particle(ntuple: ak.Array) -> None:
    jets = ak.to_numpy(ntuple.targetjets[0])
    y = ak.to_numpy(ntuple.ytarget[0])
    for row in y:
        if row[PF["cls_id"]] == 0:
            assert row[PF["jet_idx"]] == -1
            continue
        idx = int(row[PF["jet_idx"]])
        if idx >= 0:
            jet = jets[idx]
            dphi = np.angle(np.exp(1j * (np.arctan2(row[PF["sin_phi"]], row[PF["cos_phi"]]) - jet[2])))
            assert np.hypot(row[PF["eta"]] - jet[1], dphi) < 0.4
    # The 20 GeV muon is a jet on its own.
    muon_jet = jets[int(y[3, PF["jet_idx"]])]
    assert muon_jet[0] == pytest.approx(y[3, PF["pt"]], rel=1e-5)


@pytest.mark.parametrize("algorithm", ["ee_genkt", "antikt"])
def test_jet_index_nearest_axis_within_radius(algorithm: str) -> None:
    rows = np.zeros((5, 8))
    # (η, φ) of four particles and one empty element; two jets at φ = 0.1 and φ = 1.0.
    for i, (eta, phi) in enumerate([(0.0, 0.0), (0.0, 0.9), (0.0, 2.5), (0.05, 0.5), (0.0, 0.0)]):
        rows[i, PF["eta"]], rows[i, PF["sin_phi"]], rows[i, PF["cos_phi"]] = eta, np.sin(phi), np.cos(phi)
        rows[i, PF["cls_id"]] = 0 if i == 4 else 3
    jets = ak.zip({"eta": ak.Array([[0.0, 0.0]]), "phi": ak.Array([[0.1, 1.0]])})
    idx = jet_index(rows, np.array([0, 5]), jets, algorithm=algorithm, radius=0.45)
    assert idx.tolist() == [0, 1, -1, 0, -1]  # φ = 0.5 is 0.4 from the first axis, 0.5 from the second


# ---------------------------------------------------------------------------------------------------
# Baseline
# ---------------------------------------------------------------------------------------------------
def test_baseline_candidates_per_element(sim: ak.Array, ntuple: ak.Array) -> None:
    c = ak.to_numpy(ntuple.ycand[0])
    x = ak.to_numpy(ntuple.X[0])
    assert c[:, PF["cls_id"]].tolist() == [
        CLS_CHARGED_HADRON, CLS_ELECTRON, CLS_CHARGED_HADRON, CLS_MUON,
        CLS_NONE, CLS_PHOTON, CLS_PHOTON, CLS_NONE, CLS_NEUTRAL_HADRON, CLS_NONE,
        CLS_NEUTRAL_HADRON, CLS_NEUTRAL_HADRON,
    ]
    # Charged candidates carry the track momentum and the sign of omega.
    for t, mass in ((0, PI_MASS), (1, E_MASS), (2, PI_MASS), (3, MU_MASS)):
        assert c[t, PF["pt"]] == pytest.approx(x[t, TRK["pt"]], rel=1e-6)
        assert c[t, PF["eta"]] == pytest.approx(x[t, TRK["eta"]], rel=1e-6)
        assert c[t, PF["energy"]] == pytest.approx(np.hypot(x[t, TRK["p"]], mass), rel=1e-5)
        assert c[t, PF["charge"]] == np.sign(x[t, TRK["omega"]])
    # A photon cluster becomes a photon of the cluster energy, along the cluster position.
    assert c[5, PF["energy"]] == pytest.approx(8.0, rel=1e-6)
    assert c[5, PF["pt"]] == pytest.approx(x[5, CLU["et"]], rel=1e-5)
    assert c[5, PF["eta"]] == pytest.approx(x[5, CLU["eta"]], abs=1e-6)
    # The hadron cluster shared by the π− and the neutron keeps E − p of the π− as a neutral hadron.
    assert c[8, PF["energy"]] == pytest.approx(x[8, CLU["energy"]] - x[2, TRK["p"]], rel=1e-5)
    # Unlinked hadronic clusters become neutral hadrons with all their energy.
    assert c[10, PF["energy"]] == pytest.approx(3.0, rel=1e-6)
    assert c[11, PF["energy"]] == pytest.approx(5.0, rel=1e-6)


def test_baseline_fake_track_is_still_a_charged_candidate(ntuple: ak.Array) -> None:
    assert ak.to_list(ntuple.ycand[1][:, PF["cls_id"]]) == [CLS_CHARGED_HADRON, CLS_PHOTON]


def test_baseline_small_remainder_gives_no_neutral(sim: ak.Array) -> None:
    layout = layout_of(sim)
    tracks, clusters = track_features(sim), cluster_features(sim)
    # Raise c0 (π+ cluster, E ≈ p) by 1 GeV: still below 2σ of a 11 GeV hadron, so still no neutral.
    clusters = clusters.copy()
    clusters[0, CLU["energy"]] += 1.0
    out = baseline_candidates(tracks, clusters, layout)
    assert out[layout.cluster_pos[0], PF["cls_id"]] == CLS_NONE
    # With a 10 GeV excess the remainder is significant.
    clusters[0, CLU["energy"]] += 9.0
    out = baseline_candidates(tracks, clusters, layout)
    assert out[layout.cluster_pos[0], PF["cls_id"]] == CLS_NEUTRAL_HADRON
    assert out[layout.cluster_pos[0], PF["energy"]] == pytest.approx(21.0 - tracks[0, TRK["p"]], rel=1e-5)


def test_baseline_track_outside_link_window_stays_unlinked(sim: ak.Array) -> None:
    layout = layout_of(sim)
    tracks, clusters = track_features(sim), cluster_features(sim)
    narrow = baseline_candidates(tracks, clusters, layout, BaselineParams(link_dr=1e-9))
    # Without links the π+ cluster is a neutral hadron of its full energy, the π+ track a plain track.
    assert narrow[layout.cluster_pos[0], PF["cls_id"]] == CLS_NEUTRAL_HADRON
    assert narrow[layout.cluster_pos[0], PF["energy"]] == pytest.approx(11.0, rel=1e-6)
    # An energetic track with no cluster at all looks like a muon.
    assert narrow[layout.track_pos[0], PF["cls_id"]] == CLS_MUON


def test_baseline_params_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"ntuplize.baseline: unknown keys \['link_window'\]"):
        stage_params(BaselineParams, {"link_window": 0.1}, where="ntuplize.baseline")
    with pytest.raises(ValueError, match=r"ntuplize.baseline.link_dr: expected a number, got '0.1'"):
        stage_params(BaselineParams, {"link_dr": "0.1"}, where="ntuplize.baseline")
    assert stage_params(BaselineParams, {"link_dr": 1}, where="ntuplize.baseline").link_dr == 1.0


def test_helix_extrapolation_matches_an_independent_propagation() -> None:
    rng = np.random.default_rng(4)
    n = 4000
    pt = np.exp(rng.uniform(np.log(0.3), np.log(100), n))
    eta = rng.uniform(-2.5, 2.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    charge = rng.choice([-1.0, 1.0], n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    x, y, z = calo_position(px, py, pz, charge)
    omega = charge * K * BFIELD / pt
    e_eta, e_phi, reaches = extrapolate_to_calo(np.sinh(eta), phi, omega, BaselineParams())
    # Loopers spiral into an endcap; the few that meet it inside the beam-pipe hole reach nothing.
    assert np.array_equal(reaches, np.isfinite(x))
    assert 0 < np.sum(~reaches) < 0.2 * n
    assert np.all(reaches[pt > 0.9])
    loopers = reaches & (pt < 0.8) & (np.abs(eta) < 0.5)
    assert loopers.sum() > 20 and np.allclose(np.abs(z[loopers]), 2307.0)
    r = np.hypot(x, y)[reaches]
    assert np.allclose(e_eta[reaches], np.arcsinh(z[reaches] / r), atol=1e-9)
    dphi = np.angle(np.exp(1j * (e_phi[reaches] - np.arctan2(y, x)[reaches])))
    assert np.allclose(dphi, 0.0, atol=1e-9)
    # Soft tracks really bend: the correction matters.
    soft = reaches & (pt < 2) & (np.abs(eta) < 1)
    assert soft.sum() > 50
    assert np.all(np.abs(np.angle(np.exp(1j * (e_phi[soft] - phi[soft])))) > 0.05)


def test_loopers_do_not_link() -> None:
    from colliderflow.ntuplize.baseline import link_tracks
    from colliderflow.ntuplize.elements import build_layout

    # One event: a 0.5 GeV track at η = 0 (a looper that never leaves the barrel region) pointing
    # straight at a cluster.
    tracks = np.zeros((1, 17))
    tracks[0, TRK["omega"]] = K * BFIELD / 0.5
    tracks[0, TRK["cos_phi"]] = 1.0
    clusters = np.zeros((1, 17))
    clusters[0, CLU["cos_phi"]] = 1.0
    layout = build_layout(np.array([1]), np.array([1]))
    assert link_tracks(tracks, clusters, layout, BaselineParams(link_dr=10.0)).tolist() == [-1]
    tracks[0, TRK["omega"]] = K * BFIELD / 5.0
    assert link_tracks(tracks, clusters, layout, BaselineParams(link_dr=10.0)).tolist() == [0]


def test_element_rows_keep_per_event_order(sim: ak.Array) -> None:
    layout = layout_of(sim)
    rows = element_rows(layout, track_features(sim), cluster_features(sim))
    assert layout.offsets.tolist() == [0, 12, 14, 14]
    assert rows[:, 0].tolist() == [1] * 4 + [2] * 8 + [1, 2]


def test_block_particles_match_the_shared_kinematics_helper(sim: ak.Array) -> None:
    from colliderflow.kinematics import particles_from_block
    from colliderflow.ntuplize.targets import block_particles

    layout = layout_of(sim)
    rows = assign_targets(sim, layout).rows
    ours = block_particles(rows, layout)
    shared = particles_from_block(layout.unflatten(rows))
    for field in ("pt", "eta", "phi", "energy"):
        assert ak.to_list(ak.num(ours[field], axis=1)) == ak.to_list(ak.num(shared[field], axis=1))
        assert np.allclose(ak.to_numpy(ak.flatten(ours[field])), ak.to_numpy(ak.flatten(shared[field])))
    assert ak.to_list(ak.num(ours, axis=1)) == [8, 1, 0]


def test_nearest_within_stays_inside_events_and_breaks_ties_by_index() -> None:
    from nearest_reference import nearest_within

    # Event 0: refs at keys 0.0, 0.5, 0.5 (a tie); event 1: ref at key 0.0; event 2 has no refs.
    ref_event = np.array([0, 0, 0, 1])
    ref_key = np.array([0.0, 0.5, 0.5, 0.0])
    query_event = np.array([0, 0, 1, 2, 0])
    query_key = np.array([0.05, 0.45, 0.3, 0.0, 5.0])

    def distance(q: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.abs(query_key[q] - ref_key[r])

    best = nearest_within(query_event, query_key, ref_event, ref_key, window=0.35, distance=distance,
                          max_distance=0.35)
    # Query 2 is 0.3 from event 1's ref (event 0's closer refs do not count); query 4 is too far.
    assert best.tolist() == [0, 1, 3, -1, -1]
    empty = nearest_within(query_event, query_key, ref_event[:0], ref_key[:0], window=1.0, distance=distance,
                           max_distance=1.0)
    assert empty.tolist() == [-1] * 5


def test_energy_outside_the_polar_acceptance_is_not_unassigned(tmp_path: Path) -> None:
    """A photon along the beam (ISR) reaches no element but is no reconstruction loss: not counted."""
    ev = EventBuilder()
    ev.particle(22, 0.0, *p3(2, 4.0, 0.0))  # |cos θ| = tanh(4) > 0.99: down the beam pipe
    lost = ev.particle(22, 0.0, *p3(2, 2.0, 0.0))  # inside the acceptance, but no deposit either
    seen = ev.particle(22, 0.0, *p3(5, 0.1, 0.3))
    ev.cluster({seen: 5.0}, ecal_fraction=1.0)
    events = read_sim(write_sim(tmp_path / "a.root", events_to_arrays([ev])))
    targets = assign_targets(events, layout_of(events))
    assert targets.unassigned_energy[0] == pytest.approx(float(events.gen_energy[0][lost]), rel=1e-6)
    assert targets.n_unassigned == 1

"""Building JetClass-II rows: a hand-made event with a known resonance, and JetClass-II's own conventions."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pytest

from colliderflow.jetschema import JETCLASS2_SCHEMA
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.ntuplize.jets import JetParams, jet_params_from_section, jet_table_from_constituents, jets_from_particles

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXAMPLE = DATA / "jetclass2" / "JetClassII_example.parquet"
PARAMS = {"min_pt": 100.0}
PV_Z, PV_T = 5.0, 0.1  # mm, ns


def four_vectors(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray) -> dict[str, np.ndarray]:
    pz = pt * np.sinh(eta)
    return {"px": pt * np.cos(phi), "py": pt * np.sin(phi), "pz": pz, "energy": np.sqrt(pt**2 + pz**2 + mass**2)}


def _prong(centre: tuple[float, float], pts: list[float], spread: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = np.arange(len(pts))
    return np.asarray(pts), centre[0] + spread * np.cos(k * 2.1), centre[1] + spread * np.sin(k * 2.1)


def synthetic_events() -> tuple[ak.Array, ak.Array, ak.Array, dict[str, np.ndarray]]:
    """Event 0: X(25) → b b̄ at η ≈ 0.5, reconstructed as two prongs of five particles.
    Event 1: one light-quark jet at η ≈ −1.2 and a soft particle far away (below the jet pT cut)."""
    reco, gen, expect = [], [], {}
    # --- event 0
    pt_b, eta_b, phi_b = _prong((0.6, 1.15), [150.0, 80.0, 40.0, 20.0, 10.0], 0.03)
    pt_c, eta_c, phi_c = _prong((0.4, 0.85), [130.0, 70.0, 30.0, 15.0, 5.0], 0.03)
    pt = np.concatenate([pt_b, pt_c])
    eta = np.concatenate([eta_b, eta_c])
    phi = np.concatenate([phi_b, phi_c])
    pid = np.array([211, 22, -211, 130, 11, -211, 22, 13, 130, 211])
    charge = np.array([1, 0, -1, 0, -1, -1, 0, -1, 0, 1])
    mass = np.where(charge != 0, 0.13957, 0.0)
    dz = np.where(charge != 0, PV_Z + 0.01 * np.arange(10), 0.0)
    reco.append(
        {
            **four_vectors(pt, eta, phi, mass),
            "charge": charge,
            "pid": pid,
            "d0": 0.001 * charge,
            "d0err": np.full(10, 0.01),
            "dz": dz,
            "dzerr": np.full(10, 0.02),
        }
    )
    expect["x_pt"] = float(np.hypot(reco[0]["px"].sum(), reco[0]["py"].sum()))
    # Truth: proton, X, b, b̄, then the stable particles (same as reco) and a neutrino.
    x_vec = four_vectors(np.array([600.0]), np.array([0.5]), np.array([1.0]), np.array([125.0]))
    q_vec = four_vectors(np.array([300.0, 300.0]), np.array([0.6, 0.4]), np.array([1.15, 0.85]), np.array([4.8, 4.8]))
    nu_vec = four_vectors(np.array([30.0]), np.array([0.55]), np.array([1.0]), np.array([0.0]))
    stable = four_vectors(pt, eta, phi, mass)
    g = {k: np.concatenate([[0.0], x_vec[k], q_vec[k], stable[k], nu_vec[k]]) for k in stable}
    n_gen = 15
    z = np.full(n_gen, PV_Z)
    z[4] = PV_Z + 20.0  # one displaced stable particle (a decay in flight)
    gen.append(
        {
            **g,
            "pid": np.concatenate([[2212, 25, 5, -5], pid, [12]]),
            "status": np.concatenate([[4, 62, 23, 23], np.ones(10, int), [1]]),
            "d1": np.array([1, 2] + [-1] * 13),
            "d2": np.array([1, 3] + [-1] * 13),
            "x": np.full(n_gen, 0.3),
            "y": np.full(n_gen, -0.2),
            "z": z,
            "t": np.full(n_gen, PV_T),
        }
    )
    # --- event 1
    pt1, eta1, phi1 = _prong((-1.2, -2.0), [90.0, 60.0, 30.0], 0.05)
    pt1, eta1, phi1 = np.append(pt1, 3.0), np.append(eta1, 2.0), np.append(phi1, 1.0)
    reco.append(
        {
            **four_vectors(pt1, eta1, phi1, np.zeros(4)),
            "charge": np.array([1, -1, 0, 0]),
            "pid": np.array([211, -211, 22, 22]),
            "d0": np.zeros(4),
            "d0err": np.zeros(4),
            "dz": np.zeros(4),
            "dzerr": np.zeros(4),
        }
    )
    quark = four_vectors(np.array([185.0]), np.array([-1.2]), np.array([-2.0]), np.array([0.0]))
    stable1 = four_vectors(pt1, eta1, phi1, np.zeros(4))
    gen.append(
        {
            **{k: np.concatenate([quark[k], stable1[k]]) for k in quark},
            "pid": np.array([2, 211, -211, 22, 22]),
            "status": np.array([71, 1, 1, 1, 1]),
            "d1": np.full(5, -1),
            "d2": np.full(5, -1),
            "x": np.zeros(5),
            "y": np.zeros(5),
            "z": np.full(5, PV_Z),
            "t": np.full(5, PV_T),
        }
    )
    expect["q_eta"] = float(
        np.arcsinh(
            sum(four_vectors(pt1[:3], eta1[:3], phi1[:3], np.zeros(3))["pz"])
            / np.hypot(*(sum(four_vectors(pt1[:3], eta1[:3], phi1[:3], np.zeros(3))[k]) for k in ("px", "py")))
        )
    )

    def to_ak(events: list[dict[str, np.ndarray]]) -> ak.Array:
        return ak.zip({k: ak.Array([e[k].tolist() for e in events]) for k in events[0]})

    vertex = ak.zip({"z": [PV_Z, PV_Z], "t": [PV_T, PV_T], "has_vertex": [True, True]})
    return to_ak(reco), to_ak(gen), vertex, expect


@pytest.fixture(scope="module")
def synthetic_rows() -> tuple[ak.Array, dict[str, float]]:
    reco, gen, vertex, expect = synthetic_events()
    table = jets_from_particles(reco, gen, vertex=vertex, params=PARAMS)
    assert table.schema.equals(JETCLASS2_SCHEMA)
    return ak.from_arrow(table), expect


def test_known_resonance_gives_one_labelled_jet_with_its_truth(synthetic_rows: tuple[ak.Array, dict]) -> None:
    rows, expect = synthetic_rows
    assert len(rows) == 2
    x_jet, q_jet = rows[0], rows[1]
    assert JETCLASS2_LABELS[x_jet.jet_label] == "label_X_bb"
    assert JETCLASS2_LABELS[q_jet.jet_label] == "label_QCD_light"
    assert x_jet.jet_pt == pytest.approx(expect["x_pt"], rel=1e-6)
    assert x_jet.jet_nparticles == 10 == len(x_jet.part_px)
    assert x_jet.aux_genpart_pid.tolist() == [25, 5, -5]
    assert x_jet.aux_genpart_isResX.tolist() == [True, False, False]
    assert x_jet.aux_genpart_isResDecayProd.tolist() == [False, True, True]
    assert x_jet.aux_genpart_mass[0] == pytest.approx(125.0, rel=1e-5)
    assert q_jet.aux_genpart_pid.tolist() == [2] and q_jet.aux_genpart_isQcdParton.tolist() == [True]
    assert 20.0 < x_jet.jet_sdmass <= np.sqrt(x_jet.jet_energy**2 - (x_jet.jet_pt * np.cosh(x_jet.jet_eta)) ** 2) + 1e-3


def test_constituent_features_follow_jetclass2(synthetic_rows: tuple[ak.Array, dict]) -> None:
    rows, expect = synthetic_rows
    x_jet, q_jet = rows[0], rows[1]
    pt = np.hypot(np.asarray(x_jet.part_px), np.asarray(x_jet.part_py))
    assert np.all(np.diff(pt) <= 0)
    assert pt[0] == pytest.approx(150.0, rel=1e-5)
    # Flags from (pid, charge); the order is by pT: 150 (π+), 130 (π−), 80 (γ), 70 (γ), 40 (π−), 30 (μ−), ...
    assert x_jet.part_isChargedHadron.tolist()[:2] == [True, True]
    assert x_jet.part_isPhoton.tolist()[2:4] == [True, True]
    assert x_jet.part_isMuon.tolist()[5] and x_jet.part_charge[5] == -1
    assert sum(x_jet.part_isElectron) == 1 and sum(x_jet.part_isNeutralHadron) == 2
    # dz relative to the primary vertex where the candidate has one; neutrals keep 0.
    dz = np.asarray(x_jet.part_dzval)
    charged = np.asarray(x_jet.part_charge) != 0
    assert np.all(np.abs(dz[charged]) < 0.1) and np.all(dz[~charged] == 0)
    # Negative-η jet: part_deta = −(η − jet η).
    eta = np.arcsinh(np.asarray(q_jet.part_pz) / np.hypot(np.asarray(q_jet.part_px), np.asarray(q_jet.part_py)))
    assert q_jet.jet_eta == pytest.approx(expect["q_eta"], abs=1e-6)
    np.testing.assert_allclose(np.asarray(q_jet.part_deta), -(eta - q_jet.jet_eta), atol=1e-5)
    assert np.all(np.abs(np.asarray(q_jet.part_dphi)) < 0.2)


def test_gen_jet_is_matched_without_neutrinos_and_vertices_are_relative(synthetic_rows: tuple[ak.Array, dict]) -> None:
    rows, _ = synthetic_rows
    x_jet = rows[0]
    assert x_jet.genjet_nparticles == 10  # the neutrino is not clustered
    assert 12 not in np.abs(np.asarray(x_jet.genpart_pid))
    assert x_jet.genjet_pt == pytest.approx(x_jet.jet_pt, rel=1e-5)
    z = np.asarray(x_jet.genpart_z)
    assert z.max() == pytest.approx(20.0) and np.sum(z == 0) == 9
    x = np.asarray(x_jet.genpart_x)
    assert np.sum(x != 0) == 1 and x[z != 0][0] == pytest.approx(0.3)  # only the displaced one keeps x
    assert np.all(np.asarray(x_jet.genpart_t) == 0)  # produced at the vertex time
    assert 20.0 < x_jet.genjet_sdmass < 200.0


def test_without_truth_rows_are_kept_and_unlabelled() -> None:
    reco, _, _, _ = synthetic_events()
    rows = ak.from_arrow(jets_from_particles(reco, params=PARAMS))
    assert len(rows) == 2
    assert rows.jet_label.tolist() == [-1, -1]
    assert rows.genjet_nparticles.tolist() == [0, 0] and ak.num(rows.genpart_px).tolist() == [0, 0]
    assert ak.num(rows.aux_genpart_pt).tolist() == [0, 0]


def test_builds_are_deterministic_and_parameters_are_checked() -> None:
    reco, gen, vertex, _ = synthetic_events()
    first = jets_from_particles(reco, gen, vertex=vertex, params=PARAMS)
    second = jets_from_particles(reco, gen, vertex=vertex, params=PARAMS)
    assert first.equals(second)
    with pytest.raises(ValueError, match=r"^jets: unknown keys \['min_ptt'\]"):
        jet_params_from_section({"min_ptt": 100})
    with pytest.raises(ValueError, match="^jets: .*label"):
        jet_params_from_section({"label_table": ["X_bb", "X_zz"]})
    built = jet_params_from_section({"radius": 0.4})
    assert built.labels.radius == built.substructure.r0 == built.genjet_match_dr == 0.4
    with pytest.raises(ValueError, match="missing fields"):
        jets_from_particles(reco[["px", "py", "pz"]], params=PARAMS)
    broken = ak.with_field(reco, ak.where(ak.local_index(reco.px) == 2, np.nan, reco.px), "px")
    with pytest.raises(ValueError, match="non-finite px"):
        jet_table_from_constituents(broken, ak.Array([[[0, 1, 2]], [[0]]]), params=PARAMS)


@pytest.mark.skipif(not EXAMPLE.is_file(), reason=f"JetClass-II example not found at {EXAMPLE}")
def test_jetclass2_example_constituents_reproduce_its_conventions() -> None:
    """Each example jet, fed back as an event whose jet is all its constituents, gives back its
    pT, φ, part_dphi, particle flags and impact parameters; part_deta differs from the stored one only
    by a per-jet constant (Delphes' jet η is not the constituent sum's), which shows the sign convention."""
    a = ak.from_parquet(EXAMPLE)
    pid = (
        11 * a.part_isElectron * -a.part_charge
        + 13 * a.part_isMuon * -a.part_charge
        + 22 * a.part_isPhoton
        + 211 * a.part_isChargedHadron * a.part_charge
    )
    particles = ak.zip(
        {
            "px": a.part_px,
            "py": a.part_py,
            "pz": a.part_pz,
            "energy": a.part_energy,
            "charge": a.part_charge,
            "pid": pid,
            "d0": a.part_d0val,
            "d0err": a.part_d0err,
            "dz": a.part_dzval,
            "dzerr": a.part_dzerr,
        }
    )
    everything = ak.unflatten(ak.local_index(a.part_px, axis=1), 1, axis=0)  # [jets-as-events, 1 jet, idx]
    ours = ak.from_arrow(jet_table_from_constituents(particles, everything, params={"min_pt": 0.0}))
    assert len(ours) == len(a)
    np.testing.assert_allclose(ours.jet_pt, a.jet_pt, rtol=1e-5)
    dphi = (ak.to_numpy(ours.jet_phi) - ak.to_numpy(a.jet_phi) + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(dphi).max() < 1e-5
    np.testing.assert_array_equal(ours.jet_nparticles, a.jet_nparticles)
    np.testing.assert_allclose(ak.flatten(ours.part_dphi), ak.flatten(a.part_dphi), atol=1e-4)
    # The stored part_deta is sign(jet η)·(η − jet η) with Delphes' jet η ...
    pt = np.hypot(a.part_px, a.part_py)
    eta = np.arcsinh(a.part_pz / pt)
    sign = np.where(ak.to_numpy(a.jet_eta) > 0, 1.0, -1.0)
    assert ak.max(abs(a.part_deta - sign * (eta - a.jet_eta))) < 1e-4
    # ... and ours differs by a constant per jet wherever the two jet η agree in sign.
    same_sign = np.sign(ak.to_numpy(ours.jet_eta)) == sign
    offset = (ours.part_deta - a.part_deta)[same_sign]
    assert same_sign.sum() > 90
    assert ak.max(ak.max(offset, axis=1) - ak.min(offset, axis=1)) < 1e-4
    for flag in ("isElectron", "isMuon", "isPhoton", "isChargedHadron", "isNeutralHadron"):
        assert ak.all(ours[f"part_{flag}"] == a[f"part_{flag}"]), flag
    assert ak.all(ours.part_d0val == a.part_d0val) and ak.all(ours.part_dzval == a.part_dzval)
    assert pa.types.is_int32(pa.array(ak.to_numpy(ours.jet_label)).type)

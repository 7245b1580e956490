"""The event-level Delphes view on the real Delphes file: elements, targets, the Delphes PF as baseline."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from colliderflow.io.delphes_events import read_delphes_events
from colliderflow.io.delphes_refs import pz_from_pt_eta, truth_refs
from colliderflow.io.sim_reader import detect_format, read_events
from colliderflow.ntuplize.events import ntuplize_files
from colliderflow.ntuplize.validate import validate_dataset

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "delphes" / "sophon_events_delphes_example.root"
needs_real = pytest.mark.skipif(not REAL.is_file(), reason=f"{REAL} is not available")


@pytest.fixture(scope="module")
def ntuple(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("delphes") / "delphes.parquet"
    ntuplize_files([REAL], output=out, sample="delphes", shard=0, params={}, seed=1, provenance=None)
    return out


@needs_real
def test_detected_and_read_with_truth_links() -> None:
    assert detect_format(REAL) == "delphes"
    source = read_events(REAL)
    e = source.events
    assert source.format == "delphes" and source.bfield_tesla == 3.8
    assert len(e) == 10
    pf = uproot.open(REAL)["Delphes"].arrays(["ParticleFlowCandidate.Charge", "ParticleFlowCandidate.PT",
                                               "ParticleFlowCandidate.E"])
    charge, pt, energy = (pf[f"ParticleFlowCandidate.{k}"] for k in ("Charge", "PT", "E"))
    # No EFlow collections in this card: charged candidates with momentum are tracks, neutral ones clusters.
    assert ak.num(e.track_omega).tolist() == ak.sum((charge != 0) & (pt > 0), axis=1).tolist()
    assert ak.num(e.cluster_energy).tolist() == ak.sum((charge == 0) & (energy > 0) & (pt > 0), axis=1).tolist()
    # pT comes back from ω with the field it was written with.
    back = 0.299792458e-3 * 3.8 / np.abs(ak.flatten(e.track_omega).to_numpy())
    np.testing.assert_allclose(back, ak.flatten(pt[(charge != 0) & (pt > 0)]).to_numpy(), rtol=1e-5)
    linked = ak.flatten(e.track_gen_idx).to_numpy()
    assert (linked >= 0).all()  # every track references its generator particle
    assert set(ak.flatten(e.gen_status[e.track_gen_idx]).tolist()) == {1}
    assert ak.sum(ak.num(e.calolink_energy)) > 0


@needs_real
def test_ntuple_features_targets_and_baseline(ntuple: Path) -> None:
    t = ak.from_parquet(ntuple)
    assert len(t) == 10 and ak.all(t.n_elements > 0)
    x = ak.to_numpy(ak.flatten(t.X, axis=1))
    assert np.isfinite(x).all()
    target = ak.to_numpy(ak.flatten(t.ytarget, axis=1))
    cand = ak.to_numpy(ak.flatten(t.ycand, axis=1))
    assert (target[:, 0] > 0).sum() > 1000  # most elements get a target
    assert (target[x[:, 0] == 1, 0] > 0).all()  # every track has its particle
    assert (cand[:, 0] > 0).all()  # one Delphes PF object per element


@needs_real
def test_validation_passes_every_check_but_closure(ntuple: Path, tmp_path: Path) -> None:
    """This file is pp at 14 TeV (JetClass-II card): PUPPI-zeroed candidates are not elements and the PF
    candidates' acceptance ends before |cos θ| = 0.99, so the e+e− closure check cannot pass on it.
    Every other check must. The forward beam remnants beyond |cos θ| = 0.99 are outside the acceptance
    and no longer count against the closure (they made it ~0.1–0.4 before); what is left is measured."""
    with pytest.raises(ValueError, match="max_closure_outlier_fraction") as info:
        validate_dataset([ntuple], params={}, summary=tmp_path / "v.json", plot=tmp_path / "v.png")
    failed = str(info.value).split(":", 2)[-1]
    assert "max_nan" not in failed and "min_mean_elements" not in failed and "valid_class_ids" not in failed
    # What a pp sample sets as its own `validation` (docs/backends.md): closure reported, not gated.
    summary = validate_dataset([ntuple], params={"max_closure_outlier_fraction": 1.0},
                               summary=tmp_path / "pp.json", plot=tmp_path / "pp.png")
    assert all(c["passed"] for c in summary["checks"])
    # In-acceptance losses (PUPPI, the 2.5 < |η| < 2.65 ring): measured 0.88, still visibly below 1.
    assert 0.6 < summary["closure"]["median"] < 0.95


@needs_real
def test_bfield_from_config_is_used() -> None:
    e = read_delphes_events(REAL, bfield_tesla=2.0)
    ref = read_delphes_events(REAL)
    np.testing.assert_allclose(ak.flatten(e.track_omega).to_numpy() * 3.8 / 2.0,
                               ak.flatten(ref.track_omega).to_numpy(), rtol=1e-6)


@needs_real
@pytest.mark.parametrize("keep", [0.0, 0.5])
def test_damaged_delphes_file_fails_naming_it(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "bad.root"
    data = REAL.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    out = tmp_path / "x.parquet"
    with pytest.raises(ValueError, match=r"bad\.root"):
        ntuplize_files([path], output=out, sample="s", shard=0, params={}, seed=1, provenance=None)
    assert not out.exists()


def test_delphes_tree_without_particle_flow_names_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "bare.root"
    with uproot.recreate(path) as fh:
        fh["Delphes"] = {"Event_size": np.zeros(2, np.int32)}
    with pytest.raises(ValueError, match=r"bare\.root: Delphes tree lacks .*Particle\.PID.*EFlowTrack.*"
                                         r"ParticleFlowCandidate"):
        read_events(path)


@needs_real
def test_single_tref_branches_resolve_to_their_particles() -> None:
    """Electron.Particle and Muon.Particle are single TRefs (a record with `ref`): each must land on a
    generator lepton of its own flavour, the same way EFlowTrack.Particle is read."""
    tree = uproot.open(REAL)["Delphes"]
    arrays = tree.arrays(["Particle.fUniqueID", "Particle.PID", "Electron.Particle", "Muon.Particle",
                          "Electron.PT", "Muon.PT"])
    for lepton, pdgid in (("Electron", 11), ("Muon", 13)):
        index, dropped = truth_refs(str(REAL), arrays, f"{lepton}.Particle", arrays["Particle.fUniqueID"])
        assert dropped == 0
        assert ak.all(ak.num(index, axis=2) == 1)  # one particle per lepton
        if lepton == "Electron":
            assert ak.sum(ak.num(index, axis=1)) > 0  # the file has electrons: the check is not empty
        assert ak.num(index, axis=1).tolist() == ak.num(arrays[f"{lepton}.PT"], axis=1).tolist()
        pid = arrays["Particle.PID"][ak.flatten(index, axis=2)]
        assert ak.all(abs(pid) == pdgid)


def test_pz_stays_finite_along_the_beam() -> None:
    """Delphes stores η = ±999.9 for pT = 0 entries; pz is then ±P (or 0 without P), never inf or NaN."""
    pt = np.array([0.0, 0.0, 2.0, 0.0])
    eta = np.array([999.9, -999.9, 0.5, 999.9])
    p = np.array([3.0, 4.0, 2.0 * np.cosh(0.5), 0.0])
    np.testing.assert_allclose(pz_from_pt_eta(pt, eta, p), [3.0, -4.0, 2.0 * np.sinh(0.5), 0.0])
    np.testing.assert_allclose(pz_from_pt_eta(pt, eta), [0.0, 0.0, 2.0 * np.sinh(0.5), 0.0])
    jagged = pz_from_pt_eta(ak.Array([[0.0, 1.0], []]), ak.Array([[-999.9, 0.0], []]))
    assert jagged.tolist() == [[0.0, 0.0], []]


def _eflow_like(path: Path, *, track_ref: str | None, photon_refs: str = "Particles") -> None:
    """A Delphes-like tree with EFlow collections whose reference branches are plain integers, as a file
    written by something else (or damaged) could have them; uproot cannot write real TRefs."""
    one = {"var * float32": ak.Array([[1.0]]), "var * int32": ak.Array([[1]]), "var * uint32": ak.Array([[1]])}
    branches: dict[str, str] = {f"Particle.{leaf}": "var * float32" for leaf in
                                ("Px", "Py", "Pz", "E", "Mass", "X", "Y", "Z")}
    branches |= {"Particle.fUniqueID": "var * uint32", "Particle.PID": "var * int32",
                 "Particle.Status": "var * int32", "Particle.Charge": "var * int32"}
    branches |= {f"EFlowTrack.{leaf}": "var * float32" for leaf in ("PT", "Eta", "Phi")}
    branches |= {"EFlowTrack.Charge": "var * int32", "EFlowTrack.PID": "var * int32"}
    if track_ref:
        branches[f"EFlowTrack.{track_ref}"] = "var * int32"
    for c in ("EFlowPhoton", "EFlowNeutralHadron"):
        branches |= {f"{c}.{leaf}": "var * float32" for leaf in ("E", "Eta", "Phi", "Eem", "Ehad")}
        branches[f"{c}.{photon_refs}"] = "var * int32"
    with uproot.recreate(path) as handle:
        tree = handle.mktree("Delphes", branches)
        tree.extend({name: one[kind] for name, kind in branches.items()})


@pytest.mark.parametrize("leaf", ["Particle", "Particles"])
def test_a_reference_branch_that_cannot_be_read_is_named(tmp_path: Path, leaf: str) -> None:
    path = tmp_path / "refs.root"
    _eflow_like(path, track_ref=leaf)
    with pytest.raises(ValueError, match=rf"refs\.root: EFlowTrack\.{leaf} is not a TRef"):
        read_delphes_events(path)


def test_a_missing_reference_branch_is_named(tmp_path: Path) -> None:
    path = tmp_path / "norefs.root"
    _eflow_like(path, track_ref=None)
    with pytest.raises(ValueError, match=r"norefs\.root: Delphes tree lacks .*EFlowTrack\.Particle\(s\)"):
        read_delphes_events(path)

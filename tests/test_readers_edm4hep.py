"""The EDM4hep reader: exact values on the CLIC-layout fixture, and the real EDM4hep files it can read."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from clic_fixture import write_clic_fixture
from colliderflow.io.edm4hep_reader import Edm4hepCollections, read_edm4hep, read_mc_particles
from colliderflow.io.sim_reader import detect_format, read_events
from colliderflow.ntuplize.events import ntuplize_files

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "edm4hep"
REAL = [DATA / "edm4hepjl_edm4hep_example.root", DATA / "coffea_edm4hep.root"]
# The real files hold synthetic values under the generic collection names of the EDM4hep test suites.
GENERIC = Edm4hepCollections(mc="MCParticleCollection", tracks="TrackCollection", clusters="ClusterCollection",
                             track_links="TrackMCParticleLinkCollection",
                             cluster_links="ClusterMCParticleLinkCollection", pfos="ReconstructedParticleCollection")


@pytest.fixture(params=["from_to", "rec_sim"])
def clic(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    return write_clic_fixture(tmp_path / "clic.root", link_layout=request.param)


def test_fixture_is_detected_and_read_exactly(clic: Path) -> None:
    assert detect_format(clic) == "edm4hep"
    source = read_events(clic)
    e = source.events
    assert source.format == "edm4hep" and source.bfield_tesla == 4.0
    assert e.gen_status.tolist() == [[2, 1, 1, 1, 0, 0, 1], [1]]
    assert e.gen_parent_idx.tolist() == [[-1, 0, 0, 0, 3, 3, 0], [-1]]
    np.testing.assert_allclose(e.gen_energy[0][1], np.sqrt(26 + 0.13957**2), rtol=1e-6)
    # Track 0 has an AtFirstHit state first: the AtIP state is the one used.
    np.testing.assert_allclose(e.track_omega.tolist()[0], [2.398e-4, 7.9e-4], rtol=1e-6)
    np.testing.assert_allclose(e.track_d0.tolist()[0], [0.01, -0.03], rtol=1e-6)
    assert e.track_gen_idx.tolist() == [[1, 4], []]  # highest-weight link
    assert e.cluster_energy_ecal.tolist() == [[6.0, 5.0], [7.0]]
    assert e.cluster_energy_hcal.tolist() == [[3.0, 0.0], [0.0]]
    assert e.cluster_energy_other.tolist() == [[1.0, 0.0], [0.0]]
    assert e.cluster_nhits.tolist() == [[40, 12], [9]]
    assert e.calolink_gen_idx.tolist() == [[1, 2, 2], [0]]
    np.testing.assert_allclose(ak.flatten(e.calolink_energy).to_numpy(), [9.0, 1.0, 5.0, 7.0], rtol=1e-6)
    assert e.pfo_track_idx.tolist() == [[0, -1, 1], [-1]]
    assert e.pfo_cluster_idx.tolist() == [[0, 1, -1], [0]]


def test_both_link_layouts_give_the_same_records(tmp_path: Path) -> None:
    new = read_edm4hep(write_clic_fixture(tmp_path / "new.root", link_layout="from_to"))
    old = read_edm4hep(write_clic_fixture(tmp_path / "old.root", link_layout="rec_sim"))
    assert new.fields == old.fields
    for field in new.fields:
        assert new[field].tolist() == old[field].tolist(), field


def test_ntuplize_applies_the_interacting_children_rule_and_the_pandora_baseline(clic: Path,
                                                                                tmp_path: Path) -> None:
    out = tmp_path / "clic.parquet"
    stats = ntuplize_files([clic], output=out, sample="clic", shard=0, params={}, seed=1, provenance=None)
    assert stats["events"] == 2 and stats["elements"] == 5
    t = ak.from_parquet(out)
    target = np.asarray(t.ytarget[0].tolist())
    # Elements: track 0 (pi+), track 1 (pi+ from the K0S, which replaces it), cluster 0 (none), cluster 1 (photon).
    assert target[:, 0].tolist() == [1, 1, 0, 3]
    np.testing.assert_allclose(target[1, 6], np.sqrt(1.5**2 + 0.2**2 + 1.4**2 + 0.13957**2), rtol=1e-5)
    assert t.gen_unassigned_energy.tolist() == [0.0, 0.0]  # the K0S energy is carried by its child
    assert stats["visible_particles"] == 4  # pi+, photon, child pi+ (K0S replaced) + event-1 photon
    cand = np.asarray(t.ycand[0].tolist())
    assert cand[:, 0].tolist() == [1, 1, 0, 3]  # Pandora PFOs on their elements
    np.testing.assert_allclose(cand[[0, 1, 3], 6], [5.1, 1.9, 4.8], rtol=1e-6)


def test_missing_collections_named_in_one_message_and_no_output(tmp_path: Path) -> None:
    path = write_clic_fixture(tmp_path / "partial.root", omit=("PandoraClusters", "ClusterMCTruthLink"))
    out = tmp_path / "x.parquet"
    with pytest.raises(ValueError, match=r"partial\.root: EDM4hep file lacks .*PandoraClusters, ClusterMCTruthLink"):
        ntuplize_files([path], output=out, sample="s", shard=0, params={}, seed=1, provenance=None)
    assert not out.exists()


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_damaged_file_fails_naming_it(clic: Path, tmp_path: Path, damage: str) -> None:
    path = tmp_path / f"{damage}.root"
    data = clic.read_bytes()
    path.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    out = tmp_path / "x.parquet"
    with pytest.raises(ValueError, match=rf"{damage}\.root"):
        ntuplize_files([path], output=out, sample="s", shard=0, params={}, seed=1, provenance=None)
    assert not out.exists()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_file_without_clic_collections(path: Path, tmp_path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    assert detect_format(path) == "edm4hep"
    out = tmp_path / "x.parquet"
    with pytest.raises(ValueError, match=rf"{path.name}: EDM4hep file lacks .*MCParticles, SiTracks_Refitted, "
                                         r"PandoraClusters, SiTracksMCTruthLink.*ClusterMCTruthLink"):
        ntuplize_files([path], output=out, sample="s", shard=0, params={}, seed=1, provenance=None)
    assert not out.exists()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_file_values_match_a_direct_read(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    tree = uproot.open(path)["events"]

    def direct(name: str) -> list:
        return tree[name].array().tolist()

    gen = read_mc_particles(path, mc="MCParticleCollection")
    assert gen["gen_pdgid"].tolist() == direct("MCParticleCollection/MCParticleCollection.PDG")
    assert gen["gen_status"].tolist() == direct("MCParticleCollection/MCParticleCollection.generatorStatus")
    np.testing.assert_allclose(ak.flatten(gen["gen_px"]).to_numpy(),
                               ak.flatten(tree["MCParticleCollection/MCParticleCollection.momentum.x"].array()).to_numpy())
    events = read_edm4hep(path, GENERIC)  # everything the file holds, under its own collection names
    assert len(events) == tree.num_entries == 3
    assert events.cluster_energy.tolist() == direct("ClusterCollection/ClusterCollection.energy")
    assert events.track_chi2.tolist() == direct("TrackCollection/TrackCollection.chi2")
    assert events.track_gen_idx.tolist() == direct(
        "_TrackMCParticleLinkCollection_to/_TrackMCParticleLinkCollection_to.index")
    assert events.pfo_energy.tolist() == direct(
        "ReconstructedParticleCollection/ReconstructedParticleCollection.energy")

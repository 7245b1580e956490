"""Delphes → JetClass-II Parquet on the real Delphes example file, and bad inputs named and left behind."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from colliderflow.io.delphes_reader import read_delphes, resolve_refs
from colliderflow.jetschema import JETCLASS2_SCHEMA, schema_differences
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.ntuplize.delphes_jets import ntuplize_delphes_jets

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DELPHES = DATA / "delphes" / "sophon_events_delphes_example.root"
EXAMPLE = DATA / "jetclass2" / "JetClassII_example.parquet"
needs_delphes = pytest.mark.skipif(not DELPHES.is_file(), reason=f"Delphes example not found at {DELPHES}")
MIN_PT = 120.0


@pytest.fixture(scope="module")
def ntuples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    if not DELPHES.is_file():
        pytest.skip(f"Delphes example not found at {DELPHES}")
    out = {}
    for mode in ("refs", "recluster"):
        where = tmp_path_factory.mktemp(mode)
        stats = ntuplize_delphes_jets(
            [DELPHES],
            output=where / "jets.parquet",
            params={"constituents": mode, "min_pt": MIN_PT, "step_size": 4},
            provenance=where / "jets.provenance.json",
        )
        out[mode] = (where, stats)
    return out


def test_refs_resolve_to_the_objects_with_those_unique_ids() -> None:
    uids = ak.Array([[7, 3, 1 << 24 | 9], [], [4]])
    refs = ak.Array([[[3, 9, 5], [7]], [], [[4], []]])
    index, dropped = resolve_refs(uids, refs)
    assert index.tolist() == [[[1, 2], [0]], [], [[0], []]]
    assert dropped == 1  # uid 5 is not stored in event 0


@needs_delphes
def test_reader_resolves_every_constituent_of_the_example() -> None:
    events = read_delphes(DELPHES)
    assert events.n_events == 10 and events.unresolved_refs == 0
    # Delphes' own jet pT (as the file stores it) is the vector sum of its referenced candidates.
    stored_pt = uproot.open(DELPHES)["Delphes"]["JetPUPPIAK8.PT"].array()
    for event in range(events.n_events):
        for jet, members in enumerate(events.jets[event]):
            parts = events.pf[event][members]
            summed = np.hypot(ak.sum(parts.px), ak.sum(parts.py))
            assert summed == pytest.approx(float(stored_pt[event][jet]), rel=1e-5), (event, jet)
    assert events.vertex is not None and ak.all(events.vertex.has_vertex)
    assert ak.all(abs(events.vertex.t) < 1.0)  # ns, converted from Delphes' seconds ...
    assert 1.0 < ak.max(abs(events.gen.t)) < 1e4  # ... so decays in flight sit at ns, not 1e-7


@needs_delphes
def test_output_has_the_jetclass2_schema(ntuples: dict[str, tuple[Path, dict]]) -> None:
    for where, _ in ntuples.values():
        schema = pq.read_schema(where / "jets.parquet")
        assert schema_differences(schema) == []
        assert schema.remove_metadata().equals(JETCLASS2_SCHEMA)
        if EXAMPLE.is_file():
            example = pq.read_schema(EXAMPLE)
            assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in example]


@needs_delphes
def test_jets_from_the_example_are_physically_sane(ntuples: dict[str, tuple[Path, dict]]) -> None:
    for mode, (where, stats) in ntuples.items():
        jets = ak.from_parquet(where / "jets.parquet")
        assert len(jets) == stats["jets_written"] >= 20, mode
        pt = ak.to_numpy(jets.jet_pt)
        assert np.all((pt >= MIN_PT) & (pt < 7000.0))
        assert np.all(np.abs(ak.to_numpy(jets.jet_eta)) <= 2.5)
        p = pt * np.cosh(ak.to_numpy(jets.jet_eta))
        energy = ak.to_numpy(jets.jet_energy)
        mass = np.sqrt(np.maximum(energy**2 - p**2, 0.0))
        assert np.all(energy**2 - p**2 > -1e-4 * energy**2)
        sdmass = ak.to_numpy(jets.jet_sdmass)
        assert np.all(sdmass >= 0) and np.all(sdmass <= mass + 1e-3 * energy)
        taus = np.stack([ak.to_numpy(jets[f"jet_tau{n}"]) for n in (1, 2, 3, 4)], axis=1)
        assert np.all(taus[:, 0] > 0)
        ratios = taus[:, 1:] / taus[:, :-1].clip(min=1e-12)
        assert np.all((ratios >= 0) & (ratios <= 1))
        assert ak.all(ak.num(jets.part_px) == jets.jet_nparticles) and ak.all(jets.jet_nparticles > 0)
        part_pt = np.hypot(jets.part_px, jets.part_py)
        assert ak.all(part_pt[:, 1:] <= part_pt[:, :-1])
        # Delphes clusters on momenta a little different from the stored ones (JetClass-II's own example
        # has |part_deta| up to 2.7), so only the bulk of the constituents must lie within R.
        assert ak.all(abs(jets.part_dphi) <= np.pi)
        assert ak.mean(np.hypot(jets.part_deta, jets.part_dphi) < 0.8) > 0.95
        labels = ak.to_numpy(jets.jet_label)
        assert np.all((labels >= 0) & (labels < len(JETCLASS2_LABELS)))
        # The sample is HH → 2 prongs: most jets are X → 2-prong classes.
        assert np.mean(labels < 15) > 0.8
        assert stats["jets_with_genjet"] == np.count_nonzero(ak.to_numpy(jets.genjet_nparticles))
        assert ak.all(abs(jets.genjet_pt - jets.jet_pt) < 0.5 * jets.jet_pt)


@needs_delphes
def test_recluster_mode_finds_delphes_own_jets(ntuples: dict[str, tuple[Path, dict]]) -> None:
    refs = ak.from_parquet(ntuples["refs"][0] / "jets.parquet")
    reclustered = ak.from_parquet(ntuples["recluster"][0] / "jets.parquet")
    deta = ak.to_numpy(refs.jet_eta)[:, None] - ak.to_numpy(reclustered.jet_eta)[None, :]
    dphi = (ak.to_numpy(refs.jet_phi)[:, None] - ak.to_numpy(reclustered.jet_phi)[None, :] + np.pi) % (
        2 * np.pi
    ) - np.pi
    nearest = np.argmin(np.hypot(deta, dphi), axis=1)
    assert np.hypot(deta, dphi)[np.arange(len(refs)), nearest].max() < 0.05
    np.testing.assert_allclose(ak.to_numpy(reclustered.jet_pt)[nearest], ak.to_numpy(refs.jet_pt), rtol=0.01)
    np.testing.assert_array_equal(ak.to_numpy(reclustered.jet_label)[nearest], ak.to_numpy(refs.jet_label))


@needs_delphes
def test_provenance_records_the_config_and_statistics(ntuples: dict[str, tuple[Path, dict]]) -> None:
    where, stats = ntuples["refs"]
    record = json.loads((where / "jets.provenance.json").read_text())
    assert record["stage"] == "ntuplize_jets"
    assert record["config"]["constituents"] == "refs"
    assert record["inputs"] == [str(DELPHES)]
    assert record["stats"]["jets_written"] == stats["jets_written"]
    assert sum(stats["label_counts"].values()) == stats["jets_written"]


def _write_incomplete_delphes(path: Path) -> None:
    """A TTree named Delphes with only two particle branches."""
    with uproot.recreate(path) as handle:
        tree = handle.mktree("Delphes", {"Particle.PID": "var * int32", "Particle.PT": "var * float32"})
        tree.extend({"Particle.PID": ak.Array([[1, 2], [3]]), "Particle.PT": ak.Array([[1.0, 2.0], [3.0]])})


@needs_delphes
def test_missing_branches_are_named_and_nothing_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "incomplete.root"
    _write_incomplete_delphes(bad)
    output = tmp_path / "out" / "jets.parquet"
    with pytest.raises(ValueError, match=r"incomplete\.root.*EFlowTrack\.PT.*neither ParticleFlowCandidate\.PT"):
        ntuplize_delphes_jets([DELPHES, bad], output=output, params={}, provenance=tmp_path / "out" / "prov.json")
    with pytest.raises(ValueError, match=r"incomplete\.root.*ParticleFlowCandidate\.PT") as info:
        ntuplize_delphes_jets([DELPHES, bad], output=output, params={"constituents": "refs"},
                              provenance=tmp_path / "out" / "prov.json")
    assert "JetPUPPIAK8.Constituents" in str(info.value)
    assert not output.exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_unreadable_inputs_and_bad_settings_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notroot.root"
    text.write_text("not a ROOT file")
    output = tmp_path / "jets.parquet"
    with pytest.raises(ValueError, match=r"notroot\.root"):
        ntuplize_delphes_jets([text], output=output, params={}, provenance=None)
    with pytest.raises(ValueError, match="no such file"):
        ntuplize_delphes_jets([tmp_path / "absent.root"], output=output, params={}, provenance=None)
    with pytest.raises(ValueError, match="constituents"):
        ntuplize_delphes_jets([text], output=output, params={"constituents": "both"}, provenance=None)
    with pytest.raises(ValueError, match="jet_radius"):
        ntuplize_delphes_jets([text], output=output, params={"jet_radius": 0.8}, provenance=None)
    assert list(tmp_path.iterdir()) == [text]

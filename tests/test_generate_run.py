"""The generate stage end to end: the ROOT file layout, reproducible bytes, provenance, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

import colliderflow.generate.run as run_module
from colliderflow.cli import main
from colliderflow.generate.rootio import SimTreeWriter, counter_name
from colliderflow.generate.run import generate_shard
from colliderflow.schema import SIM_ALL_BRANCHES, SIM_TREE

PARAMS = {"sqrt_s": 380.0, "detector": "clic_like"}
COUNTERS = ("ngen", "ntrack", "ncluster", "ncalolink")


def expected_dtype(branch: str) -> np.dtype:
    """The dtypes the schema documents for each branch."""
    if branch == "event_number":
        return np.dtype(np.uint64)
    integer = ("gen_pdgid", "gen_status", "track_ndf", "cluster_nhits")
    if branch in integer or branch.endswith("_idx"):
        return np.dtype(np.int32)
    return np.dtype(np.float32)


def shard(tmp_path: Path, name: str = "0", **overrides: object) -> tuple[Path, dict]:
    args = {"sample": "ttbar", "process": "ee_ttbar", "backend": "builtin", "shard": 0, "n_events": 30,
            "seed": 17, "params": dict(PARAMS), "output": tmp_path / f"{name}.root",
            "provenance": tmp_path / f"{name}.json"}  # fmt: skip
    args.update(overrides)
    stats = generate_shard(**args)
    return Path(args["output"]), stats


@pytest.fixture(scope="module")
def ttbar_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return shard(tmp_path_factory.mktemp("ttbar"))


def test_file_holds_exactly_the_schema_branches_with_their_dtypes(ttbar_file: tuple[Path, dict]) -> None:
    path, stats = ttbar_file
    with uproot.open(path) as fh:
        assert fh.keys(cycle=False) == [SIM_TREE]
        tree = fh[SIM_TREE]
        assert tree.num_entries == 30
        # ROOT stores each jagged collection with one counter branch; everything else is the schema.
        assert set(tree.keys()) == set(SIM_ALL_BRANCHES) | set(COUNTERS)
        assert {counter_name(b) for b in SIM_ALL_BRANCHES if "_" in b and not b.startswith("event_")} == set(COUNTERS)
        arrays = tree.arrays(list(SIM_ALL_BRANCHES))
    for branch in SIM_ALL_BRANCHES:
        layout = ak.to_layout(arrays[branch])
        inner = layout if branch.startswith("event_") else layout.content
        assert np.dtype(inner.dtype) == expected_dtype(branch), branch
    assert stats["events"] == 30 and stats["events_per_second"] > 0
    assert stats["tracks_per_event"] > 10 and stats["clusters_per_event"] > 10


def test_file_contents_are_consistent_and_physical(ttbar_file: tuple[Path, dict]) -> None:
    path, _ = ttbar_file
    with uproot.open(path) as fh:
        ev = fh[SIM_TREE].arrays(list(SIM_ALL_BRANCHES))
    np.testing.assert_array_equal(ev["event_number"], np.arange(30))
    np.testing.assert_array_equal(ev["event_weight"], 1.0)
    assert ak.all(ev["gen_status"] == 1)
    # The whole final state, neutrinos and ISR photons included, carries sqrt(s).
    np.testing.assert_allclose(ak.to_numpy(ak.sum(ev["gen_energy"], axis=1)), 380.0, rtol=1e-4)
    n_gen = ak.num(ev["gen_pdgid"])
    # Real tracks point at a truth particle; fake tracks (generate/fakes.py, ~1 % of tracks) carry -1.
    assert ak.all(ev["track_gen_idx"] < n_gen) and ak.all(ev["track_gen_idx"] >= -1)
    n_fake, n_tracks = int(ak.sum(ev["track_gen_idx"] < 0)), int(ak.sum(ak.num(ev["track_gen_idx"])))
    assert n_fake < 0.05 * n_tracks
    assert ak.all(ev["calolink_gen_idx"] < n_gen)
    assert ak.all(ev["calolink_cluster_idx"] < ak.num(ev["cluster_energy"]))
    # Real tracks belong to charged particles, or (a conversion leg, a nuclear interaction's product in
    # the tracker material, generate/secondaries.py) to the photon or neutral hadron they came from,
    # which is then a small share of them; links never belong to neutrinos.
    real = ev["track_gen_idx"][ev["track_gen_idx"] >= 0]
    neutral = ak.flatten(ev["gen_charge"][real] == 0)
    assert not ak.any(np.isin(np.abs(ak.flatten(ev["gen_pdgid"][real])[neutral]), [12, 14, 16]))
    assert ak.sum(neutral) < 0.1 * len(neutral)
    assert not ak.any(np.isin(np.abs(ak.flatten(ev["gen_pdgid"][ev["calolink_gen_idx"]])), [12, 14, 16]))
    # Per cluster, the links' energies add up to the cluster energy.
    for i in range(len(ev)):
        sums = np.bincount(
            ak.to_numpy(ev["calolink_cluster_idx"][i]), weights=ak.to_numpy(ev["calolink_energy"][i]),
            minlength=len(ev["cluster_energy"][i]),
        )  # fmt: skip
        np.testing.assert_allclose(sums, ak.to_numpy(ev["cluster_energy"][i]), rtol=1e-5)


def test_same_seed_gives_identical_bytes_and_other_seed_does_not(tmp_path: Path) -> None:
    a, _ = shard(tmp_path, "a", n_events=12, process="ee_qq")
    b, _ = shard(tmp_path, "b", n_events=12, process="ee_qq")
    c, _ = shard(tmp_path, "c", n_events=12, process="ee_qq", seed=18)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    with uproot.open(a) as fa, uproot.open(c) as fc:
        assert not ak.array_equal(fa[SIM_TREE]["gen_px"].array(), fc[SIM_TREE]["gen_px"].array())


def test_many_batches_and_writes_give_one_continuous_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_module, "EVENTS_PER_CHUNK", 7)
    path, _ = shard(tmp_path, n_events=30, process="ee_ww_fullhad")
    with uproot.open(path) as fh:
        ev = fh[SIM_TREE].arrays(list(SIM_ALL_BRANCHES))
    np.testing.assert_array_equal(ev["event_number"], np.arange(30))
    np.testing.assert_allclose(ak.to_numpy(ak.sum(ev["gen_energy"], axis=1)), 380.0, rtol=1e-4)
    assert ak.all(ev["calolink_cluster_idx"] < ak.num(ev["cluster_energy"]))


def test_writer_appends_batches_across_several_tree_extends(tmp_path: Path) -> None:
    from colliderflow.generate.records import Collection

    def batch(first: int, n: int) -> tuple[dict, list]:
        counts = np.arange(first, first + n) % 3
        values = np.arange(counts.sum(), dtype=np.float32) + first
        return {"event_number": np.arange(first, first + n, dtype=np.uint64)}, [
            Collection(counts=counts, columns={"gen_px": values})
        ]

    path = tmp_path / "w.root"
    with SimTreeWriter(path, identity={"test": 1}, max_buffered_events=4) as writer:
        for first in range(0, 10, 3):
            writer.append(*batch(first, min(3, 10 - first)))
    with uproot.open(path) as fh:
        tree = fh[SIM_TREE]
        assert tree.num_entries == 10
        np.testing.assert_array_equal(tree["event_number"].array(), np.arange(10))
        assert ak.to_list(ak.num(tree["gen_px"].array())) == list(np.arange(10) % 3)


def test_provenance_records_the_job(tmp_path: Path) -> None:
    _, _ = shard(tmp_path, n_events=5, process="ee_qq", seed=99, sample="qq", shard=3)
    record = json.loads((tmp_path / "0.json").read_text())
    assert record["stage"] == "generate"
    assert record["config"] == PARAMS
    assert record["seeds"] == {"generate": 99}
    assert (record["sample"], record["process"], record["backend"], record["shard"], record["n_events"]) == (
        "qq", "ee_qq", "builtin", 3, 5,
    )  # fmt: skip
    assert "Random:seed = 99" in record["generator"]["settings"]
    assert record["detector"] == "clic_like"
    assert record["versions"]["pythia8mc"] != "absent"


def test_no_provenance_file_unless_asked(tmp_path: Path) -> None:
    shard(tmp_path, n_events=3, process="ee_qq", provenance=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.root"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backend": "geant4"}, "unknown backend 'geant4'; known: builtin, delphes, key4hep"),
        ({"backend": "key4hep"}, "samples\\.ttbar\\.key4hep: missing key\\(s\\) steering_file, reco_options"),
        ({"process": "ee_nonsense"}, "unknown process 'ee_nonsense'"),
        ({"n_events": 0}, "n_events must be >= 1"),
        ({"shard": -1}, "shard must be >= 0"),
        ({"seed": 10**10}, "outside Pythia's range"),
        ({"params": {"sqrt_s": 380.0}}, "generate: missing key\\(s\\) detector"),
        ({"params": {**PARAMS, "pileup": 3}}, "generate: unknown keys \\['pileup'\\]"),
        ({"params": {**PARAMS, "detector": "ild"}}, "unknown detector 'ild'"),
        ({"params": {**PARAMS, "sqrt_s": "380"}}, "generate.sqrt_s: expected a number, got '380'"),
        ({"params": {**PARAMS, "sqrt_s": -1.0}}, "generate.sqrt_s: must be a positive number"),
    ],
)
def test_bad_input_raises_a_clear_error_and_writes_nothing(tmp_path: Path, overrides: dict, message: str) -> None:
    overrides = {"n_events": 3, **overrides}
    with pytest.raises(ValueError, match=message):
        shard(tmp_path, **overrides)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_no_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_flush(self: SimTreeWriter) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(SimTreeWriter, "flush", broken_flush)
    with pytest.raises(OSError, match="disk full"):
        shard(tmp_path, n_events=3, process="ee_qq")
    assert list(tmp_path.iterdir()) == []
    # An existing output survives a failed rerun untouched.
    old = tmp_path / "0.root"
    old.write_bytes(b"previous shard")
    with pytest.raises(OSError, match="disk full"):
        shard(tmp_path, n_events=3, process="ee_qq")
    assert old.read_bytes() == b"previous shard"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.root"]


def test_cli_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from colliderflow.generate.backends import delphes_install

    out = tmp_path / "x" / "0.root"
    argv = ["generate", "--sample", "ttbar", "--process", "ee_ttbar", "--shard", "0", "--n-events", "5",
            "--seed", "1", "--params", json.dumps(PARAMS), "-o", str(out), "--provenance", str(tmp_path / "x" / "0.json")]  # fmt: skip
    assert main(argv) == 0
    with uproot.open(out) as fh:
        assert fh[SIM_TREE].num_entries == 5
    record = json.loads((tmp_path / "x" / "0.json").read_text())  # the job's record: one entry per shard
    assert record["stage"] == "generate" and [s["process"] for s in record["shards"]] == ["ee_ttbar"]
    # A backend whose tools are missing is a clean error (exit code 2), not a traceback. Delphes is hidden
    # (a `make delphes` build in this environment, PATH, conda) so that it is missing here too.
    monkeypatch.setattr(delphes_install, "venv_prefix", lambda: tmp_path / "no-build")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    bad = [*argv[:-4], "--backend", "delphes", "-o", str(tmp_path / "y.root")]
    assert main(bad) == 2
    assert not (tmp_path / "y.root").exists()


def test_branch_types_from_dtypes_are_awkwards_own() -> None:
    # The writer names jagged branch types from the buffers' dtypes instead of asking awkward for them.
    import awkward as ak

    from colliderflow.generate.rootio import _branch_types

    offsets = ak.index.Index64(np.array([0, 2, 2, 5]))
    chunk = {"event_number": np.arange(3, dtype=np.uint64)}
    for dtype in (np.float32, np.int32, np.float64, np.int64):
        chunk[f"x_{np.dtype(dtype).name}"] = ak.Array(
            ak.contents.ListOffsetArray(offsets, ak.contents.NumpyArray(np.arange(5, dtype=dtype))))
    expected = {k: v.type.content if isinstance(v, ak.Array) else v.dtype for k, v in chunk.items()}
    assert _branch_types(chunk) == expected

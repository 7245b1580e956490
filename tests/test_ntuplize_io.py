"""ntuplize_files as a pipeline stage: bad inputs, atomic output, determinism, splits, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from sim_fixture import random_events, write_sim

from colliderflow.io.parquet import read_event_parquet
from colliderflow.io.sim_reader import detect_format, read_sim
from colliderflow.ntuplize.events import assign_splits, default_sample_name, ntuplize_files
from colliderflow.schema import EVENT_COLUMNS, SIM_ALL_BRANCHES

PARAMS = {
    "split_fractions": {"train": 0.7, "val": 0.1, "test": 0.2},
    "jets": {"algorithm": "ee_genkt", "radius": 0.4, "p": -1.0, "min_pt": 5.0},
}


@pytest.fixture(scope="module")
def arrays() -> dict:
    return random_events(300, seed=11)


@pytest.fixture(scope="module")
def sim_file(arrays: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sim(tmp_path_factory.mktemp("sim") / "ttbar.root", arrays)


def run(inputs: list[Path], output: Path, **kw: object) -> dict:
    args = {"sample": None, "shard": 0, "params": PARAMS, "seed": 42, "provenance": None} | kw
    return ntuplize_files(inputs, output=output, **args)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------------------------------------------
# Bad inputs: a ValueError naming the file and the problem, and nothing written
# ---------------------------------------------------------------------------------------------------
def test_missing_branches_are_named_and_nothing_is_written(arrays: dict, tmp_path: Path) -> None:
    bad = write_sim(tmp_path / "nobranch.root", arrays, drop=("track_omega", "cluster_energy_ecal"))
    out_dir = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        run([bad], out_dir / "x.parquet", provenance=out_dir / "x.json")
    message = str(err.value)
    assert str(bad) in message and "track_omega" in message and "cluster_energy_ecal" in message
    assert not out_dir.exists() or leftovers(out_dir) == []


def test_nan_filled_inputs_are_named_and_nothing_is_written(arrays: dict, tmp_path: Path) -> None:
    energy = ak.to_numpy(ak.flatten(arrays["cluster_energy"])).copy()
    energy[::7] = np.nan
    poisoned = dict(arrays, cluster_energy=ak.unflatten(energy, ak.num(arrays["cluster_energy"])))
    bad = write_sim(tmp_path / "nan.root", poisoned)
    out_dir = tmp_path / "out"
    with pytest.raises(ValueError, match=r"nan\.root: non-finite \(NaN or inf\) values in cluster_energy \(\d+ values\)"):
        run([bad], out_dir / "x.parquet", provenance=out_dir / "x.json")
    assert not out_dir.exists() or leftovers(out_dir) == []


def test_a_missing_collection_is_named(arrays: dict, tmp_path: Path) -> None:
    bad = write_sim(tmp_path / "nolinks.root", arrays, drop=("calolink_cluster_idx", "calolink_gen_idx",
                                                              "calolink_energy"))
    with pytest.raises(ValueError, match=r"nolinks\.root.*collections missing: calolink"):
        read_sim(bad)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.root"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.root: empty file"):
        run([path], tmp_path / "x.parquet")
    assert leftovers(tmp_path) == ["empty.root"]


def test_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.root"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ValueError, match=r"garbage\.root: not a readable ROOT file"):
        run([path], tmp_path / "x.parquet")
    assert leftovers(tmp_path) == ["garbage.root"]


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_file(sim_file: Path, tmp_path: Path, keep: float) -> None:
    data = sim_file.read_bytes()
    path = tmp_path / "truncated.root"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match=r"truncated\.root"):
        run([path], tmp_path / "x.parquet")
    assert leftovers(tmp_path) == ["truncated.root"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nowhere\.root: no such file"):
        run([tmp_path / "nowhere.root"], tmp_path / "x.parquet")


def test_file_without_the_events_tree(tmp_path: Path) -> None:
    path = tmp_path / "other.root"
    with uproot.recreate(path) as fh:
        fh["something"] = {"x": np.arange(3)}
    with pytest.raises(ValueError, match=r"other\.root: no tree 'events'.*something"):
        detect_format(path)


def test_delphes_file_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "delphes.root"
    with uproot.recreate(path) as fh:
        fh.mktree("Delphes", {"Event_size": np.int32})
    with pytest.raises(ValueError, match=r"delphes\.root: looks like a Delphes file"):
        read_sim(path)


def test_tree_without_events(arrays: dict, tmp_path: Path) -> None:
    empty = {k: v[:0] for k, v in arrays.items()}
    path = write_sim(tmp_path / "noevents.root", empty)
    with pytest.raises(ValueError, match=r"noevents\.root.*no events"):
        read_sim(path)


def test_index_outside_the_event_is_an_error(tmp_path: Path) -> None:
    arrays = random_events(5, seed=2)
    arrays["calolink_gen_idx"] = arrays["calolink_gen_idx"] + 1000
    path = write_sim(tmp_path / "badidx.root", arrays)
    with pytest.raises(ValueError, match=r"badidx\.root.*calolink_gen_idx point outside the gen collection"):
        read_sim(path)


def test_inconsistent_collection_lengths_are_an_error(tmp_path: Path) -> None:
    arrays = random_events(5, seed=2)
    path = tmp_path / "ragged.root"
    tree = {b: arrays[b] for b in SIM_ALL_BRANCHES}
    tree["track_chi2"] = arrays["track_chi2"][:, :1]  # one value per event instead of one per track
    with uproot.recreate(path) as fh:
        fh.mktree("events", {k: (v.dtype if isinstance(v, np.ndarray) else v.type.content) for k, v in tree.items()})
        fh["events"].extend(tree)
    with pytest.raises(ValueError, match=r"ragged\.root: branch track_chi2 is not jagged like track_gen_idx"):
        read_sim(path)


@pytest.mark.parametrize("params, match", [
    ({**PARAMS, "split_fractions": {"train": 0.7, "val": 0.2, "test": 0.2}}, "sum to 1"),
    ({**PARAMS, "split_fractions": {"train": 1.0}}, "ntuplize.split_fractions: missing key\\(s\\) val, test"),
    ({**PARAMS, "jets": {"algorithm": "ee_genkt", "radius": 0.4}}, "ntuplize.jets: must have exactly the keys"),
    ({**PARAMS, "jet": {}}, "unknown key"),
    ({**PARAMS, "baseline": {"nonsense": 1}}, "nonsense"),
])
def test_bad_params(sim_file: Path, tmp_path: Path, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run([sim_file], tmp_path / "x.parquet", params=params)
    assert leftovers(tmp_path) == []


def test_bad_jet_algorithm_leaves_no_output(sim_file: Path, tmp_path: Path) -> None:
    params = {**PARAMS, "jets": {**PARAMS["jets"], "algorithm": "cambridge"}}
    with pytest.raises(ValueError, match="cambridge"):
        run([sim_file], tmp_path / "x.parquet", params=params)
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------
def test_output_layout_ids_and_stats(sim_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "shard.parquet"
    stats = run([sim_file], out, shard=7, provenance=tmp_path / "shard.json")
    events = read_event_parquet(out)
    assert events.fields == list(EVENT_COLUMNS)
    assert len(events) == 300 == stats["events"]
    assert ak.to_list(events.event_id) == [7 * 2**32 + i for i in range(300)]
    assert set(ak.to_list(events.sample)) == {"ttbar"}
    assert int(ak.sum(events.n_elements)) == stats["elements"]
    assert ak.all(ak.num(events.X, axis=1) == events.n_elements)
    assert str(events.type.content).startswith("{event_id: int64, sample: string, split: string, X: var * 17 * float32")
    assert stats["events_per_s"] > 0 and stats["mb_per_s"] > 0 and stats["seconds"] > 0
    record = json.loads((tmp_path / "shard.json").read_text())
    assert record["stage"] == "ntuplize" and record["events"] == 300 and record["shard"] == 7
    assert record["inputs"] == [str(sim_file)] and record["seeds"] == {"split": 42}
    assert len(record["output_sha256"]) == 64


def test_reruns_are_byte_identical(sim_file: Path, tmp_path: Path) -> None:
    run([sim_file], tmp_path / "a.parquet", provenance=tmp_path / "a.json")
    run([sim_file], tmp_path / "b.parquet", provenance=tmp_path / "b.json")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["output_sha256"] == b["output_sha256"]
    run([sim_file], tmp_path / "c.parquet", seed=43)
    assert (tmp_path / "a.parquet").read_bytes() != (tmp_path / "c.parquet").read_bytes()


def test_several_inputs_continue_the_event_index(arrays: dict, tmp_path: Path) -> None:
    first = write_sim(tmp_path / "a.root", {k: v[:100] for k, v in arrays.items()})
    second = write_sim(tmp_path / "b.root", {k: v[100:] for k, v in arrays.items()})
    whole = write_sim(tmp_path / "all.root", arrays)
    run([first, second], tmp_path / "two.parquet", sample="s")
    run([whole], tmp_path / "one.parquet", sample="s")
    assert (tmp_path / "two.parquet").read_bytes() == (tmp_path / "one.parquet").read_bytes()


def test_the_table_built_from_buffers_is_the_one_awkward_would_write(sim_file: Path, tmp_path: Path) -> None:
    # The shard is assembled as arrow arrays straight from numpy; the same columns handed to the writer
    # as an awkward record array (the general route) must give the same bytes.
    from colliderflow.io.parquet import write_parquet_atomic

    run([sim_file], tmp_path / "direct.parquet")
    events = read_event_parquet(tmp_path / "direct.parquet")
    write_parquet_atomic(ak.zip({name: events[name] for name in EVENT_COLUMNS}, depth_limit=1),
                         tmp_path / "awkward.parquet")
    assert (tmp_path / "direct.parquet").read_bytes() == (tmp_path / "awkward.parquet").read_bytes()


def test_read_events_reads_what_read_sim_reads(sim_file: Path) -> None:
    from colliderflow.io.sim_reader import read_events

    source = read_events(sim_file)
    assert source.format == "builtin" and source.bfield_tesla == 4.0
    assert source.events.tolist() == read_sim(sim_file).tolist()


def test_rntuple_and_ttree_files_give_the_same_shard(arrays: dict, sim_file: Path, tmp_path: Path) -> None:
    rntuple = tmp_path / "ttbar.root"
    with uproot.recreate(rntuple) as fh:
        fh["events"] = {b: arrays[b] for b in SIM_ALL_BRANCHES}
    assert uproot.open(rntuple).classnames() == {"events;1": "ROOT::RNTuple"}
    run([rntuple], tmp_path / "r.parquet")
    run([sim_file], tmp_path / "t.parquet")
    assert (tmp_path / "r.parquet").read_bytes() == (tmp_path / "t.parquet").read_bytes()


def test_default_sample_names() -> None:
    assert default_sample_name(Path("/data/ttbar.root")) == "ttbar"
    assert default_sample_name(Path("results/ci/sim/qq/003.root")) == "qq"
    assert default_sample_name(Path("results/ci/sim/ww/shard_12.root")) == "ww"


# ---------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def test_split_fractions_are_respected_on_many_events() -> None:
    ids = np.arange(200_000, dtype=np.int64) + 3 * 2**32
    splits = assign_splits(ids, sample="ttbar", seed=42, fractions=FRACTIONS)
    for name, fraction in FRACTIONS.items():
        # Binomial σ ≈ 0.001 here; 0.005 is five of them.
        assert abs(np.mean(splits == name) - fraction) < 0.005, name


def test_split_is_a_pure_function_of_seed_sample_and_event() -> None:
    ids = np.arange(5000, dtype=np.int64)
    base = assign_splits(ids, sample="ttbar", seed=42, fractions=FRACTIONS)
    assert np.array_equal(base[1000:2000], assign_splits(ids[1000:2000], sample="ttbar", seed=42, fractions=FRACTIONS))
    assert np.mean(base != assign_splits(ids, sample="ttbar", seed=43, fractions=FRACTIONS)) > 0.3
    assert np.mean(base != assign_splits(ids, sample="qq", seed=42, fractions=FRACTIONS)) > 0.3


def test_degenerate_split_fractions() -> None:
    ids = np.arange(1000, dtype=np.int64)
    assert set(assign_splits(ids, sample="s", seed=0, fractions={"train": 1.0, "val": 0.0, "test": 0.0})) == {"train"}
    assert set(assign_splits(ids, sample="s", seed=0, fractions={"train": 0.0, "val": 0.0, "test": 1.0})) == {"test"}


def test_split_column_matches_assign_splits(sim_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.parquet"
    stats = run([sim_file], out, shard=2, sample="ttbar")
    events = read_event_parquet(out)
    expected = assign_splits(ak.to_numpy(events.event_id), sample="ttbar", seed=42, fractions=FRACTIONS)
    assert ak.to_list(events.split) == expected.tolist()
    assert stats["splits"] == {s: int(np.sum(expected == s)) for s in FRACTIONS}


def test_empty_params_use_the_documented_defaults(sim_file: Path, tmp_path: Path) -> None:
    from colliderflow.ntuplize.events import DEFAULT_PARAMS

    assert DEFAULT_PARAMS == PARAMS
    run([sim_file], tmp_path / "a.parquet", params={})
    run([sim_file], tmp_path / "b.parquet", params=PARAMS)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_the_validation_thresholds_in_the_section_do_not_disturb_ntuplize(sim_file: Path, tmp_path: Path) -> None:
    run([sim_file], tmp_path / "a.parquet", params={**PARAMS, "validation": {"max_nan": 0}})
    run([sim_file], tmp_path / "b.parquet", params=PARAMS)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()

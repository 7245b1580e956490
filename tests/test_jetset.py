"""The assembled jet dataset: every jet once, stable splits, bounded shuffled files, exact schema."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from colliderflow.train.jet_data import synthetic_jet_table
from colliderflow.jetschema import JETCLASS2_SCHEMA
from colliderflow.jetset import SPLITS, assemble_jet_dataset, input_identity, split_codes

FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
ID_COLUMN = "jet_tau1"  # carries a unique jet id in these tests (exact in float32 below 2**24)
# (sample, job, file index, jets, jet_label): one class per sample, as the ntuplizer's shards are.
SHARDS = [("qcd", 0, 0, 900, 5), ("qcd", 0, 1, 700, 5), ("qcd", 1, 0, 0, 5), ("hbb", 0, 0, 800, 1),
          ("hbb", 1, 0, 650, 1), ("wqq", 0, 0, 1000, 3), ("ttbar", 0, 0, 450, 2)]


def write_shard(path: Path, n_jets: int, label: int, first_id: int, seed: int) -> None:
    table = synthetic_jet_table(n_jets, seed=seed, labels=(label,), min_particles=1, max_particles=6)
    ids = pa.array(np.arange(first_id, first_id + n_jets, dtype=np.float32))
    table = table.set_column(table.schema.get_field_index(ID_COLUMN), JETCLASS2_SCHEMA.field(ID_COLUMN), ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("results") / "jets"
    paths, first = [], 0
    for seed, (sample, job, index, n, label) in enumerate(SHARDS):
        path = root / sample / str(job) / f"{index}.parquet"
        write_shard(path, n, label, first, seed)
        paths.append(path)
        first += n
    return paths


def read_split(directory: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in sorted(directory.glob("*.parquet"))])


def by_id(table: pa.Table) -> pa.Table:
    return table.take(pc.sort_indices(table.column(ID_COLUMN)))


def assemble(shards: list[Path], out: Path, **kwargs) -> dict:
    args = {"output_dir": out, "split_fractions": FRACTIONS, "jets_per_file": 1000, "seed": 11,
            "provenance": out.parent / f"{out.name}.provenance.json", **kwargs}
    return assemble_jet_dataset(shards, **args)


@pytest.fixture(scope="module")
def assembled(shards: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("assembled") / "dataset"
    return out, assemble(shards, out)


def test_every_input_jet_appears_exactly_once_and_unchanged(shards, assembled) -> None:
    out, summary = assembled
    inputs = by_id(pa.concat_tables([pq.read_table(p) for p in shards]))
    outputs = by_id(pa.concat_tables([read_split(out / s) for s in SPLITS]))
    assert outputs.num_rows == inputs.num_rows == summary["jets"] == sum(s[3] for s in SHARDS)
    assert outputs.equals(inputs)
    ids = [set(read_split(out / s).column(ID_COLUMN).to_pylist()) for s in SPLITS]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


def test_layout_schema_sizes_and_summary(assembled) -> None:
    out, summary = assembled
    assert sorted(p.name for p in out.iterdir()) == sorted(SPLITS)
    written = []
    for split in SPLITS:
        files = sorted((out / split).iterdir())
        assert [f.name for f in files] == [f"{split}_{k:04d}.parquet" for k in range(len(files))]
        sizes = []
        for f in files:
            parquet = pq.ParquetFile(f)
            assert parquet.schema_arrow.equals(JETCLASS2_SCHEMA) and not parquet.schema_arrow.metadata
            assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
            sizes.append(parquet.metadata.num_rows)
        assert max(sizes) <= 1000 and max(sizes) - min(sizes) <= 1  # bounded and balanced
        assert summary["splits"][split]["jets"] == sum(sizes)
        assert [f["jets"] for f in summary["splits"][split]["files"]] == sizes
        labels = read_split(out / split).column("jet_label").to_numpy()
        assert summary["splits"][split]["jets_per_label"] == {str(v): int(n) for v, n in
                                                               zip(*np.unique(labels, return_counts=True))}
        written += [f"{split}/{f.name}" for f in files]
    assert summary["files_written"] == written
    stems = [Path(w).stem for w in written]
    assert len(set(stems)) == len(stems)
    record = json.loads((out.parent / "dataset.provenance.json").read_text())
    assert record["stage"] == "jet_dataset" and record["seeds"] == {"jet_dataset": 11}
    assert record["stats"]["splits"]["val"]["jets"] == summary["splits"]["val"]["jets"]


def test_split_fractions_within_tolerance(assembled) -> None:
    _, summary = assembled
    total = summary["jets"]
    for split, fraction in FRACTIONS.items():
        sigma = np.sqrt(fraction * (1 - fraction) / total)
        assert abs(summary["splits"][split]["jets"] / total - fraction) < 5 * sigma, split


def test_files_mix_the_samples(assembled) -> None:
    out, _ = assembled
    for f in sorted((out / "train").glob("*.parquet")):
        labels = pq.read_table(f, columns=["jet_label"]).column(0).to_numpy()
        shares = np.bincount(labels, minlength=6)[[1, 2, 3, 5]] / labels.size
        expected = np.array([1450, 450, 1000, 1600]) / 4500
        np.testing.assert_allclose(shares, expected, atol=0.07)
        assert np.mean(labels[1:] != labels[:-1]) > 0.5  # not in runs of one class


def test_determinism_and_input_order(shards, assembled, tmp_path: Path) -> None:
    out, _ = assembled
    shuffled = list(shards)
    random.Random(3).shuffle(shuffled)
    again = tmp_path / "again"
    assemble(shuffled, again)
    for split in SPLITS:
        names = sorted(p.name for p in (out / split).iterdir())
        assert names == sorted(p.name for p in (again / split).iterdir())
        for name in names:
            assert (out / split / name).read_bytes() == (again / split / name).read_bytes()


def test_split_of_a_jet_is_stable_when_shards_are_added_or_files_move(shards, assembled, tmp_path: Path) -> None:
    out, _ = assembled
    split_of = {}
    for s, split in enumerate(SPLITS):
        for jet_id in read_split(out / split).column(ID_COLUMN).to_pylist():
            split_of[jet_id] = s
    moved = []
    for path in shards[::2]:  # half of the shards, copied to another results directory
        target = tmp_path / "elsewhere" / "jets" / Path(input_identity(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        moved.append(target)
    subset = tmp_path / "subset"
    assemble(moved, subset)
    for s, split in enumerate(SPLITS):
        for jet_id in read_split(subset / split).column(ID_COLUMN).to_pylist():
            assert split_of[jet_id] == s
    # and the assignment is the documented pure function of (seed, identity, row)
    first = pq.read_table(shards[0], columns=[ID_COLUMN]).column(0).to_pylist()
    codes = split_codes(input_identity(shards[0]), len(first), 11, np.array([0.7, 0.1, 0.2]))
    assert [split_of[i] for i in first] == codes.tolist()


def test_directory_input_and_seed_changes_the_order(shards, assembled, tmp_path: Path) -> None:
    out, _ = assembled
    root = shards[0].parents[2]
    from_dir = tmp_path / "from_dir"
    assemble([root], from_dir)
    assert (from_dir / "val" / "val_0000.parquet").read_bytes() == (out / "val" / "val_0000.parquet").read_bytes()
    other_seed = tmp_path / "seed12"
    assemble(shards, other_seed, seed=12)
    assert not read_split(other_seed / "train").column(ID_COLUMN).equals(read_split(out / "train").column(ID_COLUMN))


def test_empty_split_gets_one_zero_row_file(shards, tmp_path: Path) -> None:
    out = tmp_path / "no_val"
    summary = assemble(shards[:2], out, split_fractions={"train": 0.75, "test": 0.25}, jets_per_file=500)
    assert [p.name for p in (out / "val").iterdir()] == ["val_0000.parquet"]
    empty = pq.read_table(out / "val" / "val_0000.parquet")
    assert empty.num_rows == 0 and empty.schema.equals(JETCLASS2_SCHEMA)
    assert summary["splits"]["val"] == {"jets": 0, "files": [{"file": "val/val_0000.parquet", "jets": 0}],
                                        "jets_per_label": {}}
    assert summary["splits"]["train"]["jets"] + summary["splits"]["test"]["jets"] == 1600
    assert len(summary["splits"]["train"]["files"]) == 3  # ~1200 jets in files of at most 500


def test_existing_output_is_replaced_whole(shards, tmp_path: Path) -> None:
    out = tmp_path / "replace"
    (out / "train").mkdir(parents=True)
    (out / "train" / "stale.parquet").write_text("old")
    assemble(shards[:1], out)
    assert not (out / "train" / "stale.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["replace", "replace.provenance.json"]


def test_bad_input_names_the_file_and_writes_nothing(shards, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "train").mkdir(parents=True)
    (out / "train" / "keep.parquet").write_text("previous dataset")
    wrong = tmp_path / "events" / "wrong_schema.parquet"
    wrong.parent.mkdir()
    pq.write_table(pq.read_table(shards[0]).drop_columns(["jet_sdmass"]), wrong)
    with pytest.raises(ValueError, match=r"wrong_schema\.parquet: not a JetClass-II jet file.*jet_sdmass"):
        assemble([*shards, wrong], out)
    retyped = tmp_path / "events" / "retyped.parquet"
    table = pq.read_table(shards[0])
    pq.write_table(table.set_column(table.schema.get_field_index("jet_label"), "jet_label",
                                    table.column("jet_label").cast(pa.int64())), retyped)
    with pytest.raises(ValueError, match=r"retyped\.parquet: .*jet_label"):
        assemble([retyped, *shards], out)
    with pytest.raises(ValueError, match=r"missing\.parquet: jet Parquet file does not exist"):
        assemble([*shards, tmp_path / "missing.parquet"], out)
    with pytest.raises(ValueError, match="more than once"):
        assemble([*shards, shards[0]], out)
    assert (out / "train" / "keep.parquet").read_text() == "previous dataset"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events", "out"]  # no staging left beside it


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"split_fractions": {"train": 0.7, "val": 0.1}}, r"jets.split_fractions: fractions must sum to 1, got train 0.7 \+ val 0.1 \+ test 0 = 0.8"),
    ({"split_fractions": {"train": 0.9, "validation": 0.1}}, r"jets.split_fractions: unknown keys \['validation'\]"),
    ({"split_fractions": {"train": 1.2, "test": -0.2}}, "jets.split_fractions: fractions must be finite and ≥ 0"),
    ({"jets_per_file": 0}, "jets_per_file"),
])
def test_bad_parameters(shards, tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assemble(shards, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "jetclass2" / "JetClassII_example.parquet"


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="the JetClass-II example file is not available")
def test_published_example_goes_through_unchanged_but_for_its_metadata(tmp_path: Path) -> None:
    shard = tmp_path / "jets" / "example" / "0" / "0.parquet"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(EXAMPLE.read_bytes())
    assert pq.read_schema(shard).metadata  # awkward's, which our files do not carry
    out = tmp_path / "dataset"
    assemble_jet_dataset([shard], output_dir=out, split_fractions=FRACTIONS, jets_per_file=40, seed=0,
                         provenance=None)
    rows = pa.concat_tables([read_split(out / s) for s in SPLITS])
    for f in out.glob("*/*.parquet"):
        schema = pq.read_schema(f)
        assert schema.equals(JETCLASS2_SCHEMA) and not schema.metadata
    original = pq.read_table(shard).replace_schema_metadata(None)
    key = ["jet_pt", "jet_eta", "jet_phi"]
    assert rows.sort_by([(k, "ascending") for k in key]).equals(original.sort_by([(k, "ascending") for k in key]))


def test_input_inside_the_output_directory_is_refused(shards, assembled) -> None:
    out, _ = assembled
    with pytest.raises(ValueError, match="inside the output directory"):
        assemble([*shards, out / "train" / "train_0000.parquet"], out)
    assert (out / "train" / "train_0000.parquet").is_file()

"""The jet TFDS dataset: built from an assembled jet dataset, read back jet by jet without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from colliderflow.io.jet_tfds import build_jet_tfds, jet_split_files, open_jet_split
from colliderflow.io.tfds_reader import find_version_dir, split_sizes
from colliderflow.train.jet_data import synthetic_jet_table
from colliderflow.jetschema import JETCLASS2_COLUMNS
from colliderflow.jetset import assemble_jet_dataset

DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


@pytest.fixture(scope="module")
def jet_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An assembled dataset (no val split, so that split is empty) from two one-class shards."""
    base = tmp_path_factory.mktemp("jets")
    shards = []
    for i, (sample, label) in enumerate([("qcd", 5), ("hbb", 1)]):
        path = base / "jets" / sample / "0" / "0.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(synthetic_jet_table(40, seed=i, labels=(label,), min_particles=0, max_particles=5), path)
        shards.append(path)
    out = base / "dataset"
    assemble_jet_dataset(shards, output_dir=out, split_fractions={"train": 0.7, "test": 0.3}, jets_per_file=20,
                         seed=1, provenance=None)
    return out


@pytest.fixture(scope="module")
def tfds_dir(jet_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tfds") / "jets"
    build_jet_tfds([jet_dataset], name="toyjets", output_dir=out)
    return out


def parquet_jets(directory: Path) -> dict[tuple[str, int], dict]:
    jets = {}
    for path in sorted(directory.glob("*.parquet")):
        for row, jet in enumerate(pq.read_table(path).to_pylist()):
            jets[(path.stem, row)] = jet
    return jets


def test_layout_and_sizes(tfds_dir: Path, jet_dataset: Path) -> None:
    assert find_version_dir(tfds_dir) == tfds_dir / "colliderflow_jets" / "toyjets" / "1.0.0"
    expected = {s: sum(pq.read_metadata(f).num_rows for f in (jet_dataset / s).glob("*.parquet"))
                for s in ("train", "val", "test")}
    assert expected["val"] == 0 and expected["train"] > 0
    assert split_sizes(tfds_dir) == expected
    assert len(open_jet_split(tfds_dir, "val")) == 0
    assert not any(p.name.startswith(".") for p in tfds_dir.parent.iterdir())


@pytest.mark.parametrize("split", ["train", "test"])
def test_round_trip_every_column(tfds_dir: Path, jet_dataset: Path, split: str) -> None:
    jets = parquet_jets(jet_dataset / split)
    source = open_jet_split(tfds_dir, split)
    records = source.__getitems__(list(range(len(source))))
    assert sorted((r["sample"], int(r["event_id"])) for r in records) == sorted(jets)
    for record in records:
        want = jets[(record["sample"], int(record["event_id"]))]
        assert set(record) == {c.name for c in JETCLASS2_COLUMNS} | {"sample", "event_id"}
        for column in JETCLASS2_COLUMNS:
            got, dtype = record[column.name], DTYPES[column.dtype]
            if column.is_list:
                assert isinstance(got, np.ndarray) and got.dtype == dtype and got.ndim == 1
                np.testing.assert_array_equal(got, np.asarray(want[column.name], dtype))
            else:
                assert isinstance(got, dtype) and got == dtype(want[column.name])
    one = source[0]
    assert isinstance(one["jet_pt"], np.float32) and one["event_id"] == records[0]["event_id"]
    assert [r["event_id"] for r in source[0:3]] == [r["event_id"] for r in records[:3]]


def test_deterministic(tfds_dir: Path, jet_dataset: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_jet_tfds([jet_dataset / "test", jet_dataset / "train"], name="toyjets", output_dir=again)
    for split in ("train", "test"):
        data = sorted((find_version_dir(again)).glob(f"*{split}.array_record*"))
        assert data and [p.read_bytes() for p in data] == [
            p.read_bytes() for p in sorted(find_version_dir(tfds_dir).glob(f"*{split}.array_record*"))]


def test_inputs_and_errors(jet_dataset: Path, tmp_path: Path) -> None:
    files = jet_split_files([jet_dataset])
    assert files == jet_split_files([jet_dataset / "train", *sorted((jet_dataset / "test").glob("*.parquet")),
                                     jet_dataset / "val"])
    loose = tmp_path / "loose.parquet"
    loose.write_bytes((jet_dataset / "train" / "train_0000.parquet").read_bytes())
    with pytest.raises(ValueError, match="loose.parquet: not inside a train/val/test directory"):
        build_jet_tfds([jet_dataset, loose], name="x", output_dir=tmp_path / "out")
    bad = tmp_path / "other" / "train" / "bad.parquet"
    bad.parent.mkdir(parents=True)
    pq.write_table(pq.read_table(loose).drop_columns(["jet_pt"]), bad)
    with pytest.raises(ValueError, match="bad.parquet: not a JetClass-II jet file.*jet_pt"):
        build_jet_tfds([jet_dataset, bad], name="x", output_dir=tmp_path / "out")
    twin = tmp_path / "twin" / "test" / "train_0000.parquet"
    twin.parent.mkdir(parents=True)
    twin.write_bytes(loose.read_bytes())
    with pytest.raises(ValueError, match="share the file stem 'train_0000'"):
        build_jet_tfds([jet_dataset, twin], name="x", output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="dataset name"):
        build_jet_tfds([jet_dataset], name="a/b", output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_read_without_tensorflow(tfds_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from colliderflow.io.jet_tfds import open_jet_split
        train = open_jet_split({str(tfds_dir)!r}, "train")
        assert len(train) > 0 and train[0]["part_px"].dtype.name == "float32"
        assert "tensorflow" not in sys.modules, "tensorflow was imported"
        """
    )
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "jetclass2" / "JetClassII_example.parquet"


@pytest.mark.skipif(not EXAMPLE.is_file(), reason="the JetClass-II example file is not available")
def test_round_trip_of_the_published_example(tmp_path: Path) -> None:
    """Real jets: gen particles, truth particles and all flags survive the blocks exactly."""
    train = tmp_path / "example" / "train"
    train.mkdir(parents=True)
    (train / "example.parquet").write_bytes(EXAMPLE.read_bytes())
    build_jet_tfds([tmp_path / "example"], name="example", output_dir=tmp_path / "tfds")
    jets = parquet_jets(train)
    source = open_jet_split(tmp_path / "tfds", "train")
    assert len(source) == len(jets)
    for record in source.__getitems__(list(range(len(source)))):
        want = jets[(record["sample"], int(record["event_id"]))]
        for column in JETCLASS2_COLUMNS:
            np.testing.assert_array_equal(record[column.name], np.asarray(want[column.name], DTYPES[column.dtype]),
                                          err_msg=column.name)

"""Event Parquet shards: the canonical layout survives a round trip and bad files are named."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colliderflow.io.parquet import read_event_columns, read_event_parquet, write_parquet_atomic
from colliderflow.schema import EVENT_COLUMNS
from event_tables import make_events

WIDTHS = {"X": 17, "ytarget": 8, "ycand": 8, "genjets": 4, "targetjets": 4}


def test_round_trip_regular_and_jagged_rows(tmp_path: Path) -> None:
    for jagged in (False, True):
        events = make_events(30, seed=1, jagged_rows=jagged)
        path = tmp_path / f"shard_{jagged}.parquet"
        write_parquet_atomic(events, path)
        back = read_event_parquet([path])
        assert len(back) == 30
        assert set(back.fields) == set(EVENT_COLUMNS)
        for name, width in WIDTHS.items():
            assert str(back[name].type.content) == f"var * {width} * float32"
            flat = ak.to_numpy(ak.flatten(back[name], axis=1))
            assert flat.shape == (int(ak.sum(ak.num(events[name], axis=1))), width)
            np.testing.assert_array_equal(flat, ak.to_numpy(ak.flatten(ak.to_regular(events[name], axis=2), axis=1)))
        assert ak.to_numpy(back.event_id).dtype == np.int64
        assert ak.to_numpy(back.n_elements).dtype == np.int32
        assert ak.to_numpy(back.genmet).dtype == np.float32
        assert ak.to_numpy(back.sample).tolist() == ["ttbar"] * 30
        assert ak.to_list(back.split) == ak.to_list(events.split)


def test_padding_idiom_gives_numpy(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    write_parquet_atomic(make_events(10, seed=2), path)
    x = read_event_parquet(path).X
    padded = ak.to_numpy(ak.fill_none(ak.pad_none(x, 5, axis=1, clip=True), np.zeros(17, np.float32), axis=1))
    assert padded.shape == (10, 5, 17) and padded.dtype == np.float32


def test_file_layout_fixed_size_lists_zstd_no_float_dictionary(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    write_parquet_atomic(make_events(20, seed=3, jagged_rows=True), path)
    schema = pq.read_schema(path)
    assert schema.field("X").type.value_type == pa.list_(pa.field("element", pa.float32(), nullable=False), 17)
    meta = pq.ParquetFile(path).metadata
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in range(meta.num_columns)}
    assert all(c.compression == "ZSTD" for c in columns.values())
    assert not any("DICTIONARY" in e for e in columns["genmet"].encodings)
    assert any("DICTIONARY" in e for e in columns["sample"].encodings)


def test_plain_pyarrow_shard_with_nullable_lists_reads_canonically(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    table = pa.table({
        "event_id": pa.array([1, 2], pa.int64()),
        "genmet": pa.array([1.5, 2.5], pa.float64()),
        "X": pa.array([[[0.5] * 17], []], pa.list_(pa.list_(pa.float64()))),
    })
    pq.write_table(table, path)
    back = read_event_parquet(path, columns=["event_id", "genmet", "X"])
    assert str(back.type) == "2 * {event_id: int64, genmet: float32, X: var * 17 * float32}"


def test_split_filter_and_columns(tmp_path: Path) -> None:
    events = make_events(40, seed=4)
    path = tmp_path / "s.parquet"
    write_parquet_atomic(events, path)
    train = read_event_parquet([path, path], columns=["event_id", "genmet"], split="train")
    expected = ak.to_numpy(events.event_id[events.split == "train"])
    assert train.fields == ["event_id", "genmet"]
    np.testing.assert_array_equal(ak.to_numpy(train.event_id), np.concatenate([expected, expected]))
    cols = read_event_columns([path], ["sample", "n_elements"], split="val")
    assert cols["n_elements"].dtype == np.int32
    assert cols["sample"].size == int(ak.sum(events.split == "val"))


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [
        ("X", [[[1.0] * 16]], "every row must have 17 values"),
        ("ytarget", [[[1.0] * 8, None]], "missing (null)"),
        ("n_elements", [2**40], "n_elements"),
        ("event_id", [1.5], "event_id"),
    ],
)
def test_write_refuses_bad_columns_and_leaves_nothing(tmp_path: Path, column: str, bad: list, message: str) -> None:
    events = make_events(1, seed=5)
    table = ak.to_arrow_table(events, extensionarray=False)
    index = table.column_names.index(column)
    table = table.set_column(index, column, pa.array(bad))
    path = tmp_path / "bad.parquet"
    with pytest.raises(ValueError, match=str(path).replace(".", r"\.")) as info:
        write_parquet_atomic(table, path)
    assert message in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    write_parquet_atomic(make_events(3, seed=6), path)
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_parquet_atomic(ak.Array([1, 2, 3]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["s.parquet"]


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.parquet"
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        read_event_parquet([missing])
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="corrupt.parquet.*not a readable Parquet file"):
        read_event_parquet(corrupt)
    partial = tmp_path / "partial.parquet"
    write_parquet_atomic(make_events(3, seed=7)[["event_id", "sample", "split"]], partial)
    with pytest.raises(ValueError, match="partial.parquet: missing required column.*X"):
        read_event_parquet(partial)
    with pytest.raises(ValueError, match="partial.parquet: missing required column.*genmet"):
        read_event_columns([partial], ["genmet"])
    good = tmp_path / "good.parquet"
    write_parquet_atomic(make_events(3, seed=8), good)
    with pytest.raises(ValueError, match="good.parquet: column 'X' is not a scalar column"):
        read_event_columns([good], ["X"])
    with pytest.raises(ValueError, match="unknown split 'training'"):
        read_event_parquet(good, split="training")
    with pytest.raises(ValueError, match="no input Parquet files"):
        read_event_parquet([])

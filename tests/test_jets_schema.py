"""The JetClass-II column contract: written down in jetschema, checked against the published example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colliderflow.jetschema import (
    JETCLASS2_COLUMNS,
    JETCLASS2_NAMES,
    JETCLASS2_SCHEMA,
    jetclass2_table,
    schema_differences,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXAMPLE = DATA / "jetclass2" / "JetClassII_example.parquet"
needs_example = pytest.mark.skipif(not EXAMPLE.is_file(), reason=f"JetClass-II example not found at {EXAMPLE}")


@needs_example
def test_schema_matches_the_jetclass2_example_exactly() -> None:
    example = pq.read_schema(EXAMPLE)
    assert list(example.names) == list(JETCLASS2_NAMES)
    for field in example:
        ours = JETCLASS2_SCHEMA.field(field.name)
        assert pa.types.is_list(ours.type) == pa.types.is_list(field.type), field.name
        assert ours.type == field.type, field.name
        assert ours.nullable == field.nullable, field.name
    assert schema_differences(example) == []


def test_schema_differences_names_what_is_wrong() -> None:
    fields = [JETCLASS2_SCHEMA.field(n) for n in JETCLASS2_NAMES if n != "jet_tau4"]
    fields = [pa.field("jet_label", pa.float32()) if f.name == "jet_label" else f for f in fields]
    fields = [pa.field("part_px", pa.float32()) if f.name == "part_px" else f for f in fields]
    problems = schema_differences(pa.schema([*fields, pa.field("extra", pa.int32())]))
    text = " | ".join(problems)
    assert "jet_tau4" in text
    assert "extra" in text
    assert "jet_label" in text
    assert "part_px: list-ness" in text


def _columns(n_jets: int, n_per_jet: int) -> dict[str, object]:
    counts = np.full(n_jets, n_per_jet)
    cols: dict[str, object] = {}
    for c in JETCLASS2_COLUMNS:
        if c.is_list:
            cols[c.name] = (np.arange(n_jets * n_per_jet) % 3, counts)
        else:
            cols[c.name] = np.arange(n_jets)
    return cols


def test_table_has_the_schema_and_casts_values() -> None:
    table = jetclass2_table(_columns(4, 3))
    assert table.schema.equals(JETCLASS2_SCHEMA)
    assert table.column("part_isPhoton").to_pylist()[0] == [False, True, True]
    assert table.column("part_charge").to_pylist()[1] == [0, 1, 2]
    assert table.column("jet_pt").type == pa.float32()


def test_table_refuses_missing_columns_and_bad_counts() -> None:
    cols = _columns(2, 2)
    del cols["jet_sdmass"]
    with pytest.raises(ValueError, match="jet_sdmass"):
        jetclass2_table(cols)
    cols = _columns(2, 2)
    cols["part_px"] = (np.zeros(3), np.array([2, 2]))
    with pytest.raises(ValueError, match="part_px"):
        jetclass2_table(cols)
    cols = _columns(2, 2)
    cols["jet_eta"] = np.zeros(3)
    with pytest.raises(ValueError, match="number of jets"):
        jetclass2_table(cols)

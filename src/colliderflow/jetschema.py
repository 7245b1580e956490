"""The JetClass-II jet-level layout: one row per jet, 54 columns, written down once.

The column list, order, value types and list-ness were read off the published JetClass-II example file
(jet-universe/sophon, notebooks/JetClassII_example.parquet). Files we write carry exactly this arrow
schema, down to the non-nullable list items, so a consumer of the public dataset (weaver, the Sophon
data config) reads ours without a translation layer. docs/jets.md explains the columns in prose.

Units follow JetClass-II rather than the rest of the project where the two differ: genpart_t is in
seconds (what Delphes stores and what the example holds), not ns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import awkward as ak
import numpy as np
import pyarrow as pa

# The column table itself is pure names (no numpy/arrow), so that config checks can read it cheaply.
from colliderflow.jetclass2 import COLUMNS_BY_NAME, JETCLASS2_COLUMNS, JETCLASS2_NAMES, JetColumn

__all__ = ["COLUMNS_BY_NAME", "JETCLASS2_COLUMNS", "JETCLASS2_NAMES", "JETCLASS2_SCHEMA", "JetColumn"]


_ARROW_SCALARS: Final[dict[str, pa.DataType]] = {"float32": pa.float32(), "int32": pa.int32(), "bool": pa.bool_()}
_NUMPY: Final[dict[str, type]] = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def arrow_type(column: JetColumn) -> pa.DataType:
    """The arrow type of a column as the JetClass-II file stores it (list items are non-nullable)."""
    scalar = _ARROW_SCALARS[column.dtype]
    return pa.list_(pa.field("item", scalar, nullable=False)) if column.is_list else scalar


JETCLASS2_SCHEMA: Final[pa.Schema] = pa.schema(
    [pa.field(c.name, arrow_type(c), nullable=False) for c in JETCLASS2_COLUMNS]
)


def schema_differences(schema: pa.Schema) -> list[str]:
    """How `schema` departs from JetClass-II (names, order, value types, list-ness); empty if it does not."""
    problems = []
    names = list(schema.names)
    missing = [n for n in JETCLASS2_NAMES if n not in names]
    extra = [n for n in names if n not in COLUMNS_BY_NAME]
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if not missing and not extra and names != list(JETCLASS2_NAMES):
        problems.append("columns are not in the JetClass-II order")
    for field in schema:
        column = COLUMNS_BY_NAME.get(field.name)
        if column is None:
            continue
        want = arrow_type(column)
        got = field.type
        if pa.types.is_list(got) != column.is_list:
            problems.append(f"{field.name}: list-ness differs (want {want}, got {got})")
        elif column.is_list and got.value_type != want.value_type:
            problems.append(f"{field.name}: value type {got.value_type}, want {want.value_type}")
        elif not column.is_list and got != want:
            problems.append(f"{field.name}: type {got}, want {want}")
    return problems


def _scalar_array(values: np.ndarray | ak.Array, column: JetColumn) -> pa.Array:
    data = np.asarray(ak.to_numpy(values) if isinstance(values, ak.Array) else values)
    if data.ndim != 1:
        raise ValueError(f"column {column.name!r} must be one value per jet, got shape {data.shape}")
    return pa.array(data.astype(_NUMPY[column.dtype], copy=False), type=arrow_type(column))


def _list_array(values: tuple[np.ndarray, np.ndarray] | ak.Array, column: JetColumn) -> pa.Array:
    if isinstance(values, ak.Array):
        counts = ak.to_numpy(ak.num(values, axis=1))
        flat = ak.to_numpy(ak.flatten(values, axis=1))
    else:
        flat, counts = values
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = np.asarray(flat).astype(_NUMPY[column.dtype], copy=False)
    if offsets[-1] != len(flat):
        raise ValueError(f"column {column.name!r}: counts sum to {offsets[-1]} but {len(flat)} values were given")
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(flat), type=arrow_type(column))


def jetclass2_table(columns: Mapping[str, object]) -> pa.Table:
    """Build a table in the exact JetClass-II schema.

    Scalar columns are 1-d arrays (one value per jet); list columns are either awkward `var * T`
    arrays or (flat values, counts per jet) pairs, which is how the builder produces them without ever
    materialising nested Python objects. Values are cast to the column type; a missing or extra name is
    an error, because a silently incomplete table would be a different dataset.
    """
    missing = [n for n in JETCLASS2_NAMES if n not in columns]
    extra = [n for n in columns if n not in COLUMNS_BY_NAME]
    if missing or extra:
        raise ValueError(f"JetClass-II columns: missing {missing}, unexpected {extra}")
    arrays = []
    for column in JETCLASS2_COLUMNS:
        value = columns[column.name]
        arrays.append(_list_array(value, column) if column.is_list else _scalar_array(value, column))
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise ValueError(f"JetClass-II columns disagree on the number of jets: {sorted(lengths)}")
    return pa.Table.from_arrays(arrays, schema=JETCLASS2_SCHEMA)


def empty_jetclass2_table() -> pa.Table:
    """A table with the JetClass-II schema and no rows (an input without selected jets)."""
    return JETCLASS2_SCHEMA.empty_table()

"""Event-level Parquet shards: one canonical on-disk layout, checked on the way in and on the way out.

Layout (schema.EVENT_COLUMNS). Per-element and per-jet blocks are stored as
``list<fixed_size_list<float32>[W]>`` — a per-event list of rows of exactly W floats — rather than as
``list<list<float32>>``. The fixed width is part of the file's type, so a reader knows the row width
without scanning the data, awkward reads it back as ``var * W * float32`` (which flattens straight to
an ``(n, W)`` numpy array and pads with the usual idiom), and a row of the wrong width cannot be
written at all. Writers may hand in either form: ``list<list>`` input whose rows all have the expected
width is converted, anything else is refused. Readers accept both forms for the same reason, so a shard
written by plain pyarrow still loads.

Scalars are cast to their contract dtype (event_id int64, n_elements int32, energies float32) with
arrow's *safe* casts, so an overflow or a fractional integer is an error instead of silent damage.
Missing values are refused everywhere: no stage downstream has a meaning for them.

Compression is zstd; dictionary encoding is used only for string columns (sample, split), where it pays,
and not for floats, where it made files larger and writes slower.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colliderflow.io.atomic import atomic_path
from colliderflow.schema import EVENT_COLUMNS, JET_FEATURES, N_ELEM_FEATURES, N_PARTICLE_FEATURES, SPLITS

# Row width of every per-element / per-jet block that may appear in a project Parquet file.
ROW_WIDTHS: Final[dict[str, int]] = {
    "X": N_ELEM_FEATURES,
    "ytarget": N_PARTICLE_FEATURES,
    "ycand": N_PARTICLE_FEATURES,
    "ypred": N_PARTICLE_FEATURES,
    "genjets": len(JET_FEATURES),
    "targetjets": len(JET_FEATURES),
}

SCALAR_TYPES: Final[dict[str, pa.DataType]] = {
    "event_id": pa.int64(),
    "n_elements": pa.int32(),
    "genmet": pa.float32(),
    "gen_unassigned_energy": pa.float32(),
    "weight": pa.float32(),
}

STRING_COLUMNS: Final = ("sample", "split")


def row_list_type(width: int) -> pa.DataType:
    """The arrow type of a per-event list of `width`-float rows, as stored on disk."""
    row = pa.list_(pa.field("element", pa.float32(), nullable=False), width)
    return pa.list_(pa.field("element", row, nullable=False))


def _nulls_anywhere(column: pa.ChunkedArray) -> bool:
    """True if any level of a (possibly nested list) column holds a null."""
    current: pa.ChunkedArray | pa.Array = column
    while True:
        if current.null_count:
            return True
        if not (pa.types.is_list(current.type) or pa.types.is_large_list(current.type)
                or pa.types.is_fixed_size_list(current.type)):
            return False
        current = pc.list_flatten(current)


def _canonical_column(name: str, column: pa.ChunkedArray, where: str) -> tuple[pa.ChunkedArray, pa.DataType]:
    """Cast one known column to its contract type, or explain (naming file and column) why it cannot be."""
    if _nulls_anywhere(column):
        raise ValueError(f"{where}: column {name!r} contains missing (null) values")
    if name in ROW_WIDTHS:
        width = ROW_WIDTHS[name]
        target = row_list_type(width)
        kind = column.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not (
            pa.types.is_list(kind.value_type)
            or pa.types.is_large_list(kind.value_type)
            or pa.types.is_fixed_size_list(kind.value_type)
        ):
            raise ValueError(
                f"{where}: column {name!r} must be a per-event list of {width}-float rows, got type {kind}"
            )
        if pa.types.is_fixed_size_list(kind.value_type) and kind.value_type.list_size != width:
            raise ValueError(
                f"{where}: column {name!r} has rows of {kind.value_type.list_size} values, expected {width}"
            )
    elif name in SCALAR_TYPES:
        target = SCALAR_TYPES[name]
    elif name in STRING_COLUMNS:
        target = pa.string()
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise ValueError(f"{where}: column {name!r} must hold strings, got type {column.type}")
    else:
        return column, column.type
    try:
        return column.cast(target, safe=True), target
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        if name in ROW_WIDTHS:
            raise ValueError(
                f"{where}: column {name!r}: every row must have {ROW_WIDTHS[name]} values ({exc})"
            ) from exc
        raise ValueError(f"{where}: column {name!r} cannot be stored as {target}: {exc}") from exc


def canonicalize_table(table: pa.Table, where: str) -> pa.Table:
    """Bring every known column of `table` to the on-disk contract type; other columns pass unchanged.

    Known columns come out non-nullable, which is what makes awkward read them without option types.
    """
    arrays = []
    fields = []
    for name in table.column_names:
        column, kind = _canonical_column(name, table.column(name), where)
        known = name in ROW_WIDTHS or name in SCALAR_TYPES or name in STRING_COLUMNS
        arrays.append(column)
        fields.append(pa.field(name, kind, nullable=not known))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _to_arrow(data: pa.Table | ak.Array, where: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, ak.Array):
        if not data.fields:
            raise ValueError(f"{where}: expected an awkward array of records (one field per column), got {data.type}")
        return ak.to_arrow_table(data, extensionarray=False, list_to32=True, string_to32=True)
    raise ValueError(f"{where}: cannot write a {type(data).__name__}; pass a pyarrow.Table or an awkward record array")


def write_parquet_atomic(data: pa.Table | ak.Array, path: str | Path) -> None:
    """Write an event table in the canonical layout; `path` is either the complete file or untouched."""
    path = Path(path)
    table = canonicalize_table(_to_arrow(data, str(path)), str(path))
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=strings or False)


def _as_paths(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    if isinstance(paths, (str, Path)):
        return [Path(paths)]
    out = [Path(p) for p in paths]
    if not out:
        raise ValueError("no input Parquet files given")
    return out


def _check_split(split: str | None) -> None:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


def read_table(path: str | Path, columns: Sequence[str] | None = None, split: str | None = None) -> pa.Table:
    """One shard as a canonical arrow table, optionally only the rows of one split.

    `columns=None` means "the full event contract": every schema.EVENT_COLUMNS column must be present,
    and exactly those are returned, in contract order, so shards concatenate. Errors name the file:
    missing file, unreadable/corrupt file, missing columns, bad types.
    """
    path = Path(path)
    _check_split(split)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Parquet file")
    try:
        available = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    wanted = list(EVENT_COLUMNS) if columns is None else list(dict.fromkeys(columns))
    needed = wanted + (["split"] if split is not None and "split" not in wanted else [])
    missing = [c for c in needed if c not in available]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {', '.join(missing)}; file has {', '.join(available)}")
    try:
        table = pq.read_table(path, columns=needed)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    table = canonicalize_table(table, str(path))
    if split is not None:
        table = table.filter(pc.equal(table.column("split"), split))
        if "split" not in wanted:
            table = table.drop_columns(["split"])
    return table


def read_event_parquet(paths: str | Path | Iterable[str | Path], columns: Sequence[str] | None = None,
                       split: str | None = None) -> ak.Array:
    """Event shards as one awkward record array, files concatenated in the order given.

    Row blocks come back as ``var * W * float32``: ``ak.to_numpy(events.X[i])`` is an ``(n_i, W)`` array
    and ``ak.flatten(events.X)`` converts to ``(sum n_i, W)``. Strings convert with ``ak.to_numpy`` too.
    """
    tables = [read_table(p, columns, split) for p in _as_paths(paths)]
    try:
        table = pa.concat_tables(tables, promote_options="none")
    except pa.ArrowInvalid as exc:
        names = ", ".join(str(p) for p in _as_paths(paths))
        raise ValueError(f"shards with different columns cannot be read together ({names}): {exc}") from exc
    return ak.from_arrow(table)


def read_event_columns(paths: str | Path | Iterable[str | Path], columns: Sequence[str],
                       split: str | None = None) -> dict[str, np.ndarray]:
    """Scalar columns of event shards as flat numpy arrays (strings as object arrays), files concatenated.

    This skips awkward entirely: the weights stage reads a few scalar columns of millions of events.
    """
    file_list = _as_paths(paths)
    columns = list(dict.fromkeys(columns))
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for path in file_list:
        table = read_table(path, columns, split)
        for name in columns:
            column = table.column(name)
            kind = column.type
            if pa.types.is_nested(kind):
                raise ValueError(f"{path}: column {name!r} is not a scalar column (type {kind})")
            parts[name].append(column.to_numpy())
    return {name: np.concatenate(chunks) if len(chunks) > 1 else chunks[0] for name, chunks in parts.items()}

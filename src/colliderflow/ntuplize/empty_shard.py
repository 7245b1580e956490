"""Zero-row event shards standing in for generation shards that failed and were skipped.

With `skip_failed_shards`, a generate job whose shard raised still succeeds and marks the shard
`failed` in its record; the shard's ROOT file is an empty placeholder that every reader refuses. The
ntuplize job of that shard must still produce its declared Parquet output (the DAG has it), but it
must not invent events. It writes a valid shard with the exact event schema and no rows, so every
reader (validation, TFDS, weights) concatenates it with the real shards without special cases, and
tags the file's schema metadata with the reason, so that the validation summary can tell a skipped
shard from one that merely happened to hold no events.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from colliderflow.io.atomic import atomic_path
from colliderflow.io.parquet import ROW_WIDTHS, SCALAR_TYPES, STRING_COLUMNS, canonicalize_table, row_list_type
from colliderflow.schema import EVENT_COLUMNS, SPLITS

log = logging.getLogger(__name__)

# Key of the Parquet schema metadata that marks a shard written for a skipped generation shard.
SKIPPED_METADATA_KEY: Final = b"colliderflow.skipped"


def _column_type(name: str) -> pa.DataType:
    if name in ROW_WIDTHS:
        return row_list_type(ROW_WIDTHS[name])
    if name in SCALAR_TYPES:
        return SCALAR_TYPES[name]
    if name in STRING_COLUMNS:
        return pa.string()
    raise ValueError(f"event column {name!r} has no on-disk type in colliderflow.io.parquet")


def empty_event_table() -> pa.Table:
    """A table of EVENT_COLUMNS in contract order and on-disk types, with no rows."""
    table = pa.table({name: pa.array([], type=_column_type(name)) for name in EVENT_COLUMNS})
    return canonicalize_table(table, "empty event shard")


def write_skipped_shard(output: str | Path, *, reason: str) -> None:
    """Write a zero-row event shard at `output`, atomically, its schema metadata holding `reason`."""
    table = empty_event_table()
    table = table.replace_schema_metadata({SKIPPED_METADATA_KEY: json.dumps({"reason": reason}).encode()})
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    with atomic_path(output) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=strings or False)


def write_skipped_jet_shard(output: str | Path, *, reason: str) -> None:
    """A zero-row JetClass-II jet shard at `output` (atomically), its schema metadata holding `reason`."""
    from colliderflow.jetschema import JETCLASS2_SCHEMA

    schema = JETCLASS2_SCHEMA.with_metadata({SKIPPED_METADATA_KEY: json.dumps({"reason": reason}).encode()})
    with atomic_path(output) as tmp:
        pq.write_table(schema.empty_table(), tmp, compression="zstd", use_dictionary=False)


def skipped_reason(path: str | Path) -> str | None:
    """Why the shard at `path` was written empty, or None for a shard that the ntuplizer filled."""
    metadata = pq.read_schema(path).metadata or {}
    if SKIPPED_METADATA_KEY not in metadata:
        return None
    try:
        return str(json.loads(metadata[SKIPPED_METADATA_KEY])["reason"])
    except (ValueError, KeyError, TypeError):
        return metadata[SKIPPED_METADATA_KEY].decode(errors="replace")


def ntuplize_skipped_shard(*, inputs: list[Path], output: Path, sample: str, shard: int, params: dict[str, Any],
                           seed: int, reason: str, provenance: Path | None) -> dict[str, Any]:
    """The ntuplize stage for a shard whose generation failed: an empty shard and a record saying why.

    The inputs are not opened (they are empty placeholders). The params are still checked, so a
    broken config fails here as it would for a real shard.
    """
    # Imported here: validation reads `skipped_reason` and need not load the whole ntuplizer.
    from colliderflow.ntuplize.events import jet_params, split_fractions, write_shard_provenance

    fractions = split_fractions(params)
    jets = jet_params(params)
    output = Path(output)
    write_skipped_shard(output, reason=reason)
    if provenance is not None:
        write_shard_provenance(provenance, params=params, seed=seed, inputs=inputs, sample=sample, shard=shard,
                               output=output, events=0, elements=0, splits=dict.fromkeys(SPLITS, 0), skipped=True,
                               reason=reason, effective_params={"split_fractions": fractions, "jets": jets})
    log.warning("ntuplize %s shard %d skipped, zero-row shard written to %s: %s", sample, shard, output, reason)
    return {"sample": sample, "shard": shard, "events": 0, "skipped": True, "reason": reason}

"""Write the simulation tree with uproot, so that the same events always give the same bytes.

Layout: one TTree (schema.SIM_TREE) with the SIM_* branches. Each jagged collection shares one ROOT
counter branch named "n" + its prefix (`ngen`, `ntrack`, `ncluster`, `ncalolink`), which ROOT needs to
store variable-length arrays; readers select the SIM_* branches by name and never need the counters.

Reproducible bytes let a rerun be recognised as identical by its checksum and make the determinism of a
shard testable. uproot stamps files with the wall-clock time and a random
UUID, and stores the file's own name; here the UUID is derived from the job's identity, the time is
fixed while the file is written, and the file is written through a file object (so the stored name is
uproot's neutral "dynamic.root" rather than the random name of the temporary file).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import types
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

import awkward as ak
import numpy as np
import uproot
import uproot.writing._cascade
import uproot.writing._cascadetree
import uproot.writing.writable

from colliderflow.config import canonical_json
from colliderflow.generate.records import Collection, concatenate
from colliderflow.schema import SIM_TREE

# LZ4 writes ~10x faster than uproot's default ZLIB for ~15 % larger files; at generator speed the
# writer would otherwise cost more than the whole detector simulation.
COMPRESSION = uproot.LZ4(1)

# The date stamped into every file (ROOT's TDatime counts from 1995).
FIXED_FILE_TIME = datetime.datetime(2000, 1, 1, 0, 0, 0)

# uproot modules that read the clock while writing (uproot 5.7: `datetime.datetime.now()` only).
_CLOCK_READERS = (uproot.writing._cascade, uproot.writing._cascadetree, uproot.writing.writable)


class _FixedClock(datetime.datetime):
    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:
        return FIXED_FILE_TIME


@contextlib.contextmanager
def fixed_file_time() -> Iterator[None]:
    """Make uproot stamp FIXED_FILE_TIME instead of the current time, for the duration of the block.

    This swaps the `datetime` module seen by uproot's writer modules; it is process-global, so files
    must not be written from other threads meanwhile (the generate stage writes one file per process).
    """
    shim = types.SimpleNamespace(datetime=_FixedClock)
    saved = [(module, module.datetime) for module in _CLOCK_READERS if hasattr(module, "datetime")]
    for module, _ in saved:
        module.datetime = shim
    try:
        yield
    finally:
        for module, original in saved:
            module.datetime = original


def file_uuid(identity: Mapping[str, Any]) -> uuid.UUID:
    """A UUID that depends only on what identifies the file's content (sample, shard, seed…)."""
    return uuid.UUID(bytes=hashlib.sha256(canonical_json(dict(identity)).encode()).digest()[:16])


def counter_name(branch: str) -> str:
    """The shared counter of a jagged branch: "n" + the collection prefix (gen_px -> ngen)."""
    return "n" + branch.split("_", 1)[0]


def jagged(collection: Collection) -> dict[str, ak.Array]:
    """The collection's columns as per-event lists, built directly from the flat buffers (no copy)."""
    offsets = ak.index.Index64(np.concatenate([[0], np.cumsum(collection.counts)]).astype(np.int64))
    return {
        name: ak.Array(ak.contents.ListOffsetArray(offsets, ak.contents.NumpyArray(values)))
        for name, values in collection.columns.items()
    }


def _branch_types(chunk: Mapping[str, np.ndarray | ak.Array]) -> dict[str, Any]:
    """uproot's branch types: the dtype of a flat column, `var * dtype` of a jagged one.

    Built from the buffers' dtypes: asking awkward for each array's type costs more than a millisecond
    per file, for the same type objects.
    """
    return {name: _jagged_type(values) if isinstance(values, ak.Array) else np.asarray(values).dtype
            for name, values in chunk.items()}


def _jagged_type(values: ak.Array) -> ak.types.Type:
    layout = values.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray) \
            and layout.content.data.ndim == 1 and not layout.parameters and not layout.content.parameters:
        return ak.types.ListType(ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(layout.content.dtype)))
    return values.type.content


class SimTreeWriter:
    """Append events to the simulation tree: per-event columns plus per-event collections.

    uproot rewrites the whole tree header on every `extend`, which with ~45 branches costs as much as
    writing a thousand events; events are therefore buffered and written in as few extends as memory
    allows (one per `max_buffered_events`).
    """

    def __init__(self, path: Path, *, identity: Mapping[str, Any], max_buffered_events: int = 20_000) -> None:
        if max_buffered_events < 1:
            raise ValueError(f"max_buffered_events must be >= 1, got {max_buffered_events}")
        self._path = Path(path)
        self._uuid = file_uuid(identity)
        self._max_buffered = max_buffered_events
        self._stack = contextlib.ExitStack()
        self._file: Any = None
        self._tree: Any = None
        self._branches: list[str] | None = None
        self._buffer: list[tuple[dict[str, np.ndarray], list[Collection]]] = []
        self._buffered_events = 0

    def __enter__(self) -> Self:
        stack = self._stack.__enter__()
        stack.enter_context(fixed_file_time())
        handle = stack.enter_context(self._path.open("w+b"))
        self._file = stack.enter_context(
            uproot.recreate(handle, compression=COMPRESSION, uuid_function=lambda: self._uuid)
        )
        return self

    def __exit__(self, exc_type: object, *rest: object) -> bool | None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._buffer.clear()
            result = self._stack.__exit__(exc_type, *rest)
        return result

    def append(self, events: Mapping[str, np.ndarray], collections: list[Collection]) -> None:
        """Queue one batch: flat per-event columns and the batch's collections (all for the same events)."""
        if self._file is None:
            raise ValueError("SimTreeWriter.append called outside its `with` block")
        n_events = {len(v) for v in events.values()} | {len(c.counts) for c in collections}
        if len(n_events) != 1:
            raise ValueError(f"columns and collections of one batch disagree on the number of events: {n_events}")
        branches = list(events) + [name for c in collections for name in c.columns]
        if self._branches is None:
            self._branches = branches
        elif branches != self._branches:
            raise ValueError("every batch written to one simulation tree must have the same branches")
        self._buffer.append((dict(events), list(collections)))
        self._buffered_events += n_events.pop()
        if self._buffered_events >= self._max_buffered:
            self.flush()

    def flush(self) -> None:
        """Write the buffered events to the tree."""
        if not self._buffer:
            return
        events = {
            name: np.concatenate([b[0][name] for b in self._buffer]) if len(self._buffer) > 1 else values
            for name, values in self._buffer[0][0].items()
        }
        chunk: dict[str, np.ndarray | ak.Array] = dict(events)
        for i in range(len(self._buffer[0][1])):
            chunk.update(jagged(concatenate([b[1][i] for b in self._buffer])))
        if self._tree is None:
            self._tree = self._file.mktree(SIM_TREE, _branch_types(chunk), counter_name=counter_name)
        self._tree.extend(chunk)
        self._buffer.clear()
        self._buffered_events = 0

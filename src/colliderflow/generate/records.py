"""A per-event collection of reconstructed objects as flat columns plus per-event counts.

Tracks, clusters and truth links are all "a variable number of rows per event". Flat columns keep the
detector code vectorised over the whole batch; the counts carry the event structure to the writer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np


@dataclass(frozen=True)
class Collection:
    """Rows of one object type for `len(counts)` events; `columns` maps a branch name to its flat array."""

    counts: np.ndarray  # int64 [n_events]
    columns: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        n = int(np.sum(self.counts))
        for name, values in self.columns.items():
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} rows, the counts say {n}")

    @property
    def n_rows(self) -> int:
        return int(np.sum(self.counts))


def counts_per_event(event: np.ndarray, n_events: int) -> np.ndarray:
    """How many rows each event holds, from the (sorted or not) event index of every row."""
    return np.bincount(event, minlength=n_events).astype(np.int64)


def concatenate(collections: list[Collection]) -> Collection:
    """Join collections of consecutive event batches, events in order."""
    if not collections:
        raise ValueError("no collections to concatenate")
    if len(collections) == 1:
        return collections[0]
    names = list(collections[0].columns)
    return Collection(
        counts=np.concatenate([c.counts for c in collections]),
        columns={name: np.concatenate([c.columns[name] for c in collections]) for name in names},
    )


def interleave_mask(counts_a: np.ndarray, counts_b: np.ndarray) -> np.ndarray:
    """Which rows of two event-major collections joined event by event (a's rows first in each event)
    come from b.

    Equivalent to a stable argsort of the concatenated event indices, without the sort: b's rows sit at
    their event's new offset plus a's count plus their rank. A mask, because filling by boolean masks
    is several times faster than by index arrays.
    """
    counts_a = np.asarray(counts_a, dtype=np.int64)
    counts_b = np.asarray(counts_b, dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(counts_a + counts_b)[:-1]]).astype(np.int64)
    start_b = np.concatenate([[0], np.cumsum(counts_b)[:-1]]).astype(np.int64)
    pos_b = np.arange(int(counts_b.sum()), dtype=np.int64) + np.repeat(start + counts_a - start_b, counts_b)
    from_b = np.zeros(int(counts_a.sum() + counts_b.sum()), dtype=bool)
    from_b[pos_b] = True
    return from_b


def interleave_columns(a: dict[str, np.ndarray], b: dict[str, np.ndarray], from_b: np.ndarray,
                       keep_a: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Columns of `a` and `b` (same names) joined event by event (`interleave_mask`); with `keep_a`, only
    a's rows where it is True take part (as if `a` had been masked first).

    One compiled pass per column, and the output columns of one dtype are rows of one 2D block: first
    touches of fresh memory (page faults) cost more than the copying itself, so neither masked
    temporaries nor one allocation per column.
    """
    n = from_b.size
    keep = np.ones(0, dtype=bool) if keep_a is None else np.asarray(keep_a, dtype=bool)
    by_dtype: dict[np.dtype, list[str]] = {}
    for name in a:
        by_dtype.setdefault(np.result_type(a[name], b[name]), []).append(name)
    out: dict[str, np.ndarray] = {}
    for dtype, names in by_dtype.items():
        block = np.empty((len(names), n), dtype=dtype)
        for row, name in zip(block, names, strict=True):
            _interleave_kernel(np.asarray(a[name], dtype=dtype), keep, np.asarray(b[name], dtype=dtype), from_b, row)
            out[name] = row
    return {name: out[name] for name in a}


@numba.njit(cache=True, nogil=True)
def _interleave_kernel(a, keep_a, b, from_b, out):
    """out[i] = the next of b's rows where from_b[i], else the next of a's rows (kept ones, if keep_a
    is not empty)."""
    j = 0
    k = 0
    masked = keep_a.shape[0] > 0
    for i in range(out.shape[0]):
        if from_b[i]:
            out[i] = b[k]
            k += 1
        else:
            if masked:
                while not keep_a[j]:
                    j += 1
            out[i] = a[j]
            j += 1

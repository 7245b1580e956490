"""A per-event collection of reconstructed objects as flat columns plus per-event counts.

Tracks, clusters and truth links are all "a variable number of rows per event". Flat columns keep the
detector code vectorised over the whole batch; the counts carry the event structure to the writer.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def interleave_positions(counts_a: np.ndarray, counts_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the rows of two event-major collections go when joined event by event, a's rows first.

    Equivalent to a stable argsort of the concatenated event indices, without the sort: each row's new
    position is its event's new offset plus its rank inside the event.
    """
    counts_a = np.asarray(counts_a, dtype=np.int64)
    counts_b = np.asarray(counts_b, dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(counts_a + counts_b)[:-1]]).astype(np.int64)
    start_a = np.concatenate([[0], np.cumsum(counts_a)[:-1]]).astype(np.int64)
    start_b = np.concatenate([[0], np.cumsum(counts_b)[:-1]]).astype(np.int64)
    pos_a = np.arange(int(counts_a.sum()), dtype=np.int64) + np.repeat(start - start_a, counts_a)
    pos_b = np.arange(int(counts_b.sum()), dtype=np.int64) + np.repeat(start + counts_a - start_b, counts_b)
    return pos_a, pos_b


def interleave(a: np.ndarray, b: np.ndarray, pos_a: np.ndarray, pos_b: np.ndarray) -> np.ndarray:
    """Rows of `a` and `b` placed at `interleave_positions`."""
    out = np.empty(a.size + b.size, dtype=np.result_type(a, b))
    out[pos_a] = a
    out[pos_b] = b
    return out

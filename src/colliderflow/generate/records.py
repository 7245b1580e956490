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

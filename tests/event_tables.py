"""Synthetic event tables in the ntuplizer's Parquet layout (schema.EVENT_COLUMNS), for io tests."""

from __future__ import annotations

import awkward as ak
import numpy as np

from colliderflow.schema import SPLITS


def make_events(
    n: int,
    *,
    seed: int,
    sample: str = "ttbar",
    shard: int = 0,
    splits: tuple[str, ...] = SPLITS,
    max_elements: int = 12,
    max_jets: int = 4,
    first_empty: bool = False,
    jagged_rows: bool = False,
) -> ak.Array:
    """`n` random events; `first_empty` gives event 0 no elements, `jagged_rows` builds the row blocks
    as var * var (lists of lists, as a hand-written table would) instead of var * W."""
    rng = np.random.default_rng(seed)
    n_el = rng.integers(0, max_elements, n)
    if first_empty:
        n_el[0] = 0
    n_jet = rng.integers(0, max_jets, n)

    def block(width: int, counts: np.ndarray) -> ak.Array:
        regular = ak.unflatten(rng.normal(size=(int(counts.sum()), width)).astype(np.float32), counts)
        return ak.Array(regular.tolist()) if jagged_rows else regular

    return ak.zip(
        {
            "event_id": shard * 2**32 + np.arange(n, dtype=np.int64),
            "sample": [sample] * n,
            "split": rng.choice(list(splits), n).tolist(),
            "X": block(17, n_el),
            "ytarget": block(8, n_el),
            "ycand": block(8, n_el),
            "n_elements": n_el.astype(np.int32),
            "genmet": rng.exponential(20.0, n).astype(np.float32),
            "genjets": block(4, n_jet),
            "targetjets": block(4, n_jet),
            "gen_unassigned_energy": rng.exponential(1.0, n).astype(np.float32),
        },
        depth_limit=1,
    )

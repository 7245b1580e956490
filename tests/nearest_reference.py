"""Nearest-neighbour search between two sets of objects of the same events, in plain numpy.

Track–cluster linking and particle–jet membership both ask "which object of my event is nearest to
me, if any is closer than d_max?". Expanding all pairs per event costs n·m per event; instead the
references are sorted by (event, key) once and each query only pairs with the references whose key
lies within ±window of its own — a cheap bound that any pair closer than d_max satisfies (Δη ≤ ΔR,
Δθ ≤ opening angle).

This is the readable statement of the search, kept beside the tests as their reference. The ntuplizer
runs its compiled counterpart, `colliderflow.kinematics.nearest_in_events`, which folds keys with the same
constants (taken from it here); the tests hold the two to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from colliderflow.kinematics import KEY_LIMIT as _KEY_LIMIT
from colliderflow.kinematics import KEY_SPAN as _SPAN


def nearest_within(
    query_event: np.ndarray,
    query_key: np.ndarray,
    ref_event: np.ndarray,
    ref_key: np.ndarray,
    *,
    window: float,
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray],
    max_distance: float,
) -> np.ndarray:
    """Per query, the index of the nearest reference of the same event with distance < max_distance, else −1.

    `distance(q, r)` returns the distances of query indices q to reference indices r (arrays of equal
    length). Candidates are restricted to |ref_key − query_key| ≤ window, which must be implied by
    distance < max_distance. Ties go to the lower reference index, so the result is deterministic.
    """
    n_query = query_event.size
    best = np.full(n_query, -1, dtype=np.int64)
    if n_query == 0 or ref_event.size == 0:
        return best
    ref_comb = ref_event.astype(np.float64) * _SPAN + np.clip(ref_key, -_KEY_LIMIT, _KEY_LIMIT)
    order = np.argsort(ref_comb, kind="stable")
    ref_sorted = ref_comb[order]
    centre = query_event.astype(np.float64) * _SPAN + np.clip(query_key, -_KEY_LIMIT, _KEY_LIMIT)
    lo = np.searchsorted(ref_sorted, centre - window, side="left")
    hi = np.searchsorted(ref_sorted, centre + window, side="right")
    count = hi - lo
    n_pairs = int(count.sum())
    if n_pairs == 0:
        return best
    # Pairs are grouped by query (np.repeat keeps query order), so per-query minima are segment
    # reductions (reduceat) rather than a sort of all pairs.
    first_pair = np.cumsum(count) - count
    pair_q = np.repeat(np.arange(n_query, dtype=np.int64), count)
    pair_r = order[np.arange(n_pairs, dtype=np.int64) + np.repeat(lo - first_pair, count)]
    d = distance(pair_q, pair_r)
    d = np.where(d < max_distance, d, np.inf)
    has_pairs = count > 0
    starts = first_pair[has_pairs]
    d_min = np.minimum.reduceat(d, starts)
    is_min = d == np.repeat(d_min, count[has_pairs])
    r_best = np.minimum.reduceat(np.where(is_min, pair_r, np.iinfo(np.int64).max), starts)
    found = np.isfinite(d_min)
    best[np.flatnonzero(has_pairs)[found]] = r_best[found]
    return best


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a − b wrapped into [−π, π] for azimuths a, b in [−π, π] (a branch instead of a slow float modulo)."""
    d = a - b
    return np.where(d > np.pi, d - 2 * np.pi, np.where(d < -np.pi, d + 2 * np.pi, d))

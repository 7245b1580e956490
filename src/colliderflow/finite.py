"""No NaN passes a stage silently: count non-finite values per column, then fail or drop explicitly.

A NaN predicted momentum moves a jet response without a word, a NaN genmet drops an event from every
MET bin, a NaN score drops a jet from the ROC while the jet count still includes it, a NaN reweighting
variable gives its event weight 0. Every stage that reads model outputs or physics quantities
(evaluation, the weights stages) therefore counts the non-finite values (NaN, ±inf, nulls) of what it
reads, per column, and either fails naming the columns and counts, or — only when asked (`--allow-nonfinite`, config
`allow_nonfinite: true`) — drops the rows that hold them and records how many in its summary.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class NonFinite:
    """Non-finite counts per column of one input, and which rows hold at least one."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows
        self.counts: dict[str, int] = {}
        self.bad_rows = np.zeros(n_rows, dtype=bool)

    def add(self, column: str, bad_values: np.ndarray, row_of_value: np.ndarray | None = None) -> None:
        """bad_values: a boolean per value of `column`; row_of_value: each value's row (default: one per row)."""
        bad_values = np.asarray(bad_values, dtype=bool)
        n = int(bad_values.sum())
        if n == 0:
            return
        self.counts[column] = self.counts.get(column, 0) + n
        rows = np.flatnonzero(bad_values) if row_of_value is None else np.asarray(row_of_value)[bad_values]
        self.bad_rows[rows] = True

    def resolve(self, *, where: str, rows: str, allow: bool, switch: str | None) -> dict[str, Any]:
        """Raise a ValueError naming the columns and counts, or (allow) return what dropping removes.

        switch: the option that would drop the rows instead, named in the error (None: the stage has none).

        The returned record ({rows: n dropped, "values": {column: count}}) goes into the summary; it is
        written even when nothing was dropped, so a reader knows the check ran.
        """
        n_bad = int(self.bad_rows.sum())
        record = {rows: n_bad, "values": dict(self.counts)}
        if not self.counts:
            return record
        listing = ", ".join(f"{column} {count}" for column, count in self.counts.items())
        if not allow:
            hint = f"; {switch} drops those {rows} instead" if switch else ""
            raise ValueError(f"{where}: non-finite values (NaN/inf/null) in {n_bad} of {self.n_rows} {rows}: "
                             f"{listing}{hint}")
        log.warning("%s: dropping %d of %d %s with non-finite values (%s)", where, n_bad, self.n_rows, rows, listing)
        return record


def nonfinite_columns(columns: Mapping[str, np.ndarray]) -> NonFinite:
    """Counts for one-value-per-row float columns (all of one length)."""
    n_rows = len(next(iter(columns.values()))) if columns else 0
    found = NonFinite(n_rows)
    for name, values in columns.items():
        found.add(name, ~np.isfinite(np.asarray(values, dtype=np.float64)))
    return found

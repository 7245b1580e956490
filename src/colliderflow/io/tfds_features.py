"""The PF TFDS dataset's record contract and the array_record fork guard, shared by its writer and reader.

What a record holds (row blocks, scalars and their dtypes, text) is written by `io.tfds_writer` and read
back by `io.tfds_reader`; both take it from here, so the reader does not import the writer (and the writer,
which reads its splits back for `io.tfds_keys`, does not close an import loop through the reader).
The fork guard lives here for the same reason: writer and reader must share one record of which process
first touched array_record.
"""

from __future__ import annotations

import os
from typing import Final

import numpy as np

# Per-element / per-jet blocks written as (None, width) float32 tensors (widths: io.parquet.ROW_WIDTHS).
ROW_FEATURES: Final = ("X", "ytarget", "ycand", "genjets", "targetjets")
# Scalar features and their dtypes.
SCALAR_FEATURES: Final[dict[str, type[np.generic]]] = {
    "event_id": np.int64,
    "n_elements": np.int32,
    "genmet": np.float32,
    "gen_unassigned_energy": np.float32,
}
TEXT_FEATURES: Final = ("sample",)

# The process that has written or read array_record files, if any. The library keeps process-wide
# native state that does not survive fork: in a forked child of such a process, opening a reader
# crashed (segfault) every time we tried, even with a fresh reader. Spawned children start clean.
_array_record_pid: list[int] = []


def note_array_record_use() -> None:
    """Record that this process now holds array_record state (before writing or opening a reader)."""
    if not _array_record_pid:
        _array_record_pid.append(os.getpid())


def check_array_record_usable() -> None:
    """Refuse, with the remedy, to touch array_record in a forked child of a process that used it."""
    if _array_record_pid and _array_record_pid[0] != os.getpid():
        raise RuntimeError(
            f"array_record was used in process {_array_record_pid[0]} before it forked this process "
            f"({os.getpid()}); readers crash in such children. Start workers with the 'spawn' or "
            "'forkserver' method (torch DataLoader: multiprocessing_context='spawn'), or do not read or "
            "build datasets in the parent before forking."
        )

"""Opening a ROOT file with one clear error for each way it can be unusable, shared by every reader."""

from __future__ import annotations

from pathlib import Path

import uproot


def open_root_file(path: Path) -> uproot.ReadOnlyDirectory:
    """The open file; a ValueError naming it when it is missing, empty or not readable as ROOT."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a ROOT file")
    try:
        return uproot.open(path)
    except Exception as exc:  # uproot raises many types for a non-ROOT or damaged header
        raise ValueError(f"{path}: not a readable ROOT file ({type(exc).__name__}: {exc})") from exc

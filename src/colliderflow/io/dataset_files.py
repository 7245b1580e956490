"""Which files of a dataset directory are data: the one place that lists them for every reader.

A directory of shards may also hold files being written (`atomic_path` writes `.<name>.tmp…` beside the
target) or left by a crash, and editor or OS droppings: names starting with "." are never data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def is_hidden(path: Path) -> bool:
    """True for names starting with "." (temporaries of atomic writes, editor and OS files)."""
    return Path(path).name.startswith(".")


def jet_files(paths: Sequence[Path]) -> list[Path]:
    """Parquet files given directly, or every visible *.parquet inside a given directory (sorted).

    Hidden files (a half-written `.<name>.parquet.tmp…` of a running or crashed writer) are skipped. A
    directory with no visible Parquet file is an error naming it.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.glob("*.parquet") if not is_hidden(p) and p.is_file())
            if not found:
                raise ValueError(f"{path}: no .parquet file in this directory")
            files += found
        else:
            files.append(path)
    return files

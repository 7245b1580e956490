"""Write to a temporary sibling, then rename: a reader never sees a half-written file.

A crash, a full disk or a bad input in the middle of a write leaves the previous file (or nothing) in
place, never a truncated one that Snakemake would take for a finished output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _default_file_mode() -> int:
    """0666 less the process umask: the mode a plain open() would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(final: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds.

    The temporary keeps `final`'s suffix (or `suffix`) so that writers that infer the format from the
    name (uproot, pyarrow, matplotlib) behave as for the real name.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=suffix if suffix is not None else "".join(final.suffixes), dir=final.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _default_file_mode())  # mkstemp's 0600 would hide outputs from collaborators
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Like `atomic_path`, for an output that is a directory (a TFDS dataset, a model folder)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, _default_file_mode() | 0o111)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a small text file (JSON, YAML) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)

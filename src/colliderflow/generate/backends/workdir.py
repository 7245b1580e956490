"""A scratch directory beside an output, whose result is renamed into place only on success.

External tools write several files (HepMC input, intermediate simulation, logs) and some refuse to
overwrite (DelphesHepMC2 opens its output with ROOT's CREATE mode). Working in a fresh directory on the
output's filesystem gives each tool a clean place and makes the final rename atomic; whatever happens,
the directory is removed, so a failed job leaves neither a partial output nor debris.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from colliderflow.io.atomic import remove_stale_temporaries, temporary_prefix


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def scratch_dir(output: Path) -> Iterator[Path]:
    """Yield an empty directory beside `output`; it is deleted when the block ends, however it ends.

    The path is absolute: the tools run with it as their working directory and are given paths inside it.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output)  # what a killed job left for the same output
    work = Path(tempfile.mkdtemp(prefix=temporary_prefix(output), dir=output.parent.resolve()))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def publish(result: Path, output: Path, *, what: str) -> None:
    """Rename the tool's `result` onto `output`; ValueError if the tool exited 0 but wrote nothing."""
    if not result.is_file() or result.stat().st_size == 0:
        raise ValueError(f"{what} reported success but wrote no output file {result.name!r}")
    os.chmod(result, _default_file_mode())
    os.replace(result, output)

"""Write to a temporary sibling, then rename: a reader never sees a half-written file, a job's outputs
appear together or not at all, and a write error names the file it was writing.

A crash, a full disk or a bad input in the middle of a write leaves the previous file (or nothing) in
place, never a truncated one that Snakemake would take for a finished output.

* `atomic_path` / `atomic_dir`: one file or directory, written beside its final name and renamed.
* `output_set`: the outputs of one job (weights + histograms + plot + provenance; a summary + its
  figures). Inside it, every `atomic_path`/`atomic_dir` for one of them writes into one temporary folder
  beside the outputs; only when the whole block succeeds are they renamed into place, one after another
  (renames do not allocate space, so a full disk cannot stop the set half-way).
* Temporaries are named `.colliderflow-tmp-<output name>~<random>`: hidden from every reader (they
  skip dot-files), recognisable, and removed when the next write of the same output starts, so that a
  killed job leaves nothing behind for long. Snakemake never runs two jobs for the same output at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

TMP_PREFIX: Final = ".colliderflow-tmp-"
_SEP: Final = "~"


def _default_file_mode() -> int:
    """0666 less the process umask: the mode a plain open() would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temporary_prefix(final: str | Path) -> str:
    """The name prefix of every temporary made for `final` (beside it)."""
    return f"{TMP_PREFIX}{Path(final).name}{_SEP}"


def remove_stale_temporaries(final: str | Path) -> list[Path]:
    """Remove what an earlier, interrupted write of `final` left beside it; returns what was removed."""
    final = Path(final)
    stale = sorted(final.parent.glob(glob.escape(temporary_prefix(final)) + "*"))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def naming_error(exc: OSError, final: str | Path) -> OSError:
    """`exc` as an OSError (same errno, hence same subclass) whose message names the file being written.

    A bare `[Errno 28] No space left on device` does not say which of a job's outputs failed.
    """
    if getattr(exc, "colliderflow_output", None) is not None:
        return exc
    detail = exc.strerror if exc.errno is not None and exc.strerror else str(exc)
    if exc.errno is not None and exc.filename is not None and exc.strerror:
        detail = f"{exc.strerror}: {exc.filename}"
    new = OSError(exc.errno, f"writing {final}: {detail}") if exc.errno is not None else OSError(
        f"writing {final}: {detail}")
    new.colliderflow_output = str(final)  # type: ignore[attr-defined]
    return new


# --------------------------------------------------------------------------------------------------
# Output sets
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class _OutputSet:
    staging: Path
    files: frozenset[Path]
    dirs: tuple[Path, ...]
    staged: dict[Path, Path] = dataclasses.field(default_factory=dict)
    slots: int = 0

    def covers(self, final: Path) -> bool:
        return final in self.files or any(d == final or d in final.parents for d in self.dirs)

    def slot(self, final: Path, suffix: str | None) -> Path:
        """A fresh staging path for `final`, keeping its suffix (writers infer the format from it)."""
        self.slots += 1
        return self.staging / f"{self.slots}{_SEP}{final.name}{suffix or ''}"


_ACTIVE: contextvars.ContextVar[_OutputSet | None] = contextvars.ContextVar("colliderflow_output_set", default=None)


def _absolute(path: str | Path) -> Path:
    return Path(os.path.abspath(path))


@contextlib.contextmanager
def output_set(*files: str | Path | None, dirs: tuple[str | Path, ...] = ()) -> Iterator[None]:
    """The block's writes of `files` (and of any file under `dirs`) appear together, or none of them does.

    None entries are skipped (an optional output that was not asked for). A set inside a set adds
    nothing: the outer one already holds the block's outputs.
    """
    if _ACTIVE.get() is not None:
        yield
        return
    finals = [_absolute(f) for f in files if f is not None]
    folders = tuple(_absolute(d) for d in dirs)
    if not finals and not folders:
        yield
        return
    first = (finals or list(folders))[0]
    common = Path(os.path.commonpath([p.parent for p in [*finals, *folders]]))
    common.mkdir(parents=True, exist_ok=True)
    anchor = common / first.name
    remove_stale_temporaries(anchor)
    staging = Path(tempfile.mkdtemp(prefix=temporary_prefix(anchor), dir=common))
    current = _OutputSet(staging=staging, files=frozenset(finals), dirs=folders)
    token = _ACTIVE.set(current)
    try:
        yield
        _ACTIVE.reset(token)
        token = None
        not_written = sorted(str(f) for f in finals if f not in current.staged)
        if not_written:
            raise RuntimeError(f"output set: {', '.join(not_written)} declared but not written")
        for final, tmp in current.staged.items():
            final.parent.mkdir(parents=True, exist_ok=True)
            if tmp.is_dir() and final.exists():
                shutil.rmtree(final)
            try:
                os.replace(tmp, final)
            except OSError as exc:
                raise naming_error(exc, final) from exc
    finally:
        if token is not None:
            _ACTIVE.reset(token)
        shutil.rmtree(staging, ignore_errors=True)


def _in_set(final: Path) -> _OutputSet | None:
    current = _ACTIVE.get()
    return current if current is not None and current.covers(_absolute(final)) else None


# --------------------------------------------------------------------------------------------------
# One file, one directory
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _discarded_on_failure(final: Path, discard: Callable[[], None]) -> Iterator[None]:
    """Run `discard` (remove the temporary) when the block fails; an OSError is raised again naming `final`."""
    try:
        yield
    except OSError as exc:
        discard()
        raise naming_error(exc, final) from exc
    except BaseException:
        discard()
        raise


@contextlib.contextmanager
def atomic_path(final: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it onto `final` only if the block succeeds.

    The temporary keeps `final`'s suffix (or `suffix`) so that writers that infer the format from the
    name (uproot, pyarrow, matplotlib) behave as for the real name. Inside an `output_set` that holds
    `final`, the rename waits for the whole set. An OSError names `final`.
    """
    final = Path(final)
    group = _in_set(final)
    if group is not None:
        tmp = group.slot(final, suffix)
        with _discarded_on_failure(final, lambda: tmp.unlink(missing_ok=True)):
            yield tmp
        if tmp.exists():
            os.chmod(tmp, _default_file_mode())
            group.staged[_absolute(final)] = tmp
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    fd, tmp_name = tempfile.mkstemp(
        prefix=temporary_prefix(final), suffix=suffix if suffix is not None else "".join(final.suffixes),
        dir=final.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    with _discarded_on_failure(final, lambda: tmp.unlink(missing_ok=True)):
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _default_file_mode())  # mkstemp's 0600 would hide outputs from collaborators
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Like `atomic_path`, for an output that is a directory (a TFDS dataset, a model folder)."""
    final = Path(final)
    group = _in_set(final)
    if group is not None:
        tmp = group.slot(final, None)
        tmp.mkdir()
        with _discarded_on_failure(final, lambda: shutil.rmtree(tmp, ignore_errors=True)):
            yield tmp
        os.chmod(tmp, _default_file_mode() | 0o111)
        group.staged[_absolute(final)] = tmp
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(final), dir=final.parent))
    with _discarded_on_failure(final, lambda: shutil.rmtree(tmp, ignore_errors=True)):
        yield tmp
        os.chmod(tmp, _default_file_mode() | 0o111)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)


@contextlib.contextmanager
def temporary_dir(beside: str | Path) -> Iterator[Path]:
    """A scratch directory beside `beside` (named for it, removed afterwards; a stale one goes first)."""
    beside = Path(beside)
    parent = beside.parent if beside.parent.exists() else None
    if parent is not None:
        remove_stale_temporaries(beside)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(beside), dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a small text file (JSON, YAML) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


__all__ = [
    "TMP_PREFIX",
    "atomic_dir",
    "atomic_path",
    "naming_error",
    "output_set",
    "remove_stale_temporaries",
    "temporary_dir",
    "temporary_prefix",
    "write_text_atomic",
]

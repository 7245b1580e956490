"""Checks that the external programs of a backend are present, made before any event is generated.

Delphes and Key4HEP are large C++ stacks that live outside the project's Python environment (a conda
env, a container or /cvmfs). A job that generated thousands of events and only then found that
`DelphesHepMC2` is missing would waste the work and hide the cause in a traceback; these checks fail at
once with one line naming what is missing and the environment file that provides it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


class BackendEnvironmentError(ValueError):
    """A backend's program, setup script or input file is not available here.

    A ValueError so that the command line reports it as bad input (one line, exit code 2).
    """


class BackendCommandError(ChildProcessError):
    """An external backend command ran and failed; the message names the command and its exit code."""


def require_executable(name: str, *, backend: str, environment: str) -> str:
    """The full path of `name` on PATH; BackendEnvironmentError naming it and `environment` otherwise."""
    path = shutil.which(name)
    if path is None:
        raise BackendEnvironmentError(
            f"the {backend} backend needs the executable {name!r}, which is not on PATH; "
            f"run inside the environment of {environment}"
        )
    return path


def require_file(path: str | Path, *, what: str, backend: str, environment: str) -> Path:
    """`path` as a Path if it is an existing file; BackendEnvironmentError naming it otherwise."""
    candidate = Path(path)
    if not candidate.is_file():
        raise BackendEnvironmentError(
            f"the {backend} backend needs {what} {str(candidate)!r}, which does not exist; see {environment}"
        )
    return candidate


def _tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, for an error message that shows why a command failed."""
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def run_logged(
    commands: Sequence[Sequence[str]], *, cwd: Path, log: Path, env: Mapping[str, str] | None = None
) -> None:
    """Run `commands` one after the other in `cwd`, their output appended to `log`.

    The log is also copied to this process's stderr afterwards, so that the job log Snakemake keeps for the
    rule holds the tools' own output. `env` (default: this process's) is the commands' environment. The
    first command that fails stops the run with a BackendCommandError naming the command, its exit code and
    the end of its output.
    """
    for command in commands:
        argv = [str(a) for a in command]
        with log.open("a") as fh:
            fh.write(f"$ {' '.join(argv)}\n")
            fh.flush()
            try:
                result = subprocess.run(
                    argv, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, check=False,
                    env=None if env is None else dict(env),
                )
            except OSError as exc:
                raise BackendCommandError(f"could not start {argv[0]!r}: {exc}") from exc
        if result.returncode != 0:
            sys.stderr.write(log.read_text(errors="replace"))
            raise BackendCommandError(
                f"command failed with exit code {result.returncode}: {' '.join(argv)}\n"
                f"last lines of its output:\n{_tail(log)}"
            )
    sys.stderr.write(log.read_text(errors="replace"))

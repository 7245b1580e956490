"""Where Delphes is: its programs (DelphesHepMC2, hepmc2pileup) and the cards that ship with it.

Looked for, in this order:
1. the build in the project's environment, `<python prefix>/delphes/{bin,lib,cards}`, which
   `make delphes` (scripts/build_delphes.sh) makes against the ROOT wheel. Its programs carry an rpath to
   their libraries, so nothing has to be set by hand; the runner still puts the libraries on the tool's
   LD_LIBRARY_PATH (`tool_environment`), which keeps a moved or hand-made install working;
2. PATH (a conda environment from envs/delphes.yaml, a container, a site install);
3. `$CONDA_PREFIX/bin` when a conda environment is active but its bin folder is not on PATH.

This module imports nothing heavy: the Snakefile uses it to find the cards while it builds the DAG.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Final

from colliderflow.generate.backends.environment import BackendEnvironmentError

DELPHES_EXECUTABLE: Final = "DelphesHepMC2"
PILEUP_EXECUTABLE: Final = "hepmc2pileup"
BUILD_COMMAND: Final = "make delphes (scripts/build_delphes.sh)"
DELPHES_ENVIRONMENT: Final = f"{BUILD_COMMAND}, or envs/delphes.yaml (conda-forge delphes), or a container with Delphes"


def venv_prefix() -> Path:
    """Where `make delphes` installs Delphes: `<prefix of the running Python>/delphes`."""
    return Path(sys.prefix) / "delphes"


def find_tool(name: str) -> str | None:
    """Full path of the Delphes program `name` (see the module doc for the order), or None."""
    built = venv_prefix() / "bin" / name
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    on_path = shutil.which(name)
    if on_path is not None:
        return on_path
    conda = os.environ.get("CONDA_PREFIX")
    if conda:
        candidate = Path(conda) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def require_tool(name: str) -> str:
    """Full path of `name`; BackendEnvironmentError at once naming it and how to get it otherwise."""
    path = find_tool(name)
    if path is None:
        raise BackendEnvironmentError(
            f"the delphes backend needs the executable {name!r}, which is not in {venv_prefix() / 'bin'}, "
            f"on PATH or in $CONDA_PREFIX/bin; build it with {BUILD_COMMAND}, or run inside the environment of "
            f"envs/delphes.yaml (conda-forge delphes) or a container with Delphes"
        )
    return path


def tool_environment(executable: str) -> dict[str, str]:
    """The environment to run a Delphes program in: this one, with its install's libraries first on
    LD_LIBRARY_PATH (libDelphes beside the program, and the ROOT wheel's libraries when it is the venv build)."""
    env = dict(os.environ)
    prefix = Path(executable).resolve().parent.parent
    folders = [prefix / "lib"]
    if prefix == venv_prefix().resolve():
        import sysconfig  # only here: the wheel's folders are where pip put it

        site = Path(sysconfig.get_paths()["purelib"])
        folders += [site / "ROOT" / "lib", site / "root.libs"]
    existing = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(f) for f in folders if f.is_dir()] + existing)
    return env


def card_search_dirs(executable: str | None) -> list[Path]:
    """Where an installed Delphes keeps its cards: under $DELPHES_DIR, then under the executable's prefix.

    `make delphes` installs the source's whole cards/ tree to <prefix>/cards; some packagings use
    <prefix>/share/delphes/cards. The prefixes themselves come last, so that a name such as
    `cards/delphes_card_CLICdet_Stage1.tcl` (relative to a Delphes source tree, as in Delphes' own examples)
    resolves too.
    """
    prefixes: list[Path] = []
    if os.environ.get("DELPHES_DIR"):
        prefixes.append(Path(os.environ["DELPHES_DIR"]))
    if executable:
        prefixes.append(Path(executable).resolve().parent.parent)
    return [d for p in prefixes for d in (p / "cards", p / "share" / "delphes" / "cards")] + prefixes


def resolve_card(card: str, *, executable: str | None) -> Path:
    """The card file to give Delphes; ValueError listing every place that was tried.

    A card given as an existing path is used as is (made absolute); a bare name is looked up in the
    installation of `executable` (None: no installation was found, which the message says with the build
    command).
    """
    tried = [Path(card)]
    if tried[0].is_file():
        return tried[0].resolve()
    if not Path(card).is_absolute():
        for folder in card_search_dirs(executable):
            candidate = folder / card
            tried.append(candidate)
            if candidate.is_file():
                return candidate.resolve()
    hint = "" if executable else f" (no Delphes installation was found: build it with {BUILD_COMMAND})"
    raise ValueError(f"Delphes card {card!r} not found; tried: {', '.join(str(p) for p in tried)}{hint}")

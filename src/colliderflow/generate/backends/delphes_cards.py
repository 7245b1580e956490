"""Delphes cards: what a card runs, and the per-shard wrapper card (the `delphes:` options: backends.options).

A card is Tcl that Delphes evaluates (ExRootConfReader): `module <Class> <Name> { set Param value ... }`
defines a module instance in the Tcl namespace <Name>; `set ExecutionPath { ... }` lists the instances that
run; `source <file>` reads another file, always relative to the folder of the TOP card. Parameters are read
from the namespaces only after the whole card has been evaluated, so a later `namespace eval <Name> { set X v }`
overrides what the card set. That is how a shard's settings reach Delphes without editing the card:

    <scratch>/card/                    links to every entry of the card's own folder (so `source CLIC/...` works)
    <scratch>/card/colliderflow_shard.tcl:
        source <the card>
        set RandomSeed <from the shard's seed>              (Delphes' smearing and pile-up draws: reproducible)
        namespace eval <PileUpMerger instance> { set PileUpFile <the DAG's file>; set MeanPileUp <mu> }

Reading a card here is a plain text scan (comments dropped, `source` followed), enough to find the modules
and the execution path of the cards that ship with Delphes; it imports nothing heavy, for the Snakefile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from colliderflow.generate.backends.options import PileupOptions

WRAPPER_NAME: Final = "colliderflow_shard.tcl"
PILEUP_MERGER_CLASS: Final = "PileUpMerger"
# ROOT's TRandom3 takes a 32-bit seed, and 0 means "seed from the clock": Delphes gets seed + 1.
_DELPHES_SEED_MAX: Final = 2**31 - 2

_SOURCE = re.compile(r"^\s*source\s+(\S+)", re.MULTILINE)
_MODULE = re.compile(r"^\s*module\s+(\w+)\s+(\w+)", re.MULTILINE)
_EXECUTION_PATH = re.compile(r"^\s*set\s+ExecutionPath\s*\{([^}]*)\}", re.MULTILINE)
_COMMENT = re.compile(r"^\s*#.*$", re.MULTILINE)


@dataclass(frozen=True)
class CardContent:
    """What a card (with every file it sources) defines: module instances and the execution path."""

    files: tuple[Path, ...]
    modules: dict[str, str]  # instance name -> module class
    execution_path: tuple[str, ...]

    def instances_of(self, module_class: str) -> list[str]:
        """The instances of `module_class` that run (are in the execution path), in path order."""
        return [name for name in self.execution_path if self.modules.get(name) == module_class]


def read_card(card: Path) -> CardContent:
    """Modules and execution path of `card` and the files it sources; ValueError naming a missing file.

    Sourced files are resolved as Delphes does, relative to the top card's folder.
    """
    card = Path(card)
    top = card.parent
    files: list[Path] = []
    modules: dict[str, str] = {}
    path: list[str] = []

    def visit(path_: Path, by: Path | None) -> None:
        if not path_.is_file():
            where = f" (sourced by {by})" if by else ""
            raise ValueError(f"Delphes card {str(path_)!r} not found{where}")
        if path_ in files:
            return
        files.append(path_)
        text = _COMMENT.sub("", path_.read_text(errors="replace"))
        for match in _EXECUTION_PATH.finditer(text):
            path[:] = match.group(1).split()
        for cls, name in _MODULE.findall(text):
            modules[name] = cls
        for sourced in _SOURCE.findall(text):
            visit(top / sourced, path_)

    visit(card, None)
    return CardContent(files=tuple(files), modules=modules, execution_path=tuple(path))


def pileup_mergers(card: Path) -> list[str]:
    """The PileUpMerger instances `card` runs (empty: the card merges no pile-up)."""
    return read_card(card).instances_of(PILEUP_MERGER_CLASS)


def check_pileup_config(card: Path, pileup: PileupOptions | None, *, what: str) -> list[str]:
    """The card's PileUpMerger instances; ValueError when the config asks for pile-up the card does not merge."""
    mergers = pileup_mergers(card)
    if pileup is not None and not mergers:
        raise ValueError(
            f"{what}: delphes.pileup is set, but the card {str(card)!r} runs no {PILEUP_MERGER_CLASS} module; "
            "remove pileup or use a card that merges pile-up"
        )
    return mergers


def delphes_seed(seed: int) -> int:
    """Delphes' RandomSeed for a shard seed (never 0, which ROOT replaces by a clock-based seed)."""
    return int(seed) % _DELPHES_SEED_MAX + 1


def _tcl_word(value: str) -> str:
    if any(c in value for c in "{}\\\n"):
        raise ValueError(f"cannot pass {value!r} to a Delphes card (braces, backslashes or newlines)")
    return "{" + value + "}"


def wrapper_text(card: Path, *, seed: int, mergers: list[str], pileup_file: Path | None,
                 mean_pileup: float | None) -> str:
    """The wrapper card: the card unchanged, then this shard's seed and pile-up settings."""
    lines = [
        "# Made by colliderflow for one shard: the card below, unchanged, then this shard's settings.",
        f"source {_tcl_word(card.name)}",
        f"set RandomSeed {delphes_seed(seed)}",
    ]
    for name in mergers if pileup_file is not None else []:
        lines.append(f"namespace eval {name} {{")
        lines.append(f"  set PileUpFile {_tcl_word(str(pileup_file))}")
        if mean_pileup is not None:
            lines.append(f"  set MeanPileUp {mean_pileup!r}")
        lines.append("}")
    return "\n".join(lines) + "\n"


def write_wrapper_card(card: Path, folder: Path, *, seed: int, pileup_file: Path | None = None,
                       mean_pileup: float | None = None) -> tuple[Path, str]:
    """Write the wrapper card into `folder` (created; links to the entries of the card's own folder beside it).

    Returns its path and text. A card that merges pile-up needs `pileup_file`: without it Delphes would look
    for the card's own PileUpFile (e.g. MinBias.pileup) in the working folder, so that is refused here.
    """
    card = Path(card).resolve()
    mergers = pileup_mergers(card)
    if mergers and pileup_file is None:
        raise ValueError(
            f"the Delphes card {str(card)!r} merges pile-up ({', '.join(mergers)}) but no pile-up file was given; "
            "the workflow makes one (rule delphes_pileup) when it finds Delphes while building the DAG: "
            "build Delphes (make delphes) and run snakemake again, or pass --pileup-file"
        )
    if pileup_file is not None and not mergers:
        raise ValueError(f"a pile-up file was given, but the Delphes card {str(card)!r} runs no PileUpMerger module")
    folder.mkdir(parents=True, exist_ok=False)
    for entry in card.parent.iterdir():
        if entry.name == WRAPPER_NAME:
            raise ValueError(f"the card folder {str(card.parent)!r} already holds a file named {WRAPPER_NAME}")
        (folder / entry.name).symlink_to(entry)
    text = wrapper_text(card, seed=seed, mergers=mergers,
                        pileup_file=None if pileup_file is None else Path(pileup_file).resolve(),
                        mean_pileup=mean_pileup)
    wrapper = folder / WRAPPER_NAME
    wrapper.write_text(text)
    return wrapper, text

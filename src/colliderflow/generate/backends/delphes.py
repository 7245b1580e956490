"""The delphes backend: Pythia 8 → HepMC2 → `DelphesHepMC2 <card> <out.root> <in.hepmc>`.

Delphes is a fast parametric detector simulation; with a CLIC card it gives a CLIC-like response at a
fraction of the cost of Geant4. Its ROOT output (tree `Delphes`) is read by the project's Delphes reader
(`colliderflow.io.delphes_reader`). Delphes is not a Python package: it comes from the environment in
envs/delphes.yaml (conda-forge `delphes`) or a container, and is checked for before any event is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from colliderflow.generate.backends.environment import require_executable, run_logged
from colliderflow.generate.backends.hepmc import write_hepmc2
from colliderflow.generate.backends.workdir import publish, scratch_dir

DELPHES_EXECUTABLE: Final = "DelphesHepMC2"
# The CLIC detector card (first energy stage, 380 GeV) that ships with Delphes in its cards/ folder.
DEFAULT_DELPHES_CARD: Final = "delphes_card_CLICdet_Stage1.tcl"
DELPHES_ENVIRONMENT: Final = "envs/delphes.yaml (conda-forge delphes, or a container with Delphes)"
_OPTION_KEYS: Final = ("card",)


@dataclass(frozen=True)
class DelphesOptions:
    """The per-sample `delphes:` options of the config.

    `card` is a path to a Delphes card, or the bare name of a card shipped with Delphes (looked up in
    the installation's cards folders, see `resolve_card`).
    """

    card: str = DEFAULT_DELPHES_CARD


def parse_delphes_options(options: dict[str, Any] | None) -> DelphesOptions:
    """DelphesOptions from the config mapping (None = defaults); ValueError naming an unknown key."""
    if options is None:
        return DelphesOptions()
    if not isinstance(options, dict):
        raise ValueError(f"delphes options must be a mapping, got {type(options).__name__}")  # noqa: TRY004
    unknown = sorted(set(options) - set(_OPTION_KEYS))
    if unknown:
        raise ValueError(f"delphes options have unknown key(s) {', '.join(unknown)}; known: {', '.join(_OPTION_KEYS)}")
    card = options.get("card", DEFAULT_DELPHES_CARD)
    if not isinstance(card, str) or not card:
        raise ValueError(f"delphes options: card must be a path or a card name, got {card!r}")
    return DelphesOptions(card=card)


def card_search_dirs(executable: str | None) -> list[Path]:
    """Where an installed Delphes keeps its cards: under $DELPHES_DIR, then under the executable's prefix.

    A Delphes build installs the cards to <prefix>/cards; some packagings use <prefix>/share/delphes/cards.
    The prefixes themselves come last, so that a name such as `cards/delphes_card_CLICdet_Stage1.tcl`
    (relative to a Delphes source tree, as in Delphes' own examples) resolves too.
    """
    prefixes: list[Path] = []
    if os.environ.get("DELPHES_DIR"):
        prefixes.append(Path(os.environ["DELPHES_DIR"]))
    if executable:
        prefixes.append(Path(executable).resolve().parent.parent)
    return [d for p in prefixes for d in (p / "cards", p / "share" / "delphes" / "cards")] + prefixes


def resolve_card(card: str, *, executable: str | None) -> Path:
    """The card file to give Delphes; ValueError listing every place that was tried.

    A card given as an existing path is used as is (made absolute, since Delphes resolves the cards it
    `source`s relative to the top card's folder); a bare name is looked up in the installation.
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
    raise ValueError(f"Delphes card {card!r} not found; tried: {', '.join(str(p) for p in tried)}")


def delphes_commands(*, card: Path, output: Path, hepmc: Path) -> list[list[str]]:
    """The command line(s) that simulate `hepmc` with `card` into the ROOT file `output`."""
    return [[DELPHES_EXECUTABLE, str(card), str(output), str(hepmc)]]


def check_delphes_environment() -> str:
    """Path of DelphesHepMC2; BackendEnvironmentError at once, naming it and the environment, if absent."""
    return require_executable(DELPHES_EXECUTABLE, backend="delphes", environment=DELPHES_ENVIRONMENT)


def run_delphes(
    *,
    process: str,
    sqrt_s: float,
    n_events: int,
    seed: int,
    output: Path,
    options: dict[str, Any] | None = None,
    process_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate, write HepMC2, run Delphes; `output` appears only if every step succeeded.

    Returns what the provenance record needs: generator settings, the card and the commands run.
    """
    parsed = parse_delphes_options(options)
    executable = check_delphes_environment()
    card = resolve_card(parsed.card, executable=executable)
    output = Path(output)
    with scratch_dir(output) as work:
        hepmc = work / "events.hepmc"
        generator = write_hepmc2(
            hepmc, process=process, sqrt_s=sqrt_s, n_events=n_events, seed=seed, process_options=process_options
        )
        result = work / "delphes.root"
        commands = delphes_commands(card=card, output=result, hepmc=hepmc)
        run_logged(commands, cwd=work, log=work / "delphes.log")
        publish(result, output, what=DELPHES_EXECUTABLE)
    return {
        "generator": generator,
        "delphes": {"executable": executable, "card": str(card)},
        "commands": [[str(a) for a in c] for c in commands],
    }

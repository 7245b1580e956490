"""The delphes backend: Pythia 8 → HepMC2 → `DelphesHepMC2 <wrapper card> <out.root> <in.hepmc>`.

Delphes is a fast parametric detector simulation; with a CLIC card it gives a CLIC-like response at a
fraction of the cost of Geant4. Its ROOT output (tree `Delphes`) is read by the project's Delphes reader
(`colliderflow.io.delphes_reader`). Delphes is not a Python package: `make delphes` builds it into the
project's environment, or it comes from envs/delphes.yaml (conda-forge) or a container
(`delphes_install` says where it is looked for); it is checked for before any event is made.

Delphes is given a small wrapper card that sources the sample's card unchanged and then sets the shard's
random seed and, for a card that merges pile-up, the pile-up file the workflow made and ⟨μ⟩
(`delphes_cards`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colliderflow.generate.backends.delphes_cards import write_wrapper_card
from colliderflow.generate.backends.delphes_install import (
    DELPHES_ENVIRONMENT,
    DELPHES_EXECUTABLE,
    card_search_dirs,
    require_tool,
    resolve_card,
    tool_environment,
)
from colliderflow.generate.backends.environment import run_logged
from colliderflow.generate.backends.hepmc import write_hepmc2
from colliderflow.generate.backends.options import DEFAULT_DELPHES_CARD, DelphesOptions
from colliderflow.generate.backends.workdir import publish, scratch_dir
from colliderflow.params import stage_params

__all__ = [
    "DEFAULT_DELPHES_CARD",
    "DELPHES_ENVIRONMENT",
    "DELPHES_EXECUTABLE",
    "DelphesOptions",
    "card_search_dirs",
    "check_delphes_environment",
    "delphes_commands",
    "resolve_card",
    "run_delphes",
]


def delphes_commands(*, card: Path, output: Path, hepmc: Path, executable: str = DELPHES_EXECUTABLE) -> list[list[str]]:
    """The command line(s) that simulate `hepmc` with `card` into the ROOT file `output`."""
    return [[executable, str(card), str(output), str(hepmc)]]


def check_delphes_environment() -> str:
    """Path of DelphesHepMC2; BackendEnvironmentError at once, naming it and how to build it, if absent."""
    return require_tool(DELPHES_EXECUTABLE)


def run_delphes(
    *,
    process: str,
    sqrt_s: float,
    n_events: int,
    seed: int,
    output: Path,
    options: dict[str, Any] | None = None,
    process_options: dict[str, Any] | None = None,
    pileup_file: Path | None = None,
    where: str = "delphes",
) -> dict[str, Any]:
    """Generate, write HepMC2, run Delphes; `output` appears only if every step succeeded.

    `pileup_file` (made by `colliderflow pileup`) is required when the card merges pile-up and refused when
    it does not. Returns what the provenance record needs: generator settings, the card, the wrapper card's
    text and the commands run. `where` is the options' key path in the config (`samples.<name>.delphes`),
    the prefix of an error in them.
    """
    parsed = stage_params(DelphesOptions, options, where=where)
    executable = check_delphes_environment()
    card = resolve_card(parsed.card, executable=executable)
    mean = parsed.pileup.mean if parsed.pileup is not None else None
    if pileup_file is not None and not Path(pileup_file).is_file():
        raise ValueError(f"pile-up file {str(pileup_file)!r} does not exist")
    output = Path(output)
    with scratch_dir(output) as work:
        # Checked (and the card read) before any event is generated.
        wrapper, wrapper_text = write_wrapper_card(card, work / "card", seed=seed, pileup_file=pileup_file,
                                                   mean_pileup=mean)
        hepmc = work / "events.hepmc"
        generator = write_hepmc2(
            hepmc, process=process, sqrt_s=sqrt_s, n_events=n_events, seed=seed, process_options=process_options
        )
        result = work / "delphes.root"
        commands = delphes_commands(card=wrapper, output=result, hepmc=hepmc, executable=executable)
        run_logged(commands, cwd=work, log=work / "delphes.log", env=tool_environment(executable))
        publish(result, output, what=DELPHES_EXECUTABLE)
    return {
        "generator": generator,
        "delphes": {
            "executable": executable,
            "card": str(card),
            "wrapper_card": wrapper_text,
            **({"pileup_file": str(Path(pileup_file).resolve()), "mean_pileup": mean} if pileup_file else {}),
        },
        "commands": [[str(a) for a in c] for c in commands],
    }

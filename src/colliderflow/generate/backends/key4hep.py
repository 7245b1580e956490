"""The key4hep backend: the CLIC full simulation and reconstruction chain of the MLPF CLIC datasets.

Steps, as in HEP-KBFI/key4hep-sim (clic/run_sim.sh), with the generator step done by the project's own
Pythia so that all backends share process, beam and seed settings:

1. Pythia 8 → HepMC2 (`events.hepmc`); the generator's settings are also written as a Pythia card
   (`card.cmd`, kept in the job log), the form `k4run pythia.py --Pythia8.PythiaInterface.pythiacard`
   reads, so a shard can be regenerated inside Key4HEP;
2. `ddsim --compactFile <CLIC_o3_v14.xml> --steeringFile <clic_steer.py> --inputFiles events.hepmc
   --outputFile sim.edm4hep.root --numberOfEvents N --random.seed S` (Geant4 through DD4hep);
3. `k4run <clicRec_e4h_input.py> --gaudi-input sim.edm4hep.root --gaudi-output reco.edm4hep.root
   --num-events -1`, run from the folder of the reconstruction options (its Pandora and calibration
   files are found relative to it, which is why run_sim.sh changes into clicConfig).

The result is an EDM4hep ROOT file, read by `colliderflow.io.edm4hep_reader`. Each step runs in
`bash -c 'source <setup_script> && …'` (a Key4HEP release from /cvmfs), inside `apptainer exec <image>`
when a container is configured.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Final

from colliderflow.generate.backends.environment import require_executable, require_file, run_logged
from colliderflow.generate.backends.hepmc import write_hepmc2
from colliderflow.generate.backends.options import Key4hepOptions
from colliderflow.generate.backends.workdir import publish, scratch_dir
from colliderflow.params import stage_params

KEY4HEP_ENVIRONMENT: Final = "envs/key4hep.yaml (a Key4HEP release from /cvmfs/sw.hsf.org, or a container)"
CONTAINER_RUNTIME: Final = "apptainer"


def pythia_card(settings: list[str] | tuple[str, ...], *, n_events: int) -> str:
    """Generator settings as a Pythia card (.cmd), the form the Key4HEP Pythia interface reads.

    Built from the settings the generator was actually given, so the card cannot drift from the events.
    """
    lines = [
        "! colliderflow generator settings (the same as the events in events.hepmc)",
        f"Main:numberOfEvents = {int(n_events)}",
        *settings,
    ]
    return "\n".join(lines) + "\n"


def _setup_prefix(options: Key4hepOptions) -> str:
    if options.setup_script is None:
        return ""
    release = f" -r {shlex.quote(options.release)}" if options.release else ""
    return f"source {shlex.quote(options.setup_script)}{release} && "


# `$NAME` or `${NAME}`: the only thing of `compact_file` the job's shell may interpret.
_VARIABLE: Final = re.compile(r"\$(?=[A-Za-z_]|\{[A-Za-z_][A-Za-z0-9_]*\})")


def _expandable(word: str) -> str:
    """`word` in double quotes: `$NAME`/`${NAME}` expand in the job's shell, nothing else is interpreted.

    Every other `$` is escaped, so `$(…)`, `$((…))` and `${NAME:-…}` stay literal text: a config value
    never runs a command.
    """
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
    parts = _VARIABLE.split(escaped)  # split at the `$` of each variable; any `$` left inside a part is literal
    return '"' + "$".join(part.replace("$", "\\$") for part in parts) + '"'


def _wrap(options: Key4hepOptions, script: str, *, binds: list[str]) -> list[str]:
    command = ["bash", "-c", f"set -e; {_setup_prefix(options)}{script}"]
    if options.container is None:
        return command
    bind_args = [arg for path in binds for arg in ("--bind", path)]
    return [CONTAINER_RUNTIME, "exec", *bind_args, options.container, *command]


def key4hep_commands(
    options: Key4hepOptions, *, hepmc: Path, sim: Path, reco: Path, n_events: int, seed: int
) -> list[list[str]]:
    """The simulation and reconstruction command lines (see the module doc), each a full argv."""
    q = shlex.quote
    ddsim = (
        f"ddsim --compactFile {_expandable(options.compact_file)} --steeringFile {q(options.steering_file)}"
        f" --inputFiles {q(str(hepmc))} --outputFile {q(str(sim))}"
        f" --numberOfEvents {int(n_events)} --random.seed {int(seed)}"
    )
    reco_dir = str(Path(options.reco_options).parent)
    k4run = (
        f"cd {q(reco_dir)} && k4run {q(options.reco_options)} --gaudi-input {q(str(sim))}"
        f" --gaudi-output {q(str(reco))} --num-events -1"
    )
    binds = _bind_paths(options, hepmc.parent)
    return [_wrap(options, ddsim, binds=binds), _wrap(options, k4run, binds=binds)]


def _bind_paths(options: Key4hepOptions, work: Path) -> list[str]:
    """Host folders the container must see: the work folder, the configuration files, /cvmfs."""
    paths = [str(work)]
    for name in (options.steering_file, options.reco_options):
        if Path(name).is_absolute():
            paths.append(str(Path(name).parent))
    if options.setup_script and options.setup_script.startswith("/cvmfs/"):
        paths.append("/cvmfs")
    return list(dict.fromkeys(paths))


def check_key4hep_environment(options: Key4hepOptions) -> None:
    """Fail at once (BackendEnvironmentError) naming whatever the chain would miss.

    With a container: apptainer. Without: the setup script (is /cvmfs mounted?), or, when no setup
    script is configured, ddsim and k4run on PATH. Always: the steering and reconstruction files.
    """
    env = KEY4HEP_ENVIRONMENT
    if options.container is not None:
        require_executable(CONTAINER_RUNTIME, backend="key4hep", environment=env)
    elif options.setup_script is not None:
        require_file(options.setup_script, what="the Key4HEP setup script", backend="key4hep", environment=env)
    else:
        for tool in ("ddsim", "k4run"):
            require_executable(tool, backend="key4hep", environment=env)
    require_file(options.steering_file, what="the ddsim steering file", backend="key4hep", environment=env)
    require_file(options.reco_options, what="the reconstruction options", backend="key4hep", environment=env)


def run_key4hep(
    *,
    process: str,
    sqrt_s: float,
    n_events: int,
    seed: int,
    output: Path,
    options: dict[str, Any] | None = None,
    process_options: dict[str, Any] | None = None,
    where: str = "key4hep",
) -> dict[str, Any]:
    """Generate, simulate and reconstruct; the EDM4hep `output` appears only if every step succeeded.

    `where` is the options' key path in the config (`samples.<name>.key4hep`), the prefix of an error in them.
    """
    parsed = stage_params(Key4hepOptions, options, where=where)
    check_key4hep_environment(parsed)
    # Absolute, because the reconstruction runs from its own folder and possibly inside a container.
    parsed = replace(
        parsed,
        steering_file=str(Path(parsed.steering_file).resolve()),
        reco_options=str(Path(parsed.reco_options).resolve()),
    )
    output = Path(output)
    with scratch_dir(output) as work:
        work = work.resolve()
        hepmc = work / "events.hepmc"
        generator = write_hepmc2(
            hepmc, process=process, sqrt_s=sqrt_s, n_events=n_events, seed=seed, process_options=process_options
        )
        card = pythia_card(generator["settings"], n_events=n_events)
        (work / "card.cmd").write_text(card)
        (work / "key4hep.log").write_text(f"# card.cmd\n{card}")
        reco = work / "reco.edm4hep.root"
        commands = key4hep_commands(
            parsed, hepmc=hepmc, sim=work / "sim.edm4hep.root", reco=reco, n_events=n_events, seed=seed
        )
        run_logged(commands, cwd=work, log=work / "key4hep.log")
        publish(reco, output, what="k4run")
    return {"generator": generator, "key4hep": asdict(parsed), "commands": commands}

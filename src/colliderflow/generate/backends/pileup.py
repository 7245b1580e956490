"""A Delphes pile-up file: minimum-bias Pythia 8 events → HepMC2 → Delphes' own `hepmc2pileup`.

Delphes' PileUpMerger overlays on every event a Poisson number (mean ⟨μ⟩, `MeanPileUp`) of events drawn at
random from a pile-up file, spread along the beam line. The file is made once per configuration (√s, number
of minimum-bias events, seed) by the workflow's `delphes_pileup` rule and is an input of every Delphes job
whose card merges pile-up. The events are Pythia's inelastic non-diffractive soft QCD (`pp_minbias`), with
multiparton interactions on, as minimum bias at the LHC is usually modelled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from colliderflow.generate.backends.delphes_install import PILEUP_EXECUTABLE, require_tool, tool_environment
from colliderflow.generate.backends.environment import run_logged
from colliderflow.generate.backends.hepmc import write_hepmc2
from colliderflow.generate.backends.workdir import publish, scratch_dir

MINBIAS_PROCESS = "pp_minbias"


def make_pileup_file(output: Path, *, sqrt_s: float, n_events: int, seed: int) -> dict[str, Any]:
    """Write a Delphes pile-up file of `n_events` minimum-bias pp events at `sqrt_s` GeV to `output`.

    hepmc2pileup is checked for before any event is generated; `output` appears only when complete.
    Returns what the provenance record needs (generator settings, commands).
    """
    executable = require_tool(PILEUP_EXECUTABLE)
    output = Path(output)
    with scratch_dir(output) as work:
        hepmc = work / "minbias.hepmc"
        generator = write_hepmc2(hepmc, process=MINBIAS_PROCESS, sqrt_s=sqrt_s, n_events=n_events, seed=seed,
                                 process_options={"mpi": True})
        result = work / "minbias.pileup"
        commands = [[executable, str(result), str(hepmc)]]
        run_logged(commands, cwd=work, log=work / "hepmc2pileup.log", env=tool_environment(executable))
        publish(result, output, what=PILEUP_EXECUTABLE)
    return {
        "generator": generator,
        "process": MINBIAS_PROCESS,
        "sqrt_s": float(sqrt_s),
        "n_events": int(n_events),
        "seed": int(seed),
        "commands": [[str(a) for a in c] for c in commands],
    }

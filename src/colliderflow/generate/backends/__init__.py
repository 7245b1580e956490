"""External generation backends: Pythia 8 → HepMC2 → Delphes, or → Key4HEP (ddsim + k4run).

The builtin backend (Pythia + the parametric detector) lives in `colliderflow.generate.run`; the
backends here hand the same Pythia events to external detector simulations. Each one checks its tools
before generating anything, runs in a scratch folder beside the output, and renames its result into place
only on success. The runners are imported when a backend runs, so that the Snakefile can read cards and
find tools (`delphes_cards`, `delphes_install`) without importing Pythia or awkward.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from colliderflow.generate.backends.environment import BackendCommandError, BackendEnvironmentError

EXTERNAL_BACKENDS: Final = ("delphes", "key4hep")

__all__ = ["EXTERNAL_BACKENDS", "BackendCommandError", "BackendEnvironmentError", "run_external_backend"]


def run_external_backend(
    backend: str,
    *,
    process: str,
    sqrt_s: float,
    n_events: int,
    seed: int,
    output: Path,
    options: dict[str, Any] | None = None,
    process_options: dict[str, Any] | None = None,
    pileup_file: Path | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """Run `backend` for one shard into `output`; returns what its provenance record should hold.

    `pileup_file` is a Delphes pile-up file (`colliderflow pileup`), for a delphes card that merges pile-up.
    `where` is the options' key path in the config (`samples.<name>.<backend>`, default `<backend>`), the
    prefix of an error in them (backends.options).
    """
    if backend not in EXTERNAL_BACKENDS:
        raise ValueError(f"unknown external backend {backend!r}; known: {', '.join(EXTERNAL_BACKENDS)}")
    common = {"process": process, "sqrt_s": sqrt_s, "n_events": n_events, "seed": seed, "output": Path(output),
              "options": options, "process_options": process_options, "where": where or backend}
    if backend == "delphes":
        from colliderflow.generate.backends.delphes import run_delphes

        return run_delphes(**common, pileup_file=None if pileup_file is None else Path(pileup_file))
    if pileup_file is not None:
        raise ValueError(f"the {backend} backend takes no pile-up file (only delphes cards merge pile-up)")
    from colliderflow.generate.backends.key4hep import run_key4hep

    return run_key4hep(**common)

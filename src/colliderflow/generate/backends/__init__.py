"""External generation backends: Pythia 8 → HepMC2 → Delphes, or → Key4HEP (ddsim + k4run).

The builtin backend (Pythia + the parametric detector) lives in `colliderflow.generate.run`; the
backends here hand the same Pythia events to external detector simulations. Each one checks its tools
before generating anything, runs in a scratch folder beside the output, and renames its result into place
only on success.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from colliderflow.generate.backends.delphes import run_delphes
from colliderflow.generate.backends.environment import BackendCommandError, BackendEnvironmentError
from colliderflow.generate.backends.key4hep import run_key4hep

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
) -> dict[str, Any]:
    """Run `backend` for one shard into `output`; returns what its provenance record should hold."""
    runners = {"delphes": run_delphes, "key4hep": run_key4hep}
    if backend not in runners:
        raise ValueError(f"unknown external backend {backend!r}; known: {', '.join(EXTERNAL_BACKENDS)}")
    return runners[backend](
        process=process, sqrt_s=sqrt_s, n_events=n_events, seed=seed, output=Path(output), options=options,
        process_options=process_options,
    )

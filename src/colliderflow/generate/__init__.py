"""The generate stage: Pythia 8 events at an e+e- collider through a parametric CLIC-like detector.

`run.generate_shard` is the entry point the `colliderflow generate` command calls. The pieces, each in
its own module: `processes` (what Pythia is asked to make), `pythia` (running it and extracting the final
state), `geometry` (the detector's numbers), `helix` (trajectories in the solenoid), `tracker` and
`calorimeter` (the two detector models), `detector` (both in one call) and `rootio` (the output file).
"""

from __future__ import annotations

__all__ = ["generate_shard"]


def __getattr__(name: str) -> object:
    # Importing the package stays cheap (no Pythia, numba or uproot) until the stage actually runs.
    if name == "generate_shard":
        from colliderflow.generate.run import generate_shard

        return generate_shard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

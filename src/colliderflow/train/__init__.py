"""Training: one entry point, `train()` (colliderflow.train.loop), for every model.

    config      the `train` section as a typed dataclass
    tasks       what differs between models: data, batch → inputs, loss
    data        PF events (TFDS) → padded batches;   jet_data  JetClass-II Parquet → padded batches
    sampling    which items make each batch (weights, seeded order, exact resume)
    losses      the MLPF objective
    loop        the loop itself, read top to bottom
    checkpoint  checkpoints and model.pt;   metrics  metrics.jsonl;   distributed  DDP helpers
"""

from __future__ import annotations

from typing import Any

# Imported on first use, so that `colliderflow.train.config` (what evaluate reads a default from) does not
# pull in the whole loop.
_EXPORTS = {"train": "loop", "make_optimizer": "loop", "save_model": "checkpoint", "TrainConfig": "config"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)

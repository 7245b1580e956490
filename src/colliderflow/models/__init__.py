"""Models: MLPF (a transformer over PF elements), the ParT and PELICAN jet taggers, shared layers, and
building/loading by name.

    configs     the models' config sections and names (no torch: the dry run checks them)
    registry    build a model by name, load a trained one
"""

from __future__ import annotations

from typing import Any

# Imported on first use, so that `colliderflow.models.configs` (what the Snakefile's config check reads)
# does not pull in torch.
_EXPORTS = {
    "MLPF": "mlpf", "MLPFConfig": "configs", "MLPFOutput": "mlpf", "count_parameters": "mlpf",
    "ParT": "part", "ParTConfig": "configs", "PELICAN": "pelican", "PELICANConfig": "configs",
    "build_model": "registry", "load_trained": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)

"""Models: MLPF (a transformer over PF elements), the ParT and PELICAN jet taggers, shared layers, and
building/loading by name."""

from colliderflow.models.mlpf import MLPF, MLPFConfig, MLPFOutput, count_parameters
from colliderflow.models.part import ParT, ParTConfig
from colliderflow.models.pelican import PELICAN, PELICANConfig
from colliderflow.models.registry import build_model, load_trained

__all__ = [
    "MLPF", "PELICAN", "MLPFConfig", "MLPFOutput", "PELICANConfig", "ParT", "ParTConfig", "build_model",
    "count_parameters", "load_trained",
]

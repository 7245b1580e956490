"""Models: MLPF (a transformer over PF elements), shared layers, and building/loading by name."""

from colliderflow.models.mlpf import MLPF, MLPFConfig, MLPFOutput, count_parameters
from colliderflow.models.registry import build_model, load_trained

__all__ = ["MLPF", "MLPFConfig", "MLPFOutput", "build_model", "count_parameters", "load_trained"]

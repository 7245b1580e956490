"""The models' config sections and names, as plain dataclasses: what the dry run checks without torch.

Each model's section (`train.mlpf`, `tagger.part`, `tagger.pelican`) is one frozen dataclass whose `check`
holds the rules the schema cannot state (an embedding that num_heads must divide); the model modules build
from them, and the Snakefile's config check (colliderflow.workflow_config) builds them for every model of
the config, so a mistake stops `snakemake -n`. The registry's names, inputs and tasks live here too, for
the same reason: the training config checks a model name without importing the models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final


def _check_positive_ints(config: Any, names: tuple[str, ...], where: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{where}.{name}: expected a positive integer, got {value!r}")


@dataclass(frozen=True)
class MLPFConfig:
    """The `train.mlpf` section of the config."""

    embedding_dim: int = 64
    num_heads: int = 4
    num_layers: int = 2
    ff_dim: int = 128
    dropout: float = 0.0
    # Feed the physics-informed track–cluster link features (`link_features`) to the encoders and heads.
    link_features: bool = True

    def check(self, where: str) -> None:
        """Cross-field rules the schema cannot state (built by colliderflow.params.stage_params)."""
        config = self
        for name in ("embedding_dim", "num_heads", "num_layers", "ff_dim"):
            value = getattr(config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}.{name}: expected a positive integer, got {value!r}")
        if config.embedding_dim % config.num_heads:
            raise ValueError(
                f"{where}: embedding_dim={config.embedding_dim} not divisible by num_heads={config.num_heads}"
            )
        if not isinstance(config.link_features, bool):
            raise ValueError(f"{where}.link_features: expected true or false, got {config.link_features!r}")
        if not 0.0 <= float(config.dropout) < 1.0:
            raise ValueError(f"{where}.dropout: expected a value in [0, 1), got {config.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParTConfig:
    """The `tagger.part` section. Defaults are the published ParT sizes (about 2 M parameters)."""

    num_features: int = 17  # per-particle inputs, colliderflow.train.jet_data.PARTICLE_FEATURES
    num_classes: int = 10
    embedding_dim: int = 128
    embed_hidden: int = 512  # hidden width of the particle-embedding MLP
    num_heads: int = 8
    num_layers: int = 8  # particle-attention blocks
    num_cls_layers: int = 2  # class-attention blocks
    ff_dim: int = 512
    pair_hidden: int = 64  # hidden width of the pairwise-feature MLP
    dropout: float = 0.1

    def check(self, where: str) -> None:
        """Cross-field rules the schema cannot state (built by colliderflow.params.stage_params)."""
        config = self
        _check_positive_ints(config, ("num_features", "num_classes", "embedding_dim", "embed_hidden", "num_heads",
                                      "num_layers", "num_cls_layers", "ff_dim", "pair_hidden"), where)
        if config.embedding_dim % config.num_heads:
            raise ValueError(f"{where}: embedding_dim={config.embedding_dim} not divisible by "
                             f"num_heads={config.num_heads}")
        if not 0.0 <= float(config.dropout) < 1.0:
            raise ValueError(f"{where}.dropout: expected a value in [0, 1), got {config.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PELICANConfig:
    """The `tagger.pelican` section."""

    num_classes: int = 10
    embed_channels: int = 8  # learnable powers of the log dot product
    hidden_channels: int = 32
    num_layers: int = 3
    readout_hidden: int = 64
    n_avg: float = 50.0  # typical number of particles, the reference of the N/N_avg rescaling
    momentum_scale: float = 1.0  # GeV: d_ij is divided by momentum_scale² before the log
    dropout: float = 0.0

    def check(self, where: str) -> None:
        """Cross-field rules the schema cannot state (built by colliderflow.params.stage_params)."""
        config = self
        _check_positive_ints(config, ("num_classes", "embed_channels", "hidden_channels", "num_layers",
                                      "readout_hidden"), where)
        if not float(config.n_avg) > 0 or not float(config.momentum_scale) > 0:
            raise ValueError(f"{where}: n_avg and momentum_scale must be > 0")
        if not 0.0 <= float(config.dropout) < 1.0:
            raise ValueError(f"{where}.dropout: expected a value in [0, 1), got {config.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# name → its config section's dataclass (the section is params[name] of `train` or `tagger`).
MODEL_CONFIGS: Final[dict[str, type]] = {"mlpf": MLPFConfig, "part": ParTConfig, "pelican": PELICANConfig}
# name → the batch fields the model's forward() takes, in order. The training task and the ONNX export
# both read inputs from here, so a model's signature is written down once.
MODEL_INPUTS: Final[dict[str, tuple[str, ...]]] = {
    "mlpf": ("X", "mask"),
    "part": ("features", "p4", "mask"),
    "pelican": ("p4", "mask"),
}
# name → the task it is trained on: "pf" (per-element particle flow) or "tagging" (one label per jet).
MODEL_TASKS: Final[dict[str, str]] = {"mlpf": "pf", "part": "tagging", "pelican": "tagging"}
# task → the config section a model of that task is configured in (errors name keys as the user wrote them).
TASK_SECTIONS: Final[dict[str, str]] = {"pf": "train", "tagging": "tagger"}


def config_section(model: str) -> str:
    """The config section that configures `model`: `train` for the particle-flow model, `tagger` for taggers."""
    return TASK_SECTIONS[MODEL_TASKS.get(model, "pf")]

"""The `train` and `tagger` sections of the config as typed dataclasses, checked once.

Only the training loop's own keys live in TrainConfig; the model's section (train.<model>) is checked by the
model's config (colliderflow.models.configs) and the loss's (train.loss) by LossConfig, here beside it.
Nothing here imports torch: the Snakefile's config check (colliderflow.workflow_config) builds these too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from colliderflow.models.configs import MODEL_CONFIGS, MODEL_TASKS, config_section
from colliderflow.jetclass2 import JETCLASS2_LABELS, label_name
from colliderflow.params import DEFAULT_JET_LENGTH, ConfigError, stage_params


# Keys of one training section only: the particle-flow model is configured in `train`, a tagger in `tagger`
# (the tagger rule passes `tagger` less `models`, plus `model`). The schema is the reference; the test
# tests/test_config_probes.py walks it and fails when these sets and the dataclass disagree with it.
PF_ONLY_KEYS: Final = frozenset({"mlpf", "loss"})
TAGGER_ONLY_KEYS: Final = frozenset({"labels", "val_fraction", "max_particles", "bucket_batches", "part", "pelican"})


@dataclass(frozen=True)
class TrainConfig:
    """A model's training section (`train` or `tagger`): the loop's keys; the model's own section
    (train.mlpf, tagger.part, ...) and the loss's (train.loss) are checked by their own dataclasses."""

    model: str = "mlpf"
    batch_size: int = 32
    max_steps: int = 600
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0  # ≤ 0: no clipping
    checkpoint_every: int = 200
    eval_every: int = 100
    log_every: int = 10
    eval_max_events: int | None = None  # validation on the first N val events; None: all of them
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # CPU threads for torch; None: torch's default
    num_workers: int = 0  # DataLoader worker processes (persistent, prefetching); 0: read in the training process
    shuffle_buffer: int = 1 << 17  # items of one shuffle window (sampling); a smaller set is shuffled globally
    # the model's and the loss's sections (checked by MLPFConfig, ParTConfig, PELICANConfig, LossConfig)
    mlpf: Mapping[str, Any] | None = None
    part: Mapping[str, Any] | None = None
    pelican: Mapping[str, Any] | None = None
    loss: Mapping[str, Any] | None = None
    # tagging only
    # jet_label values, or JetClass-II label names (with or without "label_"), to train on; class index =
    # position; None: every label present
    labels: list[int | str] | None = None
    val_fraction: float = 0.1  # jets held out when no val split is given (a fixed hash split, jet_data.split_train_val)
    max_particles: int = DEFAULT_JET_LENGTH  # constituents kept per jet (the hardest)
    bucket_batches: int = 0  # > 1: sort by length within chunks of this many batches (sampling.EpochBatchSampler)

    def check(self, where: str) -> None:
        """Cross-field rules and values the loop cannot run with; `where` is `train` or `tagger`."""
        config = self
        if config.model not in MODEL_CONFIGS:
            raise ValueError(f"{where}.model: unknown model {config.model!r}; known: {sorted(MODEL_CONFIGS)}")
        if config.threads is not None and (not isinstance(config.threads, int) or config.threads < 1):
            raise ValueError(f"{where}.threads: expected a positive integer, got {config.threads!r}")
        for name in ("batch_size", "max_steps", "checkpoint_every", "eval_every", "log_every"):
            value = getattr(config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{where}.{name}: expected a positive integer, got {value!r}")
        if not isinstance(config.warmup_steps, int) or config.warmup_steps < 0:
            raise ValueError(f"{where}.warmup_steps: expected a non-negative integer, got {config.warmup_steps!r}")
        if not config.lr > 0 or config.weight_decay < 0:
            raise ValueError(f"{where}.lr must be > 0 and {where}.weight_decay ≥ 0")
        limit = config.eval_max_events
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"{where}.eval_max_events: expected a positive integer or null, got {limit!r}")
        if config.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"{where}.device: expected auto, cpu or cuda, got {config.device!r}")
        if not isinstance(config.bucket_batches, int) or config.bucket_batches < 0:
            raise ValueError(f"{where}.bucket_batches: expected a non-negative integer, got {config.bucket_batches!r}")
        if not isinstance(config.num_workers, int) or isinstance(config.num_workers, bool) or config.num_workers < 0:
            raise ValueError(f"{where}.num_workers: expected a non-negative integer, got {config.num_workers!r}")
        if not isinstance(config.shuffle_buffer, int) or not 1 <= config.shuffle_buffer <= 2**24:
            raise ValueError(f"{where}.shuffle_buffer: expected an integer in 1 … 2^24, "
                             f"got {config.shuffle_buffer!r}")
        if not isinstance(config.max_particles, int) or config.max_particles < 1:
            raise ValueError(f"{where}.max_particles: expected a positive integer, got {config.max_particles!r}")
        if not 0.0 <= config.val_fraction < 1.0:
            raise ValueError(f"{where}.val_fraction: expected a value in [0, 1), got {config.val_fraction!r}")
        if config.labels is not None:
            label_values(config.labels, where=f"{where}.labels")

    @property
    def task_name(self) -> str:
        return MODEL_TASKS[self.model]

    @property
    def section(self) -> str:
        """The config section this model is configured in: `train` or `tagger` (the prefix of its errors)."""
        return config_section(self.model)


@dataclass(frozen=True)
class LossConfig:
    """The optional `train.loss` section of the config."""

    classification: str = "cross_entropy"  # cross_entropy | focal
    focal_gamma: float = 2.0  # focal only
    regression: str = "huber"  # huber | mse
    huber_delta: float = 1.0  # in units of the residual's typical spread
    cls_weight: float = 4.0  # weights of the three terms in the loss that is minimised
    charge_weight: float = 1.0
    reg_weight: float = 1.0
    gev_weight: float = 0.0  # weight of the pT/E error in GeV (losses.absolute_momentum_loss); 0: off
    gev_delta: float = 1.0  # GeV: where that Huber turns from quadratic to linear

    def check(self, where: str) -> None:
        """Cross-field rules the schema cannot state (built by colliderflow.params.stage_params)."""
        config = self
        if config.classification not in ("focal", "cross_entropy"):
            raise ValueError(f"{where}.classification: expected focal or cross_entropy, got {config.classification!r}")
        if config.regression not in ("huber", "mse"):
            raise ValueError(f"{where}.regression: expected huber or mse, got {config.regression!r}")
        if config.focal_gamma < 0 or config.huber_delta <= 0 or not config.gev_delta > 0:
            raise ValueError(f"{where}: focal_gamma must be ≥ 0, huber_delta and gev_delta > 0")
        for name in ("cls_weight", "charge_weight", "reg_weight", "gev_weight"):
            if not getattr(config, name) >= 0:
                raise ValueError(f"{where}.{name}: expected a non-negative number, got {getattr(config, name)!r}")


def train_params(params: Mapping[str, Any]) -> TrainConfig:
    """The one way a training section becomes a TrainConfig: it is `train` for the particle-flow model and
    `tagger` for a tagger, so keys of the other section are unknown here, and errors name the section."""
    model = params.get("model", "mlpf")
    where = config_section(model) if isinstance(model, str) else "train"
    foreign = sorted(set(params) & (TAGGER_ONLY_KEYS if where == "train" else PF_ONLY_KEYS))
    if foreign:
        raise ConfigError(f"{where}: unknown keys {foreign} for model {model!r} (they belong to the "
                          f"{'tagger' if where == 'train' else 'train'} section)")
    return stage_params(TrainConfig, params, where=where)


def label_values(labels: Sequence[int | str], *, where: str = "tagger.labels") -> list[int]:
    """jet_label values from values or JetClass-II names; ValueError naming an unknown name."""
    index = {name: i for i, name in enumerate(JETCLASS2_LABELS)}
    values = []
    for label in labels:
        if isinstance(label, str):
            name = label_name(label)
            if name not in index:
                raise ValueError(f"{where}: {label!r} is not a JetClass-II label name")
            values.append(index[name])
        else:
            values.append(int(label))
    return values

"""The `train` section of the config as one typed dataclass, checked once.

Only the training loop's own keys live here; the model's section (train.<model>) is checked by the model's
config and the loss's (train.loss) by `colliderflow.train.losses.LossConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from colliderflow.models.registry import MODEL_TASKS, MODELS
from colliderflow.jetclass2 import JETCLASS2_LABELS, label_name


@dataclass(frozen=True)
class TrainConfig:
    """The `train` section of the config, minus the model's and the loss's own sections."""

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
    task: str | None = None  # pf | tagging; None: the model's own (registry.MODEL_TASKS)
    bucket_batches: int = 0  # > 1: sort by length within chunks of this many batches (sampling.EpochBatchSampler)
    num_workers: int = 0  # DataLoader worker processes (persistent, prefetching); 0: read in the training process
    shuffle_buffer: int = 1 << 17  # items of one shuffle window (sampling); a smaller set is shuffled globally
    # tagging only
    # jet_label values, or JetClass-II label names (with or without "label_"), to train on; class index =
    # position; None: every label present
    labels: list[int | str] | None = None
    val_fraction: float = 0.1  # jets held out for validation (a fixed hash split, jet_data.split_train_val)
    max_particles: int = 128  # constituents kept per jet (the hardest)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainConfig:
        """Validate the section; unknown keys and impossible values are errors naming the key."""
        own = {f.name for f in fields(cls)}
        allowed = own | set(MODELS) | {"loss"}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"train: unknown keys {unknown}; known: {sorted(allowed)}")
        config = cls(**{k: v for k, v in params.items() if k in own})
        if config.threads is not None and (not isinstance(config.threads, int) or config.threads < 1):
            raise ValueError(f"train.threads: expected a positive integer, got {config.threads!r}")
        for name in ("batch_size", "max_steps", "checkpoint_every", "eval_every", "log_every"):
            value = getattr(config, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"train.{name}: expected a positive integer, got {value!r}")
        if not isinstance(config.warmup_steps, int) or config.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps: expected a non-negative integer, got {config.warmup_steps!r}")
        if not config.lr > 0 or config.weight_decay < 0:
            raise ValueError("train.lr must be > 0 and train.weight_decay ≥ 0")
        limit = config.eval_max_events
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"train.eval_max_events: expected a positive integer or null, got {limit!r}")
        if config.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device: expected auto, cpu or cuda, got {config.device!r}")
        if config.task not in (None, "pf", "tagging"):
            raise ValueError(f"train.task: expected pf or tagging, got {config.task!r}")
        if config.model in MODEL_TASKS and config.task not in (None, MODEL_TASKS[config.model]):
            raise ValueError(f"train.task: model {config.model!r} is trained on task {MODEL_TASKS[config.model]!r}")
        if not isinstance(config.bucket_batches, int) or config.bucket_batches < 0:
            raise ValueError(f"train.bucket_batches: expected a non-negative integer, got {config.bucket_batches!r}")
        if not isinstance(config.num_workers, int) or isinstance(config.num_workers, bool) or config.num_workers < 0:
            raise ValueError(f"train.num_workers: expected a non-negative integer, got {config.num_workers!r}")
        if not isinstance(config.shuffle_buffer, int) or not 1 <= config.shuffle_buffer <= 2**24:
            raise ValueError(f"train.shuffle_buffer: expected an integer in 1 … 2^24, got {config.shuffle_buffer!r}")
        if not isinstance(config.max_particles, int) or config.max_particles < 1:
            raise ValueError(f"train.max_particles: expected a positive integer, got {config.max_particles!r}")
        return config

    @property
    def task_name(self) -> str:
        return self.task or MODEL_TASKS.get(self.model, "pf")



def label_values(labels: Sequence[int | str]) -> list[int]:
    """jet_label values from values or JetClass-II names; ValueError naming an unknown name."""
    index = {name: i for i, name in enumerate(JETCLASS2_LABELS)}
    values = []
    for label in labels:
        if isinstance(label, str):
            name = label_name(label)
            if name not in index:
                raise ValueError(f"train.labels: {label!r} is not a JetClass-II label name")
            values.append(index[name])
        else:
            values.append(int(label))
    return values

"""Train a model: one entry point, `train()`, and one loop for every model.

What differs between models sits behind a small task interface (`Task`): how to open the data, collate
a batch, feed it to the model and score it. Two tasks exist: "pf" (MLPF on the `train` split of TFDS
datasets, per-element losses) and "tagging" (ParT or PELICAN on JetClass-II Parquet shards, one
cross-entropy over the classes of params["labels"] per jet). Read top to bottom, the loop is:

    open data (task) ─▶ join the torchrun job if any ─▶ seed everything ─▶ build model (+ fit the feature normalisation) ─▶ AdamW, warm-up+cosine
      ─▶ resume from the newest checkpoint in output_dir/checkpoints if it is an unfinished run of the
         same config and seed (otherwise start over, see `resumable_checkpoint`)
      ─▶ for each step: batch ─▶ forward ─▶ loss ─▶ backward ─▶ clip ─▶ step
           every log_every steps: a "train" line in metrics.jsonl
           every eval_every steps (and at the end): validation loss, a "val" line
           every checkpoint_every steps (and at the end): output_dir/checkpoints/ckpt_<step>.pt
      ─▶ output_dir/model.pt, output_dir/provenance.json

Resuming is exact on CPU: the batch order is a pure function of (seed, step) (data.EpochBatchSampler),
and a checkpoint holds everything else that evolves — weights, optimiser and scheduler state, and the
torch / numpy / python RNG states (dropout draws from torch's). Two runs with the same seed give the
same weights bit for bit on CPU; on CUDA, bf16 autocast and the kernels make them only close.

Data parallel: under torchrun (RANK / WORLD_SIZE set) each process takes a disjoint slice of every
global batch (batch_size is the global size), DDP averages gradients (gloo on CPU, NCCL on GPU), and
only rank 0 writes metrics, checkpoints, the model and provenance; every rank resumes from the same
checkpoint. With dropout 0 a DDP run reproduces the single-process run of the same global batch up to
float rounding (the gradient mean is summed in another order); dropout masks are drawn from the same
seeded stream on every rank.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from colliderflow import distributed
from colliderflow.config import config_hash
from colliderflow.data import (
    Batch,
    EpochBatchSampler,
    Event,
    SampleKeys,
    collate_events,
    event_keys,
    fit_normalisation,
    open_splits,
    read_sampling_weights,
)
from colliderflow.distributed import DistInfo
from colliderflow.io.atomic import atomic_path, write_text_atomic
from colliderflow.jet_data import JetDataset, JetSubset, collate_jets, jet_files, split_train_val
from colliderflow.losses import LossConfig, mlpf_loss
from colliderflow.models.mlpf import count_parameters, fit_regression_standardisation
from colliderflow.models.registry import (
    MODEL_FILE,
    MODEL_FORMAT_VERSION,
    MODEL_INPUTS,
    MODEL_TASKS,
    MODELS,
    build_model,
)
from colliderflow.ntuplize.jet_labels import JETCLASS2_LABELS, label_name
from colliderflow.provenance import provenance_record, write_provenance

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
_CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")
# Keys that may change between a checkpoint and its resumption: they set how long and how often, not what.
_RESUMABLE_CHANGES = frozenset({"max_steps", "checkpoint_every", "eval_every", "log_every", "device", "threads"})


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
    bucket_batches: int = 0  # > 1: sort by length within chunks of this many batches (data.EpochBatchSampler)
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
        if not isinstance(config.max_particles, int) or config.max_particles < 1:
            raise ValueError(f"train.max_particles: expected a positive integer, got {config.max_particles!r}")
        return config

    @property
    def task_name(self) -> str:
        return self.task or MODEL_TASKS.get(self.model, "pf")


# --------------------------------------------------------------------------------------------------
# Tasks: what differs between models (data, batch → inputs, batch → loss)
# --------------------------------------------------------------------------------------------------


class Task:
    """The model-specific half of training. The loop only calls these methods.

    train_set / val_set: random-access sequences of items; collate: items → batch (with `.to(device)`
    and `len`); loss: (model, batch) → {"loss": scalar, …other terms for the metrics}.
    """

    name: str
    train_set: Sequence[Any]
    val_set: Sequence[Any]
    inputs: list[Path]

    def __init__(self, model: str) -> None:
        self.input_names = MODEL_INPUTS[model]

    def collate(self, items: list[Any]) -> Any:
        raise NotImplementedError

    def forward(self, model: nn.Module, batch: Any) -> Any:
        """batch → the model's inputs (registry.MODEL_INPUTS) → its output."""
        return model(*(getattr(batch, name) for name in self.input_names))

    def loss(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def lengths(self) -> Sequence[int]:
        """Length of every training item, for length bucketing."""
        raise NotImplementedError

    def sample_keys(self) -> SampleKeys | list[tuple[str, int]]:
        """(sample, event_id) of every training item, what sampling weights are keyed by."""
        raise NotImplementedError

    def model_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The params build_model sees (a task may fill in sizes that follow from the data)."""
        return params

    def prepare(self, model: nn.Module) -> None:
        """Fit whatever the model learns from the data before training (only on a fresh start)."""

    def record(self) -> dict[str, Any]:
        """Facts about the data for model.pt and provenance."""
        return {}


class PFTask(Task):
    """MLPF on TFDS datasets: per-element classification, charge and kinematics (losses.mlpf_loss)."""

    name = "pf"

    def __init__(self, cfg: TrainConfig, loss_cfg: LossConfig, tfds_dirs: list[Path]) -> None:
        super().__init__(cfg.model)
        self.loss_cfg = loss_cfg
        self.train_set = open_splits(tfds_dirs, "train")
        self.val_set = open_splits(tfds_dirs, "val", allow_empty=True)
        self.inputs = [Path(d) for d in tfds_dirs]

    def collate(self, items: list[Event]) -> Batch:
        return collate_events(items)

    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        # The residuals are measured in the model's per-type regression scale (see losses.mlpf_loss);
        # under DDP the model is wrapped, and the scale lives on the module inside.
        scale_of = getattr(getattr(model, "module", model), "element_regression_scale", None)
        scale = scale_of(batch.X) if scale_of is not None else None
        return mlpf_loss(self.forward(model, batch), batch.X, batch.ytarget, batch.mask, self.loss_cfg, scale=scale)

    def lengths(self) -> list[int]:
        getitems = getattr(self.train_set, "__getitems__", None)
        out = []
        for start in range(0, len(self.train_set), 1024):
            idx = list(range(start, min(start + 1024, len(self.train_set))))
            out += [len(ev["X"]) for ev in (getitems(idx) if getitems else [self.train_set[i] for i in idx])]
        return out

    def sample_keys(self) -> list[tuple[str, int]]:
        return event_keys(self.train_set)

    def prepare(self, model: nn.Module) -> None:
        if hasattr(model, "normaliser"):
            model.normaliser.set_statistics(fit_normalisation(self.train_set))
        if hasattr(model, "set_regression_standardisation"):
            model.set_regression_standardisation(*fit_regression_standardisation(self.train_set))


class TaggingTask(Task):
    """A jet tagger on JetClass-II Parquet shards: cross-entropy over the classes of `labels`."""

    name = "tagging"

    def __init__(self, cfg: TrainConfig, paths: list[Path], val_paths: list[Path] | None = None) -> None:
        super().__init__(cfg.model)
        files = jet_files(paths)
        labels = label_values(cfg.labels) if cfg.labels is not None else None
        dataset = JetDataset(files, labels=labels)
        self.labels = dataset.labels
        if val_paths:  # a dataset with its own validation split (the jet_dataset stage's val/)
            val_files = jet_files(val_paths)
            self.train_set = JetSubset(dataset, np.arange(len(dataset)))
            val_dataset = JetDataset(val_files, labels=self.labels)
            self.val_set = JetSubset(val_dataset, np.arange(len(val_dataset)))
            files = [*files, *val_files]
        else:
            self.train_set, self.val_set = split_train_val(dataset, cfg.val_fraction)
        if len(self.train_set) == 0:
            raise ValueError(f"{[str(f) for f in files]}: no training jets with labels {self.labels}")
        self.label_names = [JETCLASS2_LABELS[v] if 0 <= v < len(JETCLASS2_LABELS) else str(v) for v in self.labels]
        self.max_particles = cfg.max_particles
        self.model = cfg.model
        self.inputs = files

    def collate(self, items: list[Any]) -> Any:
        return collate_jets(items, max_particles=self.max_particles)

    def loss(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        logits = self.forward(model, batch).float()  # [B, C]
        loss = torch.nn.functional.cross_entropy(logits, batch.label)
        accuracy = (logits.argmax(dim=-1) == batch.label).float().mean().detach()
        return {"loss": loss, "accuracy": accuracy}

    def lengths(self) -> Sequence[int]:
        return np.minimum(self.train_set.n_particles, self.max_particles).tolist()

    def sample_keys(self) -> SampleKeys:
        return self.train_set.key_arrays()

    def model_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """num_classes follows from the label list; a config that says otherwise is an error."""
        section = dict(params.get(self.model) or {})
        given = section.get("num_classes")
        if given is not None and given != len(self.labels):
            raise ValueError(f"train.{self.model}.num_classes={given} but train.labels has {len(self.labels)} labels")
        section["num_classes"] = len(self.labels)
        return {**params, self.model: section}

    def record(self) -> dict[str, Any]:
        return {"labels": self.labels, "label_names": self.label_names}


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


def make_task(cfg: TrainConfig, loss_cfg: LossConfig, paths: list[Path], val_paths: list[Path] | None = None) -> Task:
    if cfg.task_name == "tagging":
        return TaggingTask(cfg, paths, val_paths)
    if val_paths:
        raise ValueError("train: a separate validation dataset is for taggers; the PF task reads TFDS val splits")
    return PFTask(cfg, loss_cfg, paths)


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------


def train(*, tfds_dirs: list[Path] | None = None, weights: Path | None, params: dict[str, Any], seed: int,
          output_dir: Path, data: list[Path] | None = None, val_data: list[Path] | None = None) -> dict[str, Any]:
    """Train the model params["model"] and write output_dir/{model.pt, provenance.json, metrics.jsonl,
    checkpoints/}. Continues an unfinished run of the same config from its newest checkpoint.

    data (or, by its older name, tfds_dirs): the inputs of the task — TFDS dataset directories for "pf"
    (their `train` splits concatenated, likewise `val`); JetClass-II Parquet files or directories of
    them for "tagging". val_data: a tagger's validation jets (default: a fixed hash split of data). weights: optional Parquet of per-item sampling weights (sample, event_id,
    weight; for jets the sample is the file stem and event_id the row). params: the config's `train`
    section. Under torchrun, every rank calls this; rank 0 writes. Returns a summary (steps, losses,
    parameter count, paths).
    """
    if (data is None) == (tfds_dirs is None):
        raise ValueError("train: give the input data once, as data= (or tfds_dirs=)")
    paths = [Path(p) for p in (data if data is not None else tfds_dirs)]  # type: ignore[union-attr]
    cfg = TrainConfig.from_params(params)
    loss_cfg = LossConfig.from_dict(params.get("loss"))
    output_dir = Path(output_dir)

    task = make_task(cfg, loss_cfg, paths, [Path(p) for p in val_data] if val_data else None)
    if len(task.val_set) == 0:
        log.warning("no validation data in %s: validation loss is skipped", [str(p) for p in paths])
    sampling_weights = None
    if weights is not None:
        sampling_weights = read_sampling_weights(Path(weights), task.sample_keys())

    inputs = task.inputs + ([Path(weights)] if weights is not None else [])
    device = pick_device(cfg.device)
    with distributed.process_group(device.type) as dist_info, _torch_settings(threads=cfg.threads):
        return _train(cfg, task, params=params, seed=seed, device=distributed.device_for(dist_info, device),
                      sampling_weights=sampling_weights, output_dir=output_dir, inputs=inputs, dist_info=dist_info)


@contextlib.contextmanager
def _torch_settings(*, threads: int | None) -> Iterator[None]:
    """Deterministic kernels and the thread count for the run; the caller's settings come back after."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    n_threads = torch.get_num_threads()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_num_threads(n_threads)


def _train(cfg: TrainConfig, task: Task, *, params: dict[str, Any], seed: int, device: torch.device,
           sampling_weights: torch.Tensor | None, output_dir: Path, inputs: list[Path],
           dist_info: DistInfo) -> dict[str, Any]:
    """The body of `train()`, once inputs are checked: model, loop, outputs."""
    main = dist_info.is_main
    ckpt_dir = output_dir / CHECKPOINT_DIR
    metrics_path = output_dir / METRICS_FILE
    fingerprint = input_fingerprint(inputs)
    # Same seed → same initial weights, batch order and dropout masks.
    seed_everything(seed)

    # ---- model and optimiser
    model = build_model(task.model_params(params))
    resume = resumable_checkpoint(ckpt_dir, params=params, seed=seed, max_steps=cfg.max_steps,
                                  fingerprint=fingerprint, delete_stale=main)
    if resume is None:
        task.prepare(model)
    model.to(device)
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, cfg.max_steps))
    n_params = count_parameters(model)
    log.info("%s (%s): %d trainable parameters, %d train / %d val items, device %s, rank %d of %d",
             cfg.model, task.name, n_params, len(task.train_set), len(task.val_set), device,
             dist_info.rank, dist_info.world_size)

    step, elapsed_before = 0, 0.0
    if resume is not None:
        path, state = resume
        step, elapsed_before = restore_checkpoint(state, model=model, optimizer=optimizer, scheduler=scheduler)
        log.info("resumed from %s at step %d", path, step)
    if main:
        truncate_metrics(metrics_path, after_step=step)  # a crashed run may have logged past its checkpoint
    distributed.barrier(dist_info)  # every rank has read the checkpoint before rank 0 writes new ones
    net = distributed.wrap(model, dist_info, device)  # what the loop runs; `model` is what is saved

    sampler = EpochBatchSampler(len(task.train_set), batch_size=cfg.batch_size, seed=seed, weights=sampling_weights,
                                start_step=step, num_steps=max(0, cfg.max_steps - step),
                                lengths=task.lengths() if cfg.bucket_batches > 1 else None,
                                bucket_batches=cfg.bucket_batches, rank=dist_info.rank,
                                world_size=dist_info.world_size)
    loader = torch.utils.data.DataLoader(
        task.train_set,  # type: ignore[arg-type]  # any random-access sequence of items
        batch_sampler=sampler,
        collate_fn=task.collate,
        num_workers=0,  # workers did not help on 2 cores; TFDS sources must be opened per process
        pin_memory=device.type == "cuda",
        # The loader draws a base seed when iterated: from its own generator, not torch's global one,
        # so that a resumed run's dropout stream is not shifted by that draw.
        generator=torch.Generator().manual_seed(seed),
    )

    # ---- the loop
    t_start = time.perf_counter()
    window = _Window()
    val_losses: dict[str, float] | None = None
    net.train()
    with tqdm(total=cfg.max_steps, initial=step, disable=not (main and sys.stderr.isatty()), desc="train") as bar:
        t_prev = time.perf_counter()  # throughput counts loading + training, not evaluation or checkpoints
        for batch in loader:
            batch = batch.to(device)
            with autocast(device):
                losses = task.loss(net, batch)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()  # under DDP: gradients averaged over ranks here
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            window.add(losses, len(batch) * dist_info.world_size, seconds=time.perf_counter() - t_prev)
            bar.update(1)

            done = step == cfg.max_steps
            elapsed = elapsed_before + time.perf_counter() - t_start
            if step % cfg.log_every == 0 or done:
                record = distributed.mean_over_ranks(window.flush(), dist_info, device)
                if main:
                    append_metrics(metrics_path, {"step": step, "split": "train", **record,
                                                  "lr": scheduler.get_last_lr()[0], "elapsed_s": elapsed})
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            if (step % cfg.eval_every == 0 or done) and len(task.val_set) and main:
                val_losses = evaluate_loss(model, task, batch_size=cfg.batch_size, device=device,
                                           max_events=cfg.eval_max_events)
                append_metrics(metrics_path, {"step": step, "split": "val", **val_losses,
                                              "lr": scheduler.get_last_lr()[0], "elapsed_s": elapsed})
                net.train()
            if (step % cfg.checkpoint_every == 0 or done) and main:
                save_checkpoint(ckpt_dir / f"ckpt_{step}.pt", model=model, optimizer=optimizer, scheduler=scheduler,
                                step=step, elapsed_s=elapsed, params=params, seed=seed, fingerprint=fingerprint)
            t_prev = time.perf_counter()

    # ---- final outputs (rank 0)
    summary = {
        "step": step,
        "param_count": n_params,
        "world_size": dist_info.world_size,
        "final_train_loss": _last_metric(metrics_path, "train") if main else None,
        "final_val_loss": val_losses["loss"] if val_losses else None,
        "model": str(output_dir / MODEL_FILE),
        "metrics": str(metrics_path),
    }
    if main:
        save_model(output_dir / MODEL_FILE, model, params=task.model_params(params), seed=seed, step=step,
                   n_params=n_params, extra={"task": task.name, **task.record()})
        write_provenance(output_dir / "provenance.json", provenance_record(
            stage="train", config=params, seeds={"seed": seed}, inputs=[str(p) for p in inputs],
            extra={"param_count": n_params, "steps": step, "task": task.name, "n_train_events": len(task.train_set),
                   "n_val_events": len(task.val_set), "final_val_loss": summary["final_val_loss"],
                   "world_size": dist_info.world_size, "dist_backend": dist_info.backend, **task.record()},
        ))
        log.info("trained %d steps; model written to %s", step, summary["model"])
    distributed.barrier(dist_info)  # no rank leaves (and tears down the group) before the files exist
    return summary


# --------------------------------------------------------------------------------------------------
# Pieces of the loop
# --------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """"auto" → CUDA when available, else CPU; "cuda" without a GPU is an error rather than a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: cuda requested but no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; on CPU full float32, which is what makes CPU runs bit-reproducible."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only: decaying biases and LayerNorm gains only hurts."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )


def warmup_cosine(warmup_steps: int, max_steps: int) -> Any:
    """LR factor for step s: linear from 1/(warmup+1) to 1 over the warm-up, then cosine down to 0 at max_steps."""

    def factor(s: int) -> float:
        if s < warmup_steps:
            return (s + 1) / (warmup_steps + 1)
        progress = min(1.0, (s - warmup_steps) / max(1, max_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class _Window:
    """Running sums of the loss terms since the last train line; tensors, so no sync per step on GPU."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.samples = 0
        self.seconds = 0.0

    def add(self, losses: dict[str, torch.Tensor], n_samples: int, *, seconds: float) -> None:
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value.detach().float()
        self.steps += 1
        self.samples += n_samples
        self.seconds += seconds

    def flush(self) -> dict[str, float]:
        record = {key: float(total) / self.steps for key, total in self.sums.items()}
        record["samples_per_s"] = self.samples / self.seconds if self.seconds > 0 else float("nan")
        self._reset()
        return record


@torch.no_grad()
def evaluate_loss(model: nn.Module, task: Task, *, batch_size: int, device: torch.device,
                  max_events: int | None = None) -> dict[str, float]:
    """Loss terms over (the first `max_events` of) the task's validation items in a fixed order, each
    term averaged over batches weighted by their number of items; plus the evaluation throughput."""
    model.eval()
    items = task.val_set
    n = len(items) if max_events is None else min(len(items), max_events)
    getitems = getattr(items, "__getitems__", None)
    sums: dict[str, float] = {}
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        batch = task.collate(getitems(idx) if getitems else [items[i] for i in idx]).to(device)
        with autocast(device):
            losses = task.loss(model, batch)
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(idx)
    record = {key: total / n for key, total in sums.items()}
    dt = time.perf_counter() - t0
    record["samples_per_s"] = n / dt if dt > 0 else float("nan")
    return record


# --------------------------------------------------------------------------------------------------
# Files: metrics, checkpoints, the final model
# --------------------------------------------------------------------------------------------------


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """One JSON object per line; appended and closed each time so a crash loses at most one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def truncate_metrics(path: Path, *, after_step: int) -> None:
    """Drop lines logged after `after_step` (all of them for a fresh start), so that a resumed run's log
    reads as if it had never stopped."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= after_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a crash
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def _last_metric(path: Path, split: str) -> float | None:
    last = None
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("split") == split:
                last = record["loss"]
    return last


def newest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint with the highest step in `ckpt_dir`, or None (temporary files are ignored)."""
    if not ckpt_dir.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _CKPT_RE.match(p.name))]
    return max(found)[1] if found else None


def _rng_state() -> dict[str, Any]:
    """All RNG states, as types torch.load(weights_only=True) accepts (no numpy arrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def input_fingerprint(inputs: list[Path]) -> str:
    """A hash of the training inputs' files (path, size, mtime): a rebuilt dataset or new weights file
    changes it, a retried job on the same files does not. Cheap: no file is read."""
    listing = []
    for root in inputs:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for f in files:
            st = f.stat()
            listing.append([str(f), st.st_size, st.st_mtime_ns])
    return config_hash(listing)


def save_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, elapsed_s: float,
                    params: dict[str, Any], seed: int, fingerprint: str) -> None:
    """Everything needed to continue exactly, written atomically (a kill mid-write leaves the old newest)."""
    state = {
        "step": step,
        "elapsed_s": elapsed_s,
        "params": params,
        "seed": seed,
        "inputs_fingerprint": fingerprint,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        # The batch order is a function of (seed, step); stored for readers, recomputed on resume.
        "sampler": {"seed": seed, "step": step},
        "rng": _rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def resumable_checkpoint(ckpt_dir: Path, *, params: dict[str, Any], seed: int, max_steps: int,
                         fingerprint: str, delete_stale: bool = True) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `ckpt_dir` and its contents, if this run should continue from it.

    It should when it is unfinished (step < max_steps) and was written with the same seed, the same
    input files (`input_fingerprint`) and the same train config, apart from the keys that only say how
    long to train and how often to log. Anything else — a finished run being redone (the code changed),
    another config, seed or dataset — starts over: the stale
    checkpoints are deleted so that they cannot be mistaken for this run's later. An unreadable
    checkpoint is an error naming it (they are written atomically, so it means a damaged disk).
    Under DDP every rank decides (the same way, from the same files) but only rank 0 deletes.
    """
    path = newest_checkpoint(ckpt_dir)
    if path is None:
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ValueError(f"{path}: unreadable checkpoint: {exc}") from exc

    def comparable(p: dict[str, Any]) -> str:
        return config_hash({k: v for k, v in p.items() if k not in _RESUMABLE_CHANGES})

    if state.get("seed") != seed or comparable(state.get("params", {})) != comparable(params):
        reason = "it was written with another seed or train config"
    elif state.get("inputs_fingerprint") != fingerprint:
        reason = "the input datasets or weights changed since"
    elif int(state["step"]) >= max_steps:
        reason = f"its run finished (step {state['step']} ≥ max_steps {max_steps})"
    else:
        return path, state
    log.warning("not resuming from %s: %s; starting over", path, reason)
    for stale in ckpt_dir.iterdir() if delete_stale else []:
        if _CKPT_RE.match(stale.name):
            stale.unlink()
    return None


def restore_checkpoint(state: dict[str, Any], *, model: nn.Module, optimizer: torch.optim.Optimizer,
                       scheduler: torch.optim.lr_scheduler.LRScheduler) -> tuple[int, float]:
    """Load a checkpoint's contents into model, optimiser, scheduler and the RNGs; returns (step, elapsed s)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return int(state["step"]), float(state["elapsed_s"])


def save_model(path: Path, model: nn.Module, *, params: dict[str, Any], seed: int, step: int, n_params: int,
               extra: dict[str, Any] | None = None) -> None:
    """model.pt: what colliderflow.models.registry.load_trained needs to rebuild the model, and no more."""
    name = params.get("model", "mlpf")
    config = model.config
    normaliser = getattr(model, "normaliser", None)
    saved = {
        "format_version": MODEL_FORMAT_VERSION,
        "model": name,
        "model_config": asdict(config) if hasattr(config, "__dataclass_fields__") else dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "normalisation": normaliser.statistics().to_dict() if normaliser is not None else None,
        "param_count": n_params,
        "step": step,
        "seed": seed,
        "train_params": params,
        **(extra or {}),  # task, and for taggers the label list (class index → jet_label)
    }
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)

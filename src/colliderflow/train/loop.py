"""Train a model: one entry point, `train()`, and one loop for every model.

What differs between models sits behind a small task interface (`Task`): how to open the data, collate
a batch, feed it to the model and score it. Two tasks exist: "pf" (MLPF on the `train` split of TFDS
datasets, per-element losses) and "tagging" (ParT or PELICAN on JetClass-II Parquet shards, one
cross-entropy over the classes of params["labels"] per jet). Read top to bottom, the loop is:

    open data (task) ─▶ join the torchrun job if any ─▶ seed everything ─▶ build model (+ fit the feature normalisation) ─▶ AdamW, warm-up+cosine
      ─▶ resume from the newest readable checkpoint in output_dir/checkpoints if it is an unfinished run
         of the same config and seed (otherwise start over, see checkpoint.resumable_checkpoint)
      ─▶ for each step: batch (sampler in this process, reading in DataLoader workers if num_workers)
           ─▶ forward ─▶ loss ─▶ backward ─▶ clip ─▶ step
           every log_every steps: a "train" line in metrics.jsonl
           every eval_every steps (and at the end): validation loss, a "val" line
           every checkpoint_every steps (and at the end): output_dir/checkpoints/ckpt_<step>.pt
           on SIGUSR1 / SIGTERM: a checkpoint now, then exit 75 so that the retry resumes (preemption.py)
      ─▶ output_dir/model.pt, output_dir/provenance.json

Resuming is exact on CPU: the batch order is a pure function of (seed, step) (sampling.EpochBatchSampler),
and a checkpoint holds everything else that evolves — weights, optimiser and scheduler state, and the
torch / numpy / python RNG states (dropout draws from torch's). Two runs with the same seed give the
same weights bit for bit on CPU; on CUDA, bf16 autocast and the kernels make them only close.

Data parallel: under torchrun (RANK / WORLD_SIZE set) each process takes a disjoint slice of every
global batch (batch_size is the global size; a set larger than one shuffle window is split by window, so
ranks read disjoint shards), DDP averages gradients (gloo on CPU, NCCL on GPU), and
only rank 0 writes metrics, checkpoints, the model and provenance; every rank resumes from the same
checkpoint. With dropout 0 a DDP run reproduces the single-process run of the same global batch up to
float rounding (the gradient mean is summed in another order); dropout masks are drawn from the same
seeded stream on every rank.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from colliderflow.models.mlpf import count_parameters
from colliderflow.models.registry import MODEL_FILE, build_model
from colliderflow.params import stage_params
from colliderflow.provenance import provenance_record, write_provenance
from colliderflow.train import distributed
from colliderflow.train.checkpoint import (
    CHECKPOINT_DIR,
    input_fingerprint,
    restore_checkpoint,
    resumable_checkpoint,
    save_checkpoint,
    save_model,
)
from colliderflow.train.config import TrainConfig, train_params
from colliderflow.train.distributed import DistInfo
from colliderflow.train.losses import LossConfig
from colliderflow.train.metrics import (
    METRICS_FILE,
    append_metrics,
    last_metric,
    read_metric_lines,
    restore_metrics,
)
from colliderflow.train.preemption import Preempted, preemption_signals
from colliderflow.train.item_weights import ItemWeights
from colliderflow.train.sampling import EpochBatchSampler, read_item_weights
from colliderflow.train.tasks import Task, make_loader, make_task

log = logging.getLogger(__name__)


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
    cfg = train_params(params)
    loss_cfg = stage_params(LossConfig, params.get("loss"), where=f"{cfg.section}.loss")
    output_dir = Path(output_dir)

    task = make_task(cfg, loss_cfg, paths, [Path(p) for p in val_data] if val_data else None)
    if len(task.val_set) == 0:
        log.warning("no validation data in %s: validation loss is skipped", [str(p) for p in paths])
    sampling_weights = None
    if weights is not None:
        sampling_weights = read_item_weights(Path(weights), task.weight_keys())

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
           sampling_weights: ItemWeights | None, output_dir: Path, inputs: list[Path],
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
    if resume.state is None:
        task.prepare(model)
    model.to(device)
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, cfg.max_steps))
    n_params = count_parameters(model)
    log.info("%s (%s): %d trainable parameters, %d train / %d val items, device %s, rank %d of %d",
             cfg.model, task.name, n_params, len(task.train_set), len(task.val_set), device,
             dist_info.rank, dist_info.world_size)

    step, elapsed_before, history = 0, 0.0, []
    if resume.state is not None:
        step, elapsed_before = restore_checkpoint(resume.state, model=model, optimizer=optimizer, scheduler=scheduler)
        history = list(resume.state.get("metrics", []))
        log.info("resumed from %s at step %d", resume.path, step)
    if main:
        # The log up to the checkpoint comes back from the checkpoint (the workflow manager deletes a
        # failed attempt's outputs); lines of a crashed attempt past its checkpoint are dropped.
        restore_metrics(metrics_path, history, after_step=step)
        for bad in resume.corrupt:
            append_metrics(metrics_path, {"step": step, "split": "event", "event": "corrupt_checkpoint", **bad})
        if resume.state is not None:
            append_metrics(metrics_path, {"step": step, "split": "event", "event": "resumed",
                                          "checkpoint": str(resume.path)})
        elif resume.started_over:
            append_metrics(metrics_path, {"step": 0, "split": "event", "event": "started_over",
                                          "reason": resume.started_over})
    distributed.barrier(dist_info)  # every rank has read the checkpoint before rank 0 writes new ones
    net = distributed.wrap(model, dist_info, device)  # what the loop runs; `model` is what is saved

    sampler = EpochBatchSampler(len(task.train_set), batch_size=cfg.batch_size, seed=seed, weights=sampling_weights,
                                start_step=step, num_steps=max(0, cfg.max_steps - step),
                                lengths=task.lengths() if cfg.bucket_batches > 1 else None,
                                bucket_batches=cfg.bucket_batches, rank=dist_info.rank,
                                world_size=dist_info.world_size, block_ends=task.block_ends(),
                                buffer_items=cfg.shuffle_buffer)
    loader = make_loader(task, sampler, num_workers=cfg.num_workers, device=device, seed=seed)

    # ---- the loop
    t_start = time.perf_counter()
    window = _Window()
    val_losses: dict[str, float] | None = None
    net.train()
    bar = tqdm(total=cfg.max_steps, initial=step, disable=not (main and sys.stderr.isatty()), desc="train")
    with bar, preemption_signals() as stop:
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
            preempted = distributed.any_over_ranks(stop.is_set, dist_info, device)
            elapsed = elapsed_before + time.perf_counter() - t_start
            if step % cfg.log_every == 0 or done or preempted:
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
            path = ckpt_dir / f"ckpt_{step}.pt"
            if preempted and main:
                append_metrics(metrics_path, {"step": step, "split": "event", "event": "preempted",
                                              "signal": stop.signum, "checkpoint": str(path)})
            if (step % cfg.checkpoint_every == 0 or done or preempted) and main:
                save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                                elapsed_s=elapsed, params=params, seed=seed, fingerprint=fingerprint,
                                sampler=sampler.state_dict(step), metrics=read_metric_lines(metrics_path))
            if preempted:
                distributed.barrier(dist_info)  # the checkpoint exists before any rank leaves
                raise Preempted(stop.signum or 0, step, path if main else None)
            t_prev = time.perf_counter()

    # ---- final outputs (rank 0)
    summary = {
        "step": step,
        "param_count": n_params,
        "world_size": dist_info.world_size,
        "final_train_loss": last_metric(metrics_path, "train") if main else None,
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

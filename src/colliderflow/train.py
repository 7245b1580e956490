"""Train a model on the `train` split of one or more TFDS datasets: one entry point, `train()`.

Read top to bottom, the loop is:

    open data ─▶ seed everything ─▶ build model (+ fit the feature normalisation) ─▶ AdamW, warm-up+cosine
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

Single process for now. For DDP: wrap the model after `.to(device)`, give the sampler the rank and world
size (it already yields the same epoch order on every rank), and write files from rank 0 only.
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

from colliderflow.config import config_hash
from colliderflow.data import (
    Batch,
    EpochBatchSampler,
    Event,
    collate_events,
    event_keys,
    fit_normalisation,
    open_splits,
    read_sampling_weights,
)
from colliderflow.io.atomic import atomic_path, write_text_atomic
from colliderflow.losses import LossConfig, mlpf_loss
from colliderflow.models.mlpf import count_parameters
from colliderflow.models.registry import MODEL_FILE, MODEL_FORMAT_VERSION, MODELS, build_model
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
        return config


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------


def train(*, tfds_dirs: list[Path], weights: Path | None, params: dict[str, Any], seed: int,
          output_dir: Path) -> dict[str, Any]:
    """Train the model params["model"] and write output_dir/{model.pt, provenance.json, metrics.jsonl,
    checkpoints/}. Continues an unfinished run of the same config from its newest checkpoint.

    tfds_dirs: TFDS dataset directories; their `train` splits are concatenated, likewise `val`.
    weights: optional Parquet of per-event sampling weights (sample, event_id, weight).
    params: the config's `train` section. Returns a summary (steps, losses, parameter count, paths).
    """
    cfg = TrainConfig.from_params(params)
    loss_cfg = LossConfig.from_dict(params.get("loss"))
    output_dir = Path(output_dir)

    # ---- data: [n_train], [n_val] events; weights [n_train]
    train_events = open_splits(tfds_dirs, "train")
    val_events = open_splits(tfds_dirs, "val", allow_empty=True)
    if len(val_events) == 0:
        log.warning("no validation events in %s: validation loss is skipped", [str(d) for d in tfds_dirs])
    sampling_weights = None
    if weights is not None:
        sampling_weights = read_sampling_weights(Path(weights), event_keys(train_events))

    inputs = [Path(d) for d in tfds_dirs] + ([Path(weights)] if weights is not None else [])
    device = pick_device(cfg.device)
    with _torch_settings(threads=cfg.threads):
        return _train(cfg, loss_cfg, params=params, seed=seed, device=device, train_events=train_events,
                      val_events=val_events, sampling_weights=sampling_weights, output_dir=output_dir,
                      inputs=inputs)


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


def _train(cfg: TrainConfig, loss_cfg: LossConfig, *, params: dict[str, Any], seed: int, device: torch.device,
           train_events: Sequence[Event], val_events: Sequence[Event], sampling_weights: torch.Tensor | None,
           output_dir: Path, inputs: list[Path]) -> dict[str, Any]:
    """The body of `train()`, once inputs are checked: model, loop, outputs."""
    ckpt_dir = output_dir / CHECKPOINT_DIR
    metrics_path = output_dir / METRICS_FILE
    fingerprint = input_fingerprint(inputs)
    # Same seed → same initial weights, batch order and dropout masks.
    seed_everything(seed)

    # ---- model and optimiser
    model = build_model(params)
    resume = resumable_checkpoint(ckpt_dir, params=params, seed=seed, max_steps=cfg.max_steps,
                                  fingerprint=fingerprint)
    if resume is None and hasattr(model, "normaliser"):
        model.normaliser.set_statistics(fit_normalisation(train_events))
    model.to(device)
    optimizer = make_optimizer(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.warmup_steps, cfg.max_steps))
    n_params = count_parameters(model)
    log.info("%s: %d trainable parameters, %d train / %d val events, device %s",
             cfg.model, n_params, len(train_events), len(val_events), device)

    step, elapsed_before = 0, 0.0
    if resume is not None:
        path, state = resume
        step, elapsed_before = restore_checkpoint(state, model=model, optimizer=optimizer, scheduler=scheduler)
        log.info("resumed from %s at step %d", path, step)
    truncate_metrics(metrics_path, after_step=step)  # a crashed run may have logged past its checkpoint

    sampler = EpochBatchSampler(len(train_events), batch_size=cfg.batch_size, seed=seed, weights=sampling_weights,
                                start_step=step, num_steps=max(0, cfg.max_steps - step))
    loader = torch.utils.data.DataLoader(
        train_events,  # type: ignore[arg-type]  # any random-access sequence of events
        batch_sampler=sampler,
        collate_fn=collate_events,
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
    model.train()
    with tqdm(total=cfg.max_steps, initial=step, disable=not sys.stderr.isatty(), desc="train") as bar:
        t_prev = time.perf_counter()  # throughput counts loading + training, not evaluation or checkpoints
        for batch in loader:
            batch = batch.to(device)
            with autocast(device):
                out = model(batch.X, batch.mask)  # per-element outputs [B, N, …]
                losses = mlpf_loss(out, batch.X, batch.ytarget, batch.mask, loss_cfg)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            window.add(losses, len(batch), seconds=time.perf_counter() - t_prev)
            bar.update(1)

            done = step == cfg.max_steps
            elapsed = elapsed_before + time.perf_counter() - t_start
            if step % cfg.log_every == 0 or done:
                record = window.flush()
                append_metrics(metrics_path, {"step": step, "split": "train", **record,
                                              "lr": scheduler.get_last_lr()[0], "elapsed_s": elapsed})
                bar.set_postfix(loss=f"{record['loss']:.3f}")
            if (step % cfg.eval_every == 0 or done) and len(val_events):
                val_losses = evaluate_loss(model, val_events, batch_size=cfg.batch_size, loss_cfg=loss_cfg,
                                           device=device, max_events=cfg.eval_max_events)
                append_metrics(metrics_path, {"step": step, "split": "val", **val_losses,
                                              "lr": scheduler.get_last_lr()[0], "elapsed_s": elapsed})
                model.train()
            if step % cfg.checkpoint_every == 0 or done:
                save_checkpoint(ckpt_dir / f"ckpt_{step}.pt", model=model, optimizer=optimizer, scheduler=scheduler,
                                step=step, elapsed_s=elapsed, params=params, seed=seed, fingerprint=fingerprint)
            t_prev = time.perf_counter()

    # ---- final outputs
    save_model(output_dir / MODEL_FILE, model, params=params, seed=seed, step=step, n_params=n_params)
    summary = {
        "step": step,
        "param_count": n_params,
        "final_train_loss": _last_metric(metrics_path, "train"),
        "final_val_loss": val_losses["loss"] if val_losses else None,
        "model": str(output_dir / MODEL_FILE),
        "metrics": str(metrics_path),
    }
    write_provenance(output_dir / "provenance.json", provenance_record(
        stage="train", config=params, seeds={"seed": seed}, inputs=[str(p) for p in inputs],
        extra={"param_count": n_params, "steps": step, "n_train_events": len(train_events),
               "n_val_events": len(val_events), "final_val_loss": summary["final_val_loss"]},
    ))
    log.info("trained %d steps; model written to %s", step, summary["model"])
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
def evaluate_loss(model: nn.Module, events: Sequence[Event], *, batch_size: int, loss_cfg: LossConfig,
                  device: torch.device, max_events: int | None = None) -> dict[str, float]:
    """Loss terms over (the first `max_events` of) `events` in a fixed order, each term averaged over
    batches weighted by their number of events; plus the evaluation throughput."""
    model.eval()
    n = len(events) if max_events is None else min(len(events), max_events)
    getitems = getattr(events, "__getitems__", None)
    sums: dict[str, float] = {}
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        idx = list(range(start, min(start + batch_size, n)))
        batch: Batch = collate_events(getitems(idx) if getitems else [events[i] for i in idx]).to(device)
        with autocast(device):
            losses = mlpf_loss(model(batch.X, batch.mask), batch.X, batch.ytarget, batch.mask, loss_cfg)
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
                         fingerprint: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in `ckpt_dir` and its contents, if this run should continue from it.

    It should when it is unfinished (step < max_steps) and was written with the same seed, the same
    input files (`input_fingerprint`) and the same train config, apart from the keys that only say how
    long to train and how often to log. Anything else — a finished run being redone (the code changed),
    another config, seed or dataset — starts over: the stale
    checkpoints are deleted so that they cannot be mistaken for this run's later. An unreadable
    checkpoint is an error naming it (they are written atomically, so it means a damaged disk).
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
    for stale in ckpt_dir.iterdir():
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


def save_model(path: Path, model: nn.Module, *, params: dict[str, Any], seed: int, step: int, n_params: int) -> None:
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
    }
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)

"""Checkpoints (everything needed to continue exactly) and the final model.pt.

A checkpoint holds the weights, the optimiser and scheduler state, the sampler's position and the torch /
numpy / python RNG states; `resumable_checkpoint` decides whether a run continues from the newest one.
"""

from __future__ import annotations

import logging
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderflow.config import config_hash
from colliderflow.io.atomic import atomic_path
from colliderflow.models.registry import MODEL_FORMAT_VERSION

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")
# Keys that may change between a checkpoint and its resumption: they set how long and how often, not what.
# (max_steps is not one of them: the learning-rate schedule depends on it, see resumable_checkpoint.)
_RESUMABLE_CHANGES = frozenset({"checkpoint_every", "eval_every", "log_every", "device", "threads", "num_workers"})


def checkpoints_newest_first(ckpt_dir: Path) -> list[Path]:
    """The checkpoints in `ckpt_dir`, highest step first (temporary and `.corrupt` files are ignored)."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def newest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint with the highest step in `ckpt_dir`, or None."""
    found = checkpoints_newest_first(ckpt_dir)
    return found[0] if found else None


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
                    params: dict[str, Any], seed: int, fingerprint: str, sampler: dict[str, Any] | None = None,
                    metrics: list[str] | None = None) -> None:
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
        # The batch order is a function of (seed, step) (sampling.EpochBatchSampler.state_dict); stored
        # for checking, recomputed on resume.
        "sampler": sampler if sampler is not None else {"seed": seed, "step": step},
        # metrics.jsonl up to this step: a retried job gets its history back even if the workflow
        # manager deleted the failed attempt's outputs.
        "metrics": list(metrics or []),
        "rng": _rng_state(),
    }
    _save_deterministic(state, path)


def _save_deterministic(obj: Any, path: Path) -> None:
    """torch.save through an open file, written atomically.

    Given a path, torch names the zip archive's top folder after the file, and the atomic write's file has a
    random temporary name: the same model would then differ in bytes from run to run. Through a file object
    the folder is always `archive`, so the same config and seeds give the same bytes.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        torch.save(obj, stream)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents; ValueError naming the file when it cannot be read (truncated, damaged)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise ValueError(f"{path}: unreadable checkpoint: {exc}") from exc
    if not isinstance(state, dict) or not {"step", "model", "optimizer", "scheduler", "rng"} <= set(state):
        raise ValueError(f"{path}: not a training checkpoint (keys missing)")
    return state


@dataclass
class ResumeDecision:
    """What `resumable_checkpoint` found: the checkpoint to continue from (or None) and what it passed over."""

    path: Path | None = None
    state: dict[str, Any] | None = None
    corrupt: list[dict[str, str]] = field(default_factory=list)  # {"path", "error", "moved_to"} each
    started_over: str | None = None  # why a run starts over although checkpoints exist


def resumable_checkpoint(ckpt_dir: Path, *, params: dict[str, Any], seed: int, max_steps: int,
                         fingerprint: str, delete_stale: bool = True) -> ResumeDecision:
    """The newest valid checkpoint in `ckpt_dir` and its contents, if this run should continue from it.

    A checkpoint that cannot be read (a disk filled up or a node died mid-write on a file system where
    rename is not atomic) is reported — logged, moved aside to `<name>.corrupt` and returned in
    `corrupt` for the metrics — and the previous one is tried; only when none is readable does the run
    start over, and it says so.

    The run continues when the newest readable checkpoint is unfinished (step < max_steps) and was written
    with the same seed, the same input files (`input_fingerprint`) and the same train config apart from
    the keys that only say how often to log, evaluate and checkpoint, and where to run. Anything else
    starts over, and the stale checkpoints are deleted so that they cannot be mistaken for this run's later:
    a finished run being redone (the code changed), another config, seed or dataset — and another
    `max_steps`: the learning-rate schedule depends on it, so a run whose max_steps was raised after it
    finished retrains from the start, and gives the same weights as a fresh run of the new config (rather
    than climbing back up a restarted cosine). Under DDP every rank decides (the same way, from the same
    files) but only rank 0 moves or deletes files.
    """
    decision = ResumeDecision()
    for path in checkpoints_newest_first(ckpt_dir):
        try:
            state = load_checkpoint(path)
        except ValueError as exc:
            moved = path.with_name(path.name + ".corrupt")
            log.warning("%s; trying the previous checkpoint", exc)
            if delete_stale:
                path.replace(moved)
            decision.corrupt.append({"path": str(path), "error": str(exc), "moved_to": str(moved)})
            continue
        decision.path, decision.state = path, state
        break
    if decision.path is None:
        if decision.corrupt:
            decision.started_over = "no readable checkpoint is left"
            log.warning("%s: no readable checkpoint is left; training starts over", ckpt_dir)
        return decision
    path, state = decision.path, decision.state
    assert state is not None

    def comparable(p: dict[str, Any]) -> str:
        return config_hash({k: v for k, v in p.items() if k not in _RESUMABLE_CHANGES})

    if state.get("seed") != seed or comparable(state.get("params", {})) != comparable(params):
        reason = "it was written with another seed or train config"
    elif state.get("inputs_fingerprint") != fingerprint:
        reason = "the input datasets or weights changed since"
    elif int(state["step"]) >= max_steps:
        reason = f"its run finished (step {state['step']} ≥ max_steps {max_steps})"
    else:
        log.info("resuming from %s at step %d", path, int(state["step"]))
        return decision
    log.warning("not resuming from %s: %s; starting over", path, reason)
    for stale in ckpt_dir.iterdir() if delete_stale else []:
        if _CKPT_RE.match(stale.name) or stale.name.endswith(".pt.corrupt"):
            stale.unlink()
    return ResumeDecision(corrupt=decision.corrupt, started_over=reason)


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
    _save_deterministic(saved, path)

"""Models by name: build one from the `train` config section, or load a trained one from its folder.

Known models: mlpf (particle flow on detector elements), part and pelican (jet taggers).

`model.pt` is the one file a trained model needs (written by colliderflow.train): the model name, its
config section, the state_dict (which includes the feature normalisation), the normalisation again in
plain form for readers, and the parameter count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colliderflow.models.configs import MODEL_INPUTS, MODEL_TASKS, TASK_SECTIONS, config_section
from colliderflow.models.mlpf import MLPF, MLPFConfig
from colliderflow.models.part import ParT, ParTConfig
from colliderflow.models.pelican import PELICAN, PELICANConfig
from colliderflow.params import stage_params

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
MODEL_FORMAT_VERSION = 1


def _build_mlpf(section: dict[str, Any], where: str) -> nn.Module:
    return MLPF(stage_params(MLPFConfig, section, where=where))


def _build_part(section: dict[str, Any], where: str) -> nn.Module:
    return ParT(stage_params(ParTConfig, section, where=where))


def _build_pelican(section: dict[str, Any], where: str) -> nn.Module:
    return PELICAN(stage_params(PELICANConfig, section, where=where))


# The names, inputs, tasks and sections live with the config dataclasses (models.configs, no torch);
# importers of this module still find them here.
__all__ = ["MODELS", "MODEL_FILE", "MODEL_INPUTS", "MODEL_TASKS", "TASK_SECTIONS", "build_model", "config_section",
           "load_trained"]

# name → builder taking the model's own config section (params[name]) and its key path for errors.
MODELS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "mlpf": _build_mlpf,
    "part": _build_part,
    "pelican": _build_pelican,
}

def build_model(params: dict[str, Any]) -> nn.Module:
    """A freshly initialised model from the `train` section: params["model"] names it and
    params[<name>] holds its sizes (absent → the model's defaults)."""
    name = params.get("model", "mlpf")
    if name not in MODELS:
        raise ValueError(f"train.model: unknown model {name!r}; known: {sorted(MODELS)}")
    model = MODELS[name](params.get(name) or {}, f"{config_section(name)}.{name}")
    log.info("%s: %d trainable parameters", name, sum(p.numel() for p in model.parameters() if p.requires_grad))
    return model


def load_trained(model_dir: Path) -> tuple[nn.Module, dict[str, Any]]:
    """The trained model in `model_dir` (eval mode, on CPU) and its metadata (model.pt minus weights)."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise ValueError(f"{path}: no trained model here")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise ValueError(f"{path}: not a readable model file: {exc}") from exc
    if not isinstance(saved, dict) or saved.get("format_version") != MODEL_FORMAT_VERSION:
        raise ValueError(f"{path}: not a colliderflow model file (format_version {MODEL_FORMAT_VERSION} expected)")
    name = saved["model"]
    model = build_model({"model": name, name: saved["model_config"]})
    try:
        model.load_state_dict(saved["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the stored model config: {exc}") from exc
    model.eval()
    meta = {k: v for k, v in saved.items() if k != "state_dict"}
    return model, meta

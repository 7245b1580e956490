"""Which device a job computes on, and in which precision it runs inference.

A device name in the config or on the command line is one of: `auto` (the first CUDA device when there is
one, else the CPU), `cpu`, `cuda` (the current CUDA device; under SLURM the one the job was given) or
`cuda:N`. Asking for CUDA where there is none is an error, never a silent fall-back to the CPU: a job that
was given a GPU must not spend hours on the CPU unnoticed.

Inference precision is `fp32` (the default: the same bytes on every run of the same machine, and a CPU run
identical to the CPU runs before devices were configurable) or `bf16` (autocast: faster on GPUs with bf16
tensor cores; the models keep their numerically sensitive steps in float32, see models.precision).

This module imports torch only inside its functions: the Snakefile uses `uses_gpu` when it is parsed.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
PRECISIONS = ("fp32", "bf16")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device_name(name: object, *, where: str) -> str:
    """`name` if it is a valid device name; ValueError naming `where` (a config key or option) otherwise."""
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise ValueError(f"{where}: expected {DEVICE_CHOICES}, got {name!r}")
    return name


def uses_gpu(name: str) -> bool:
    """Whether a job with this device setting may compute on a GPU (and so should be given one): all but cpu."""
    return name != "cpu"


def resolve_device(name: str, *, where: str) -> torch.device:
    """The torch.device for a device name; ValueError naming `where` for a bad name or a CUDA device that
    this machine does not have."""
    import torch

    check_device_name(name, where=where)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"{where}: {name} requested but no CUDA device is available")
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        visible = torch.cuda.device_count()
        raise ValueError(f"{where}: {name} requested but only {visible} CUDA device(s) are visible")
    return device


def check_precision(precision: object, *, where: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"{where}: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
    return str(precision)


def inference_autocast(device: torch.device, precision: str, *, where: str = "precision"
                       ) -> contextlib.AbstractContextManager[Any]:
    """The block inference runs in: nothing for fp32, bf16 autocast on `device`'s type for bf16."""
    import torch

    if check_precision(precision, where=where) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

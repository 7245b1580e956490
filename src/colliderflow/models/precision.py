"""Float32 islands for mixed-precision runs: the numerically sensitive steps of the models, kept out of autocast.

Under `torch.autocast` (bf16 on a GPU) every matmul, einsum and linear layer runs in bfloat16, which keeps
8 significant bits. That is fine for the bulk of a network, whose weights learn around the rounding, but
not for the physics computed before it: a Minkowski product E_i E_j − p⃗_i·p⃗_j of two collinear 100 GeV
constituents is a difference of two numbers near 10⁴ GeV² whose true value is ~20 GeV², so in bf16 it comes
out as 0 or even negative. Pair features (ΔR, kT, z, m²) and the logs and exps of momenta cancel the same
way. The functions here run such a step with autocast switched off and its low-precision inputs raised to
float32, so that its result does not depend on whether (or on which device) the caller enabled autocast.

Float64 inputs stay float64 (the invariance tests run the models in double precision), and float32 inputs
are passed through untouched: without autocast the models compute exactly what they computed before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)

F = TypeVar("F", bound=Callable[..., Any])


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype a sensitive step computes in: float32 for a bf16/fp16 tensor, the tensor's own otherwise."""
    return torch.float32 if t.dtype in LOW_PRECISION else t.dtype


def upcast(t: torch.Tensor) -> torch.Tensor:
    """`t` as float32 when it is bf16/fp16; any other tensor (float32, float64, bool, int) unchanged."""
    return t.float() if t.dtype in LOW_PRECISION else t


def autocast_off(device_type: str) -> torch.autocast:
    """A block in which autocast is disabled for `device_type` ("cpu", "cuda", ...); nests inside an enabled one."""
    return torch.autocast(device_type=device_type, enabled=False)


def full_precision(fn: F) -> F:
    """Decorator: run `fn` with autocast disabled on its tensors' device and its bf16/fp16 tensor arguments
    raised to float32. Results come back in float32 (or float64); the caller's autocast resumes after."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        device_type = tensors[0].device.type if tensors else "cpu"
        args = tuple(upcast(a) if isinstance(a, torch.Tensor) else a for a in args)
        kwargs = {k: upcast(v) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
        with autocast_off(device_type):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

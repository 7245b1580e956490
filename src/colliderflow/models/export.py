"""A trained model → ONNX, checked against torch with ONNX Runtime before the file counts as written.

The graph takes the model's inputs (registry.MODEL_INPUTS: MLPF X and mask; ParT features, p4, mask;
PELICAN p4, mask) with dynamic batch and length axes, so one file serves any batch size and any number
of elements or constituents. After export the file is run by ONNX Runtime on fresh random inputs of
another batch size and length than the tracing ones, and compared with the torch model: a difference
above `tolerance` is an error and no file is left behind. The legacy TorchScript exporter is used
because the torch.export one needs onnxscript, which the environment does not carry.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderflow.io.atomic import atomic_path
from colliderflow.models.registry import MODEL_INPUTS, load_trained

log = logging.getLogger(__name__)

OPSET = 17
TOLERANCE = 1e-4


def example_inputs(model_name: str, model: nn.Module, *, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs in the layout `model_name` takes, with some padding in all but the first row."""
    gen = torch.Generator().manual_seed(seed)
    n_real = torch.randint(1, length + 1, (batch,), generator=gen)
    n_real[0] = length
    mask = torch.arange(length)[None, :] < n_real[:, None]  # [B, N]
    if model_name == "mlpf":
        from colliderflow.synthetic import synthetic_events

        events = synthetic_events(batch, seed=seed, min_elements=1, max_elements=length)
        events[0] = synthetic_events(1, seed=seed + 1, min_elements=length, max_elements=length)[0]
        n_max = max(len(ev["X"]) for ev in events)
        X = torch.zeros(batch, n_max, events[0]["X"].shape[1])  # [B, N, 17], zero padding
        for i, ev in enumerate(events):
            X[i, : len(ev["X"])] = torch.from_numpy(ev["X"])
        n_real = torch.tensor([len(ev["X"]) for ev in events])
        return {"X": X, "mask": torch.arange(n_max)[None, :] < n_real[:, None]}
    # Physical constituents: pT 1–100 GeV near one axis, massless.
    pt = torch.exp(torch.rand(batch, length, generator=gen) * 4.6)
    eta = torch.randn(batch, length, generator=gen) * 0.3
    phi = torch.randn(batch, length, generator=gen) * 0.3
    p4 = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], dim=-1)
    p4 = torch.where(mask[..., None], p4, 0.0)  # [B, N, 4]
    out = {"p4": p4, "mask": mask}
    if "features" in MODEL_INPUTS[model_name]:
        n_features = model.config.num_features
        out["features"] = torch.where(mask[..., None], torch.randn(batch, length, n_features, generator=gen), 0.0)
    return out


def _flat_outputs(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, tuple) else [out]


def export_onnx(model_dir: Path, output: Path, *, opset: int = OPSET, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Export model_dir/model.pt to `output` and check it; returns the check's summary (max abs diff…)."""
    import onnxruntime as ort

    model, meta = load_trained(Path(model_dir))
    name = meta["model"]
    input_names = list(MODEL_INPUTS[name])
    trace = example_inputs(name, model, batch=2, length=16, seed=0)
    args = tuple(trace[k] for k in input_names)
    with torch.no_grad():
        n_outputs = len(_flat_outputs(model(*args)))
    output_names = [f"output_{i}" for i in range(n_outputs)]
    axes = {k: {0: "batch", 1: "length"} for k in input_names}
    axes.update({k: {0: "batch"} for k in output_names})
    if name == "mlpf":
        axes.update({k: {0: "batch", 1: "length"} for k in output_names})
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(model, args, str(tmp), input_names=input_names, output_names=output_names,
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        check = example_inputs(name, model, batch=3, length=23, seed=1)  # other shapes than the trace
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {k: check[k].numpy() for k in input_names})
        with torch.no_grad():
            want = [t.numpy() for t in _flat_outputs(model(*(check[k] for k in input_names)))]
        diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True))
        if not diff < tolerance:
            raise ValueError(f"{output}: ONNX Runtime differs from torch by {diff:.3g} (tolerance {tolerance:g})")
    log.info("exported %s to %s; ONNX Runtime matches torch to %.2g", name, output, diff)
    return {"model": name, "output": str(output), "inputs": input_names, "max_abs_diff": diff, "opset": opset}

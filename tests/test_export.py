"""ONNX export of each model, checked against torch with ONNX Runtime on other batch sizes and lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from colliderflow.cli import main
from colliderflow.models.export import example_inputs, export_onnx
from colliderflow.models import build_model
from colliderflow.models.registry import MODEL_INPUTS
from colliderflow.train import save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {
    "mlpf": {"embedding_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32},
    "part": {"num_classes": 5, "embedding_dim": 16, "embed_hidden": 16, "num_heads": 2, "num_layers": 2,
             "num_cls_layers": 1, "ff_dim": 16, "pair_hidden": 8},
    "pelican": {"num_classes": 5, "embed_channels": 4, "hidden_channels": 8, "num_layers": 2, "readout_hidden": 16},
}


def _saved_model(tmp_path: Path, name: str) -> Path:
    torch.manual_seed(0)
    params = {"model": name, name: SMALL[name]}
    model = build_model(params).eval()
    save_model(tmp_path / "model.pt", model, params=params, seed=0, step=0, n_params=0)
    return tmp_path


@pytest.mark.parametrize("name", ["mlpf", "part", "pelican"])
def test_export_matches_torch_on_new_shapes(tmp_path: Path, name: str) -> None:
    model_dir = _saved_model(tmp_path, name)
    summary = export_onnx(model_dir, tmp_path / "model.onnx")
    assert summary["max_abs_diff"] < 1e-4 and summary["inputs"] == list(MODEL_INPUTS[name])

    import onnxruntime as ort

    # A third shape, run here independently of the built-in check, with outputs that depend on the inputs.
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    model = build_model({"model": name, name: SMALL[name]})
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"])
    model.eval()
    for batch, length, seed in [(1, 5, 7), (5, 31, 8)]:
        x = example_inputs(name, model, batch=batch, length=length, seed=seed)
        got = session.run(None, {k: x[k].numpy() for k in MODEL_INPUTS[name]})
        with torch.no_grad():
            out = model(*(x[k] for k in MODEL_INPUTS[name]))
        want = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
        assert got[0].shape[0] == batch
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=0)


def test_cli_export(tmp_path: Path) -> None:
    model_dir = _saved_model(tmp_path, "pelican")
    assert main(["export", "--model-dir", str(model_dir), "-o", str(tmp_path / "out" / "p.onnx")]) == 0
    assert (tmp_path / "out" / "p.onnx").stat().st_size > 0
    assert main(["export", "--model-dir", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.onnx")]) == 2

"""predict(): the predictions Parquet, its columns and shapes, and its errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from colliderflow.models.normalise import fit_normalisation
from colliderflow.train.data import synthetic_events
from colliderflow.evaluate.pf import predict as predict_mod
from colliderflow.evaluate.pf.predict import predict
from colliderflow.io.parquet import row_list_type
from colliderflow.models import build_model, count_parameters
from colliderflow.models.mlpf import decode_particles
from colliderflow.schema import PREDICTION_COLUMNS
from colliderflow.train import save_model

PARAMS = {"model": "mlpf", "mlpf": {"embedding_dim": 16, "num_heads": 2, "num_layers": 1, "ff_dim": 32, "dropout": 0.0}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def datasets(memory_tfds) -> dict[Path, dict[str, list]]:
    for i, sample in enumerate(["ttbar", "qq"]):
        d = memory_tfds.add(
            sample, test=synthetic_events(5 + 70 * i, seed=i, sample=sample, min_elements=3, max_elements=25)
        )
    # an event with no element at all must still get its (empty) row
    test = memory_tfds.splits[d]["test"]
    test[0] = dict(test[0], X=np.zeros((0, 17), np.float32), ytarget=np.zeros((0, 8), np.float32),
                   ycand=np.zeros((0, 8), np.float32))
    return memory_tfds.splits


def _model_dir(tmp_path: Path, events: list[dict], *, force_class: int | None = None,
               random_heads: bool = False) -> Path:
    """A saved, untrained model; force_class makes every element predict that class; random_heads gives the
    regression heads non-zero last layers (they start at zero: the elements' own kinematics)."""
    torch.manual_seed(0)
    model = build_model(PARAMS)
    model.normaliser.set_statistics(fit_normalisation(events))
    if random_heads:
        for head in (model.head_pt, model.head_eta, model.head_phi, model.head_energy):
            torch.nn.init.normal_(head.net[-1].weight, std=0.1)
    if force_class is not None:
        with torch.no_grad():
            last = model.head_cls.net[-1]
            last.weight.zero_()
            last.bias.fill_(-10.0)
            last.bias[force_class] = 10.0
    out = tmp_path / f"model_{force_class}"
    save_model(out / "model.pt", model, params=PARAMS, seed=0, step=0, n_params=count_parameters(model))
    return out


def _ypred(path: Path) -> np.ndarray:
    """All predicted rows of a predictions file, [n_elements_total, 8]."""
    return np.concatenate([np.asarray(r, np.float32).reshape(-1, 8) for r in pq.read_table(path)["ypred"].to_pylist()])


def _all_events(datasets: dict) -> list[dict]:
    return [ev for d in datasets for ev in datasets[d]["test"]]


def test_columns_shapes_and_order(datasets: dict, tmp_path: Path) -> None:
    events = _all_events(datasets)
    model_dir = _model_dir(tmp_path, events)
    output = tmp_path / "eval" / "predictions.parquet"
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=output)

    table = pq.read_table(output)
    assert table.column_names == list(PREDICTION_COLUMNS)
    assert table.schema.field("ypred").type == row_list_type(8)  # the project's fixed-width row layout
    assert not any(f.nullable for f in table.schema)
    assert table.num_rows == len(events) == 80
    rows = table.to_pylist()
    assert [r["event_id"] for r in rows] == [int(ev["event_id"]) for ev in events]
    assert [r["sample"] for r in rows] == [ev["sample"] for ev in events]
    assert [f.name for f in output.parent.iterdir()] == ["predictions.parquet"]  # no temporary left behind
    for r, ev in zip(rows, events, strict=True):
        n = len(ev["X"])
        assert len(r["ypred"]) == len(r["ytarget"]) == len(r["ycand"]) == n
        assert all(len(row) == 8 for row in r["ypred"])
        np.testing.assert_array_equal(np.asarray(r["ytarget"], np.float32).reshape(n, 8), ev["ytarget"])
        np.testing.assert_array_equal(np.asarray(r["genjets"], np.float32), ev["genjets"])
        assert r["genmet"] == pytest.approx(float(ev["genmet"]))
    assert rows[5]["ypred"] == []  # the empty event


def test_rows_match_the_model_run_by_hand(datasets: dict, tmp_path: Path) -> None:
    events = _all_events(datasets)
    model_dir = _model_dir(tmp_path, events)
    output = tmp_path / "p.parquet"
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=output)
    from colliderflow.models import load_trained

    model, _ = load_trained(model_dir)
    ev = events[3]
    X = torch.from_numpy(ev["X"])[None]
    with torch.no_grad():
        expected = decode_particles(X, model(X))[0].numpy()
    got = np.asarray(pq.read_table(output).slice(3, 1).to_pylist()[0]["ypred"], np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_batches_are_cut_to_a_pair_budget_without_changing_rows(datasets: dict, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's per-pair tables grow as B × N²: a split of large events is predicted in smaller
    batches, and since the model is blind to padding the rows are the same."""
    events = _all_events(datasets)
    model_dir = _model_dir(tmp_path, events)
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=tmp_path / "one.parquet")
    monkeypatch.setattr(predict_mod, "MAX_PAIRS_PER_BATCH", 700)  # a few events of ≤ 25 elements per batch
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=tmp_path / "cut.parquet")
    np.testing.assert_allclose(_ypred(tmp_path / "cut.parquet"), _ypred(tmp_path / "one.parquet"), rtol=1e-5, atol=1e-5)
    batches = predict_mod.pair_limited_batches(events, max_pairs=700)
    assert [ev for b in batches for ev in b] == events and len(batches) > 10
    assert all(len(b) == 1 or len(b) * max(len(ev["X"]) for ev in b) ** 2 <= 700 for b in batches)


def test_none_class_gives_zero_rows(datasets: dict, tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path, _all_events(datasets), force_class=0)
    output = tmp_path / "p.parquet"
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=output)
    assert len(_ypred(output)) > 0 and (_ypred(output) == 0).all()


def test_particle_rows_are_physical(datasets: dict, tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path, _all_events(datasets), force_class=3)
    output = tmp_path / "p.parquet"
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=output)
    ypred = _ypred(output)
    assert (ypred[:, 0] == 3).all() and (ypred[:, 7] == -1).all()
    assert np.isin(ypred[:, 1], [-1, 0, 1]).all()
    assert (ypred[:, 2] > 0).all() and (ypred[:, 6] > 0).all()
    np.testing.assert_allclose(np.hypot(ypred[:, 4], ypred[:, 5]), 1.0, rtol=1e-5)


def test_bad_inputs_are_value_errors_naming_the_path(datasets: dict, tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path, _all_events(datasets))
    missing = tmp_path / "nowhere"
    with pytest.raises(ValueError, match=re.escape(f"{missing}: TFDS directory does not exist")):
        predict(model_dir=model_dir, tfds_dirs=[*datasets, missing], output=tmp_path / "p.parquet")
    with pytest.raises(ValueError, match=re.escape(f"{missing / 'model.pt'}: no trained model here")):
        predict(model_dir=missing, tfds_dirs=list(datasets), output=tmp_path / "p.parquet")
    for splits in datasets.values():
        splits["test"] = []
    with pytest.raises(ValueError, match="split 'test' holds no events"):
        predict(model_dir=model_dir, tfds_dirs=list(datasets), output=tmp_path / "p.parquet")
    assert not (tmp_path / "p.parquet").exists()


def test_device_and_precision(datasets: dict, tmp_path: Path) -> None:
    """device="cpu" writes the same bytes as the default (auto → the CPU here); bf16 autocast gives rows close
    to float32 ones; a bad device is an error naming the key, before any output exists."""
    model_dir = _model_dir(tmp_path, _all_events(datasets), force_class=3, random_heads=True)
    default, on_cpu, low = tmp_path / "auto.parquet", tmp_path / "cpu.parquet", tmp_path / "bf16.parquet"
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=default)
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=on_cpu, device="cpu")
    assert on_cpu.read_bytes() == default.read_bytes()
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=low, device="cpu", precision="bf16")
    ref, got = _ypred(default), _ypred(low)
    assert not np.array_equal(got, ref)  # bf16 did run
    np.testing.assert_array_equal(got[:, 0], ref[:, 0])  # the forced class
    assert (got[:, 1] == ref[:, 1]).mean() > 0.95  # charge: the sign of a logit difference, flips only near 0
    np.testing.assert_allclose(got[:, [2, 6]], ref[:, [2, 6]], rtol=0.03)  # pT, E
    np.testing.assert_allclose(got[:, 3:6], ref[:, 3:6], rtol=0, atol=0.02)  # η, sin φ, cos φ
    out = tmp_path / "never.parquet"
    with pytest.raises(ValueError, match=re.escape("predict.device: expected auto, cpu, cuda or cuda:N, got 'gpu'")):
        predict(model_dir=model_dir, tfds_dirs=list(datasets), output=out, device="gpu")
    with pytest.raises(ValueError, match="predict.precision"):
        predict(model_dir=model_dir, tfds_dirs=list(datasets), output=out, precision="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="predict.device: cuda:0 requested but no CUDA device is available"):
            predict(model_dir=model_dir, tfds_dirs=list(datasets), output=out, device="cuda:0")
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/bench_gpu.sh runs it)")
def test_cuda_predictions_match_the_cpu_ones(datasets: dict, tmp_path: Path) -> None:
    model_dir = _model_dir(tmp_path, _all_events(datasets), force_class=3, random_heads=True)
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=tmp_path / "cpu.parquet", device="cpu")
    predict(model_dir=model_dir, tfds_dirs=list(datasets), output=tmp_path / "cuda.parquet", device="cuda")
    np.testing.assert_allclose(_ypred(tmp_path / "cuda.parquet"), _ypred(tmp_path / "cpu.parquet"), rtol=1e-4,
                               atol=1e-5)

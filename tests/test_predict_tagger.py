"""Tagger predictions: tiny ParT and PELICAN trained on synthetic JetClass-II shards, run over them,
checked against the documented contract, an independent forward pass, and the evaluation end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from colliderflow.evaluate.tagging import run as tagging_run
from colliderflow.evaluate.tagging.predict import predict_tagger
from colliderflow.evaluate.tagging.plots import TAGGER_PLOTS
from colliderflow.train.jet_data import N_PARTICLE_FEATURES, JetDataset, collate_jets, synthetic_jet_table
from colliderflow.models import build_model, load_trained
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.train import save_model, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Class order deliberately not sorted: class index ≠ rank of the jet_label value.
LABELS = [187, 0, 15]
CLASSES = ["QCD_light", "X_bb", "X_YY_bbbb"]
FOREIGN_LABEL = 5  # in the shards, not in the model's list: left out and counted
MAX_PARTICLES = 24  # below the longest synthetic jet (40), so truncation matters
MODEL_SECTIONS = {
    "pelican": {"embed_channels": 4, "hidden_channels": 8, "num_layers": 1, "readout_hidden": 16},
    "part": {
        "num_features": N_PARTICLE_FEATURES,
        "embedding_dim": 16,
        "embed_hidden": 16,
        "num_heads": 2,
        "num_layers": 1,
        "num_cls_layers": 1,
        "ff_dim": 16,
        "pair_hidden": 8,
        "dropout": 0.0,
    },
}


def _shard(path: Path, n_jets: int, seed: int) -> Path:
    """A synthetic shard whose soft-drop mass and τ's are filled (the generator leaves them 0)."""
    table = synthetic_jet_table(n_jets, seed=seed, labels=(*LABELS, FOREIGN_LABEL), max_particles=40)
    rng = np.random.default_rng(seed + 100)
    label = table.column("jet_label").to_numpy()
    fill = {
        "jet_sdmass": np.where(label == 187, rng.exponential(40, n_jets), rng.normal(125, 10, n_jets)),
        "jet_tau2": rng.uniform(0.05, 0.3, n_jets),
    }
    fill["jet_tau3"] = fill["jet_tau2"] * rng.uniform(0.3, 0.9, n_jets)
    for name, values in fill.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("jets")
    (root / "more").mkdir()
    return {"a": _shard(root / "shard_a.parquet", 90, seed=1), "b": _shard(root / "more" / "shard_b.parquet", 40, 2)}


@pytest.fixture(scope="module", params=["pelican", "part"])
def model_dir(
    request: pytest.FixtureRequest, shards: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    name = request.param
    params = {
        "model": name,
        name: MODEL_SECTIONS[name],
        "labels": LABELS,
        "max_particles": MAX_PARTICLES,
        "batch_size": 8,
        "max_steps": 4,
        "lr": 0.003,
        "warmup_steps": 1,
        "checkpoint_every": 4,
        "eval_every": 4,
        "log_every": 2,
        "device": "cpu",
        "val_fraction": 0.2,
    }
    out = tmp_path_factory.mktemp(f"model_{name}")
    train(data=[shards["a"]], weights=None, params=params, seed=3, output_dir=out)
    return out


@pytest.fixture(scope="module")
def predicted(model_dir: Path, shards: dict[str, Path]) -> tuple[Path, dict]:
    """Predictions over a file and a directory, in batches of 7 (several per file, the last one short)."""
    output = model_dir / "pred" / "tagger.parquet"
    stats = predict_tagger(model_dir=model_dir, inputs=[shards["a"], shards["b"].parent], output=output, batch_size=7)
    return output, stats


def _expected_rows(path: Path) -> dict[str, np.ndarray]:
    """What the file should hold for one shard, from the shard alone (pyarrow, no project code)."""
    table = pq.read_table(path)
    raw = table.column("jet_label").to_numpy()
    keep = np.isin(raw, LABELS)
    out = {"jet_label": np.array([LABELS.index(x) for x in raw[keep]]), "event_id": np.flatnonzero(keep)}
    for name in ("jet_pt", "jet_eta", "jet_sdmass", "jet_tau2", "jet_tau3"):
        out[name] = table.column(name).to_numpy()[keep].astype(np.float32)
    return out


def test_output_follows_the_documented_contract(predicted: tuple[Path, dict], shards: dict[str, Path]) -> None:
    output, stats = predicted
    data, classes = tagging_run.read_tagger_predictions(output)
    assert classes == CLASSES
    schema = pq.read_schema(output)
    assert schema.names[: 1 + len(CLASSES)] == ["jet_label", *(f"score_{c}" for c in CLASSES)]
    assert all(schema.field(f"score_{c}").type == pa.float32() for c in CLASSES)
    table = pq.read_table(output)
    samples = table.column("sample").to_pylist()
    assert list(dict.fromkeys(samples)) == ["shard_a", "shard_b"]  # file order, sample = file stem
    for stem, path in (("shard_a", shards["a"]), ("shard_b", shards["b"])):
        rows = table.filter(pc.equal(table.column("sample"), stem))
        expected = _expected_rows(path)
        for name, values in expected.items():
            np.testing.assert_array_equal(rows.column(name).to_numpy(), values, err_msg=f"{stem} {name}")
    raw = np.concatenate(
        [pq.read_table(p, columns=["jet_label"]).column("jet_label").to_numpy() for p in shards.values()]
    )
    assert stats["jets"] == len(data["jet_label"]) == int(np.isin(raw, LABELS).sum())
    assert stats["jets_skipped"] == int((raw == FOREIGN_LABEL).sum()) > 0
    assert stats["jets_per_class"] == {c: int((raw == lab).sum()) for c, lab in zip(CLASSES, LABELS, strict=True)}
    assert stats["files"] == 2 and stats["seconds"] > 0


def test_scores_are_the_softmax_of_the_model(
    predicted: tuple[Path, dict], model_dir: Path, shards: dict[str, Path]
) -> None:
    output, _ = predicted
    data, _ = tagging_run.read_tagger_predictions(output)
    np.testing.assert_allclose(data["scores"].sum(axis=1), 1.0, atol=1e-5)
    assert (data["scores"] >= 0).all()
    # Independently: the whole of shard b in one batch, straight through the loaded model.
    model, meta = load_trained(model_dir)
    dataset = JetDataset([shards["b"]], labels=meta["labels"])
    batch = collate_jets([dataset[i] for i in range(len(dataset))], max_particles=MAX_PARTICLES)
    with torch.no_grad():
        logits = model(batch.features, batch.p4, batch.mask) if meta["model"] == "part" else model(batch.p4, batch.mask)
    expected = torch.softmax(logits.double(), dim=-1).numpy()
    got = data["scores"][data["sample"] == "shard_b"]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
    # The scores depend on the jet: a constant output would pass the sum check but not this.
    assert np.ptp(got, axis=0).max() > 1e-4


def test_two_runs_write_identical_files(predicted: tuple[Path, dict], model_dir: Path, shards: dict[str, Path]) -> None:
    output, _ = predicted
    again = model_dir / "pred" / "again.parquet"
    predict_tagger(model_dir=model_dir, inputs=[shards["a"], shards["b"].parent], output=again, batch_size=7)
    assert pq.read_table(again).equals(pq.read_table(output))
    other_batching = model_dir / "pred" / "batch64.parquet"
    predict_tagger(model_dir=model_dir, inputs=[shards["a"], shards["b"]], output=other_batching, batch_size=64)
    a = tagging_run.read_tagger_predictions(output)[0]["scores"]
    b = tagging_run.read_tagger_predictions(other_batching)[0]["scores"]
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)  # padding to another length changes rounding only


def test_evaluate_tagger_runs_on_the_predictions(predicted: tuple[Path, dict], model_dir: Path, tmp_path: Path) -> None:
    output, stats = predicted
    result = tagging_run.evaluate_tagger(
        predictions=output,
        metrics_log=model_dir / "metrics.jsonl",
        params={"dataset_label": "synthetic"},
        summary=tmp_path / "summary.json",
        plots_dir=tmp_path / "plots",
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == result
    assert result["classes"] == CLASSES and result["qcd_classes"] == ["QCD_light"]
    assert result["n_jets"] == stats["jets"] and result["n_jets_unlabelled"] == 0
    assert result["n_jets_per_class"] == stats["jets_per_class"]
    assert set(result["vs_qcd"]) == {"X_bb", "X_YY_bbbb"}
    # The baseline sees the copied masses: signal at 125 GeV against a falling QCD spectrum.
    assert result["vs_qcd"]["X_bb"]["baseline"]["auc"] > 0.9
    for name in TAGGER_PLOTS:
        assert (tmp_path / "plots" / f"{name}.png").stat().st_size > 10_000, name


def test_class_names_from_the_record_or_the_jetclass2_table(
    model_dir: Path, shards: dict[str, Path], tmp_path: Path
) -> None:
    saved = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)
    for folder, names, expected in (
        ("no_names", None, CLASSES),  # nothing recorded: JetClass-II's table
        ("own_names", ["label_qcd", "hbb", "h4b"], ["qcd", "hbb", "h4b"]),
    ):
        record = {k: v for k, v in saved.items() if k != "label_names"}
        if names is not None:
            record["label_names"] = names
        (tmp_path / folder).mkdir()
        torch.save(record, tmp_path / folder / "model.pt")
        out = tmp_path / f"{folder}.parquet"
        predict_tagger(model_dir=tmp_path / folder, inputs=[shards["b"]], output=out)
        assert tagging_run.read_tagger_predictions(out)[1] == expected, folder


def test_an_explicit_label_table_names_the_classes(model_dir: Path, shards: dict[str, Path], tmp_path: Path) -> None:
    table = [f"label_class{i}" for i in range(len(JETCLASS2_LABELS))]
    predict_tagger(model_dir=model_dir, inputs=[shards["b"]], output=tmp_path / "p.parquet", label_table=table)
    assert tagging_run.read_tagger_predictions(tmp_path / "p.parquet")[1] == ["class187", "class0", "class15"]
    with pytest.raises(ValueError, match=r"model\.pt: jet_label 187 is outside the label table"):
        predict_tagger(
            model_dir=model_dir, inputs=[shards["b"]], output=tmp_path / "q.parquet", label_table=table[:100]
        )
    assert not (tmp_path / "q.parquet").exists()


def test_bad_model_directories_are_named(shards: dict[str, Path], tmp_path: Path) -> None:
    kwargs = {"inputs": [shards["b"]], "output": tmp_path / "p.parquet"}
    with pytest.raises(ValueError, match=r"absent/model\.pt: no trained model"):
        predict_tagger(model_dir=tmp_path / "absent", **kwargs)
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"garbage/model\.pt: not a readable model file"):
        predict_tagger(model_dir=tmp_path / "garbage", **kwargs)
    mlpf = build_model({"model": "mlpf", "mlpf": {"embedding_dim": 8, "num_heads": 2, "num_layers": 1, "ff_dim": 8}})
    save_model(
        tmp_path / "pf" / "model.pt", mlpf, params={"model": "mlpf"}, seed=0, step=0, n_params=0, extra={"task": "pf"}
    )
    with pytest.raises(ValueError, match=r"pf/model\.pt: a 'mlpf' model for task 'pf', not a jet tagger"):
        predict_tagger(model_dir=tmp_path / "pf", **kwargs)
    assert not (tmp_path / "p.parquet").exists()


def test_bad_inputs_are_named_and_leave_no_output(model_dir: Path, shards: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "p.parquet"
    with pytest.raises(ValueError, match=r"nope\.parquet: jet Parquet file does not exist"):
        predict_tagger(model_dir=model_dir, inputs=[shards["b"], tmp_path / "nope.parquet"], output=out)
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "foreign.parquet")
    with pytest.raises(ValueError, match=r"foreign\.parquet: not a JetClass-II jet file"):
        predict_tagger(model_dir=model_dir, inputs=[tmp_path / "foreign.parquet"], output=out)
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(ValueError, match=r"corrupt\.parquet: not a JetClass-II jet file"):
        predict_tagger(model_dir=model_dir, inputs=[tmp_path / "corrupt.parquet"], output=out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no \.parquet file"):
        predict_tagger(model_dir=model_dir, inputs=[tmp_path / "empty"], output=out)
    only_foreign = synthetic_jet_table(10, seed=4, labels=(FOREIGN_LABEL,))
    pq.write_table(only_foreign, tmp_path / "other.parquet")
    with pytest.raises(ValueError, match=r"other\.parquet: no jet with a jet_label among the model's labels"):
        predict_tagger(model_dir=model_dir, inputs=[tmp_path / "other.parquet"], output=out)
    with pytest.raises(ValueError, match="batch_size"):
        predict_tagger(model_dir=model_dir, inputs=[shards["b"]], output=out, batch_size=0)
    assert not out.exists() and not list(tmp_path.glob(".p.parquet*"))


def test_device_and_precision(predicted: tuple[Path, dict], model_dir: Path, shards: dict[str, Path],
                              tmp_path: Path) -> None:
    """device="cpu" writes the same table as the default (auto → the CPU here), through the CLI too; bf16
    autocast gives scores close to float32; a bad device is an error naming the key, before any output."""
    from colliderflow.cli import main

    output, stats = predicted
    inputs = [shards["a"], shards["b"].parent]
    on_cpu = tmp_path / "cpu.parquet"
    assert stats["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    cpu_stats = predict_tagger(model_dir=model_dir, inputs=inputs, output=on_cpu, batch_size=7, device="cpu")
    assert cpu_stats["device"] == "cpu"
    if not torch.cuda.is_available():
        assert pq.read_table(on_cpu).equals(pq.read_table(output))
    cli_out = tmp_path / "cli.parquet"
    assert main(["predict-tagger", *map(str, inputs), "--model-dir", str(model_dir), "-o", str(cli_out),
                 "--device", "cpu"]) == 0
    np.testing.assert_allclose(tagging_run.read_tagger_predictions(cli_out)[0]["scores"],
                               tagging_run.read_tagger_predictions(on_cpu)[0]["scores"], rtol=0, atol=2e-5)
    low = tmp_path / "bf16.parquet"
    predict_tagger(model_dir=model_dir, inputs=inputs, output=low, device="cpu", precision="bf16")
    np.testing.assert_allclose(tagging_run.read_tagger_predictions(low)[0]["scores"],
                               tagging_run.read_tagger_predictions(on_cpu)[0]["scores"], rtol=0, atol=0.02)
    out = tmp_path / "never.parquet"
    with pytest.raises(ValueError, match=r"predict\.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"):
        predict_tagger(model_dir=model_dir, inputs=inputs, output=out, device="gpu")
    assert main(["predict-tagger", *map(str, inputs), "--model-dir", str(model_dir), "-o", str(out),
                 "--device", "tpu"]) == 2
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="predict.device: cuda requested but no CUDA device is available"):
            predict_tagger(model_dir=model_dir, inputs=inputs, output=out, device="cuda")
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/bench_gpu.sh runs it)")
def test_cuda_scores_match_the_cpu_ones(model_dir: Path, shards: dict[str, Path], tmp_path: Path) -> None:
    inputs = [shards["a"], shards["b"]]
    for device in ("cpu", "cuda"):
        predict_tagger(model_dir=model_dir, inputs=inputs, output=tmp_path / f"{device}.parquet", device=device)
    np.testing.assert_allclose(tagging_run.read_tagger_predictions(tmp_path / "cuda.parquet")[0]["scores"],
                               tagging_run.read_tagger_predictions(tmp_path / "cpu.parquet")[0]["scores"],
                               rtol=0, atol=1e-4)

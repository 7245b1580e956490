"""One real run of the ci configuration, as a user runs it, then checks of what every stage produced.

The run takes a few minutes on 2 cores; everything else in this module reuses its outputs.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot
import yaml

from colliderflow.schema import EVENT_COLUMNS, N_ELEM_FEATURES, N_PARTICLE_FEATURES, PREDICTION_COLUMNS, SIM_TREE
from workflow_api import ROOT, copy_project, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow

CI_CONFIG = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
RUN = CI_CONFIG["run"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """The workflow copied to a fresh directory and run end to end with the ci profile."""
    workdir = copy_project(tmp_path_factory.mktemp("e2e") / "wf")
    result = run_snakemake(workdir, "--profile", "profiles/ci", timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir


@pytest.fixture(scope="module")
def results(pipeline):
    return pipeline / "results" / RUN


def _shard_file(results, stage: str, sample: str, shard: int, ext: str):
    """Shard `shard` lives at <stage>/<sample>/<job>/<i><ext> with shard = job · shards_per_job + i."""
    per_job = CI_CONFIG.get("shards_per_job", 1)
    return results / stage / sample / str(shard // per_job) / f"{shard % per_job}{ext}"


def _ntuple_files(results, sample: str) -> list:
    n_shards = CI_CONFIG["samples"][sample]["n_shards"]
    return [_shard_file(results, "ntuples", sample, shard, ".parquet") for shard in range(n_shards)]


def _events_in_split(results, split: str) -> int:
    """Events of every sample's ntuples assigned to `split`."""
    return sum(
        pq.read_table(_ntuple_files(results, s), columns=["split"]).column("split").to_pylist().count(split)
        for s in CI_CONFIG["samples"]
    )


def _events_per_sample(sample: str) -> int:
    s = CI_CONFIG["samples"][sample]
    return s["n_shards"] * s["events_per_shard"]


def test_simulation_files_hold_every_event(results):
    for sample, cfg in CI_CONFIG["samples"].items():
        for shard in range(cfg["n_shards"]):
            with uproot.open(_shard_file(results, "sim", sample, shard, ".root")) as f:
                assert f[SIM_TREE].num_entries == cfg["events_per_shard"]
            job_record = _shard_file(results, "sim", sample, shard, ".root").parent / "provenance.json"
            record = json.loads(job_record.read_text())
            per_job = CI_CONFIG.get("shards_per_job", 1)
            shard_record = record["shards"][shard % per_job]
            assert shard_record["config_hash"] and shard_record["seeds"] and shard_record["git_revision"]


def test_ntuples_have_the_schema_and_all_events(results):
    for sample in CI_CONFIG["samples"]:
        shards = _ntuple_files(results, sample)
        table = pq.read_table(shards)
        assert set(EVENT_COLUMNS) <= set(table.column_names)
        assert table.num_rows == _events_per_sample(sample)
        first = table.slice(0, 1).to_pylist()[0]
        assert len(first["X"]) == first["n_elements"] > 0
        assert all(len(row) == N_ELEM_FEATURES for row in first["X"])
        assert all(len(row) == N_PARTICLE_FEATURES for row in first["ytarget"])
        assert set(table.column("split").to_pylist()) <= {"train", "val", "test"}
        summary = json.loads((results / "ntuples" / sample / "validation.json").read_text())
        assert summary  # the validation gate ran and wrote its summary


def test_tfds_splits_add_up_without_tensorflow(results):
    from colliderflow.io.tfds_reader import open_split, split_sizes

    for sample in CI_CONFIG["samples"]:
        sizes = split_sizes(results / "tfds" / sample)
        assert sum(sizes.values()) == _events_per_sample(sample)
        if sizes.get("test"):
            event = open_split(results / "tfds" / sample, "test")[0]
            assert event["X"].shape[1] == N_ELEM_FEATURES
    import importlib.util

    assert importlib.util.find_spec("tensorflow") is None


def test_weights_cover_the_training_split(results):
    weights = pq.read_table(results / "weights" / "pf.parquet").to_pandas()
    n_train = _events_in_split(results, "train")
    assert len(weights) == n_train
    assert np.all(weights["weight"] >= 0) and weights["weight"].sum() > 0


def test_model_loads_and_predicts(results):
    import torch

    from colliderflow.io.tfds_reader import open_split
    from colliderflow.models.registry import load_trained
    from colliderflow.schema import N_CLASSES

    model, meta = load_trained(results / "models" / "mlpf")
    assert meta
    sample = next(iter(CI_CONFIG["samples"]))
    event = open_split(results / "tfds" / sample, "train")[0]
    X = torch.tensor(np.asarray(event["X"], dtype=np.float32))[None]  # [1, N, 17]
    with torch.no_grad():
        out = model(X)
    assert out[0].shape == (1, X.shape[1], N_CLASSES)
    assert torch.isfinite(out[0]).all() and torch.isfinite(out[2]).all()
    metrics = [json.loads(line) for line in (results / "models" / "mlpf" / "metrics.jsonl").read_text().splitlines()]
    assert max(m["step"] for m in metrics) == CI_CONFIG["train"]["max_steps"]
    assert (results / "models" / "mlpf" / "provenance.json").is_file()
    predictions = pq.read_table(results / "eval" / "mlpf" / "predictions.parquet")
    assert set(PREDICTION_COLUMNS) <= set(predictions.column_names)
    n_test = _events_in_split(results, "test")
    assert predictions.num_rows == n_test


def test_every_plot_is_a_real_image(results):
    from matplotlib.image import imread

    from colliderflow.evaluate.plots import PF_PLOTS

    for name in PF_PLOTS:
        png = results / "eval" / "mlpf" / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE, name
        image = imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 200, name
        assert image.std() > 0, f"{name} is blank"
    summary = json.loads((results / "eval" / "mlpf" / "summary.json").read_text())
    assert summary


def test_report_contains_every_figure(pipeline):
    from colliderflow.evaluate.plots import PF_PLOTS

    report = pipeline / "report.html"
    result = run_snakemake(pipeline, "--profile", "profiles/ci", "--report", str(report), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    for name in [*PF_PLOTS, "pf_weights", "validation"]:
        assert f"{name}.png" in html, name


def test_nothing_left_to_do_after_the_run(pipeline):
    assert planned_jobs(pipeline, [pipeline / "config/ci.yaml"]) == {}


def _changed_config(pipeline, tmp_path, mutate):
    config = yaml.safe_load((pipeline / "config/ci.yaml").read_text())
    mutate(config)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_changed_training_key_reruns_only_training_and_after(pipeline, tmp_path):
    changed = _changed_config(pipeline, tmp_path, lambda c: c["train"].update(lr=0.002))
    assert planned_jobs(pipeline, [changed]) == {"train": 1, "predict": 1, "evaluate": 1, "all": 1}


def test_changed_weights_key_reruns_weights_and_after(pipeline, tmp_path):
    changed = _changed_config(pipeline, tmp_path, lambda c: c["weights"].update(threshold=0.2))
    assert planned_jobs(pipeline, [changed]) == {"weights": 1, "train": 1, "predict": 1, "evaluate": 1, "all": 1}


def test_forcerun_train_reruns_downstream_only(pipeline):
    jobs = planned_jobs(pipeline, [pipeline / "config/ci.yaml"], forcerun=["train"])
    assert jobs == {"train": 1, "predict": 1, "evaluate": 1, "all": 1}

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
from workflow_api import ROOT, copy_project, planned_jobs, run_snakemake

from colliderflow.schema import EVENT_COLUMNS, N_ELEM_FEATURES, N_PARTICLE_FEATURES, PREDICTION_COLUMNS, SIM_TREE

pytestmark = pytest.mark.slow

CI_CONFIG = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
RUN = CI_CONFIG["run"]
PF_SAMPLES = [s for s, c in CI_CONFIG["samples"].items() if c.get("dataset", "pf") == "pf"]
JET_SAMPLES = [s for s, c in CI_CONFIG["samples"].items() if c.get("dataset") == "jets"]
TAGGERS = CI_CONFIG["tagger"]["models"]
MODEL = CI_CONFIG["train"]["model"]
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
        for s in PF_SAMPLES
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
    for sample in PF_SAMPLES:
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

    for sample in PF_SAMPLES:
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
    sample = PF_SAMPLES[0]
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

    from colliderflow.evaluate.pf.plots import PF_PLOTS

    for name in PF_PLOTS:
        png = results / "eval" / "mlpf" / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_SIGNATURE, name
        image = imread(png)
        assert image.shape[0] > 200 and image.shape[1] > 200, name
        assert image.std() > 0, f"{name} is blank"


def test_mlpf_learned_more_than_the_majority_class(results):
    """MLPF's element classification beats the model that always predicts the most common target class
    (its accuracy is that class's share of the test elements)."""
    summary = json.loads((results / "eval" / MODEL / "summary.json").read_text())
    classification = summary["classification"][MODEL]
    n_target = {name: c["n_target"] for name, c in classification["per_class"].items()}
    majority = max(n_target.values()) / sum(n_target.values())
    assert sum(n_target.values()) == summary["n_elements"]
    assert classification["accuracy"] > majority + 0.05, (classification["accuracy"], majority, n_target)


def test_report_contains_every_figure(pipeline):
    """Every model's own figures, by their paths: a tagger's loss_curves.png must not stand in for MLPF's."""
    from colliderflow.evaluate.figures import PF_PLOTS, TAGGER_PLOTS

    report = pipeline / "report.html"
    result = run_snakemake(pipeline, "--profile", "profiles/ci", "--report", str(report), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    html = report.read_text(errors="replace")
    figures = [f"results/{RUN}/eval/{MODEL}/plots/{name}.png" for name in PF_PLOTS]
    figures += [f"results/{RUN}/eval/{model}/plots/{name}.png" for model in TAGGERS for name in TAGGER_PLOTS]
    figures += [f"results/{RUN}/ntuples/{sample}/validation.png" for sample in PF_SAMPLES]
    figures += [f"results/{RUN}/weights/pf_weights.png", f"results/{RUN}/weights/jets_weights.png"]
    missing = [path for path in figures if path not in html]
    assert not missing, missing


def test_nothing_left_to_do_after_the_run(pipeline):
    assert planned_jobs(pipeline, [pipeline / "config/ci.yaml"]) == {}


def _changed_config(pipeline, tmp_path, mutate):
    config = yaml.safe_load((pipeline / "config/ci.yaml").read_text())
    mutate(config)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_changed_training_key_reruns_only_training_and_after(pipeline, tmp_path):
    changed = _changed_config(pipeline, tmp_path, lambda c: c["train"].update(lr=0.002))
    assert planned_jobs(pipeline, [changed]) == {"train": 1, "predict": 1, "evaluate": 1, "all": 1}


def test_changed_weights_key_reruns_weights_and_after(pipeline, tmp_path):
    changed = _changed_config(pipeline, tmp_path, lambda c: c["weights"].update(threshold=0.2))
    assert planned_jobs(pipeline, [changed]) == {"weights": 1, "train": 1, "predict": 1, "evaluate": 1, "all": 1}


def test_forcerun_train_reruns_downstream_only(pipeline):
    jobs = planned_jobs(pipeline, [pipeline / "config/ci.yaml"], forcerun=["train"])
    taggers = len(TAGGERS)
    assert jobs == {"train": 1 + taggers, "predict": 1, "evaluate": 1, "predict_tagger": taggers,
                    "evaluate_tagger": taggers, "all": 1}


# --------------------------------------------------------------------------------------------------
# The jet branch: pp samples → JetClass-II shards → one split dataset → weights → taggers → evaluation
# --------------------------------------------------------------------------------------------------


def _jet_shards(results) -> list:
    return [_shard_file(results, "jets", s, shard, ".parquet") for s in JET_SAMPLES
            for shard in range(CI_CONFIG["samples"][s]["n_shards"])]


def test_jet_dataset_holds_every_jet_once_in_the_jetclass2_schema(results):
    from colliderflow.jetschema import JETCLASS2_SCHEMA

    shards = pq.read_table(_jet_shards(results))
    assert shards.num_rows > 0
    split_rows = {}
    for split in ("train", "val", "test"):
        files = sorted((results / "jetset" / split).glob("*.parquet"))
        assert files, split
        tables = [pq.read_table(f) for f in files]
        assert all(t.schema.equals(JETCLASS2_SCHEMA) for t in tables)
        assert all(t.num_rows <= CI_CONFIG["jets"]["jets_per_file"] for t in tables)
        split_rows[split] = sum(t.num_rows for t in tables)
    assert sum(split_rows.values()) == shards.num_rows
    assert split_rows["train"] > split_rows["test"] > 0
    # Same jets, regrouped: the multiset of (pT, label) pairs is unchanged.
    every = pq.read_table([f for split in ("train", "val", "test") for f in sorted((results / "jetset" / split).glob("*.parquet"))])
    key = lambda t: sorted(zip(t.column("jet_pt").to_pylist(), t.column("jet_label").to_pylist(), strict=True))
    assert key(every) == key(shards)


def test_jet_tfds_holds_the_jet_dataset_without_tensorflow(results):
    import importlib.util

    from colliderflow.io.jet_tfds import open_jet_split

    for split in ("train", "val", "test"):
        n_rows = sum(pq.read_metadata(f).num_rows for f in (results / "jetset" / split).glob("*.parquet"))
        assert len(open_jet_split(results / "tfds_jets", split)) == n_rows
    assert importlib.util.find_spec("tensorflow") is None


def test_jet_weights_cover_the_training_jets_and_weaver_config_matches(results):
    weights = pq.read_table(results / "weights" / "jets.parquet").to_pandas()
    n_train = sum(pq.read_metadata(f).num_rows for f in (results / "jetset" / "train").glob("*.parquet"))
    assert len(weights) == n_train
    assert np.all(weights["weight"] >= 0) and weights["weight"].sum() > 0
    weaver = yaml.safe_load((results / "jetset" / "weaver_data_config.yaml").read_text())
    assert weaver["weights"]["reweight_classes"] == list(CI_CONFIG["jet_weights"]["class_weights"])
    assert weaver["labels"]["value"] == CI_CONFIG["tagger"]["labels"]


def test_taggers_are_trained_and_evaluated(results):
    for model in TAGGERS:
        provenance = json.loads((results / "models" / model / "provenance.json").read_text())
        assert provenance["config_hash"] and provenance["seeds"]
        summary = json.loads((results / "eval" / model / "summary.json").read_text())
        # Learning: every signal class is told from QCD better than chance, one-vs-QCD (the ci test split
        # has a few dozen jets, too few for a stable one-vs-rest AUC of the rare classes against each other).
        assert set(summary["vs_qcd"]) == set(summary["signal_classes"]) and summary["signal_classes"]
        aucs = {name: entry["tagger"]["auc"] for name, entry in summary["vs_qcd"].items()}
        assert all(auc > 0.6 for auc in aucs.values()), (model, aucs)
        predictions = pq.read_table(results / "eval" / model / "predictions.parquet")
        n_test = sum(pq.read_metadata(f).num_rows for f in (results / "jetset" / "test").glob("*.parquet"))
        assert 0 < predictions.num_rows <= n_test
        scores = np.stack([predictions.column(f"score_{n}").to_numpy() for n in _score_names(predictions)], axis=1)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-4)


def _score_names(table) -> list[str]:
    return [n[len("score_"):] for n in table.column_names if n.startswith("score_")]


def test_run_summary_lists_every_generation_shard(results):
    summary = json.loads((results / "run_summary.json").read_text())
    assert summary["failed_shards"] == []
    assert summary["skip_failed_shards"] is False
    assert set(summary["samples"]) == set(CI_CONFIG["samples"])


def test_changed_jet_weights_key_reruns_only_the_jet_branch_after_it(pipeline, tmp_path):
    changed = _changed_config(pipeline, tmp_path, lambda c: c["jet_weights"].update(threshold=0.2))
    taggers = len(TAGGERS)
    assert planned_jobs(pipeline, [changed]) == {
        "jet_weights": 1, "weaver_config": 1, "train": taggers, "predict_tagger": taggers,
        "evaluate_tagger": taggers, "all": 1,
    }


def test_changed_tagger_architecture_retrains_only_that_tagger(pipeline, tmp_path):
    changed = _changed_config(pipeline, tmp_path, lambda c: c["tagger"]["part"].update(dropout=0.1))
    assert planned_jobs(pipeline, [changed]) == {"train": 1, "predict_tagger": 1, "evaluate_tagger": 1, "all": 1}


def test_switching_on_skip_failed_shards_reruns_nothing(pipeline, tmp_path):
    changed = _changed_config(pipeline, tmp_path, lambda c: c.update(skip_failed_shards=True))
    assert planned_jobs(pipeline, [changed]) == {}

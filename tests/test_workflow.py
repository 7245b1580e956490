"""The DAG itself: both configs plan the expected jobs, bad configs fail before any job, lint is clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from workflow_api import ROOT, copy_project, dry_run, planned_jobs, run_snakemake

STAGE_RULES = {"generate", "ntuplize", "validate_ntuples", "tfds", "weights", "train", "predict", "evaluate"}


def _expected_counts(config: dict) -> dict[str, int]:
    per_job = config.get("shards_per_job", 1)
    pf = [s for s in config["samples"].values() if s.get("dataset", "pf") == "pf"]
    jets = [s for s in config["samples"].values() if s.get("dataset") == "jets"]
    pf_jobs = sum(s["n_shards"] for s in pf) // per_job
    jet_jobs = sum(s["n_shards"] for s in jets) // per_job
    taggers = len(config["tagger"]["models"]) if jets else 0
    counts = {
        "generate": pf_jobs + jet_jobs,
        "run_summary": 1,
        "ntuplize": pf_jobs,
        "validate_ntuples": len(pf),
        "tfds": len(pf),
        "weights": 1,
        "train": 1 + taggers,
        "predict": 1,
        "evaluate": 1,
        "all": 1,
    }
    if jets:
        counts |= {"ntuplize_jets": jet_jobs, "jet_dataset": 1, "jet_weights": 1, "weaver_config": 1, "jet_tfds": 1,
                   "predict_tagger": taggers, "evaluate_tagger": taggers}
    return counts


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/ci.yaml"])
def test_dry_run_plans_every_stage(tmp_path, configfile):
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((ROOT / configfile).read_text())
    assert planned_jobs(workdir, [workdir / configfile]) == _expected_counts(config)


def test_until_stops_after_a_stage(tmp_path):
    workdir = copy_project(tmp_path / "wf")
    jobs = planned_jobs(workdir, [workdir / "config/ci.yaml"], until=["weights"])
    assert set(jobs) == {"generate", "ntuplize", "validate_ntuples", "weights"}  # weights wait for the gate
    jobs = planned_jobs(workdir, [workdir / "config/ci.yaml"], until=["jet_weights"])
    assert set(jobs) == {"generate", "ntuplize_jets", "jet_dataset", "jet_weights"}


def _write_config(path, config):
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda c: c["train"].update(learning_rate=0.1), "learning_rate"),
        (lambda c: c["samples"]["ttbar"].update(n_shards="two"), "n_shards"),
        (lambda c: c["samples"]["qq"].update(backend="geant"), "backend"),
        (lambda c: c.update(sed=1), "sed"),
        (lambda c: c.update(shards_per_job=3), "shards_per_job"),
        (lambda c: c["tagger"].update(models=["bdt"]), "bdt"),
        (lambda c: c["samples"]["pp_qcd"]["options"].update(pthat=300), "pthat"),
        (lambda c: c.pop("jet_weights"), "jet_weights"),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, mutate, named):
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    mutate(config)
    bad = _write_config(tmp_path / "bad.yaml", config)
    result = run_snakemake(workdir, "-n", "--configfile", str(bad), timeout=120)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert named in output, output[-2000:]
    assert not (workdir / "results").exists()


def test_lint_is_clean():
    result = run_snakemake(ROOT, "--lint", timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_a_config_file_replaces_the_default_instead_of_merging(tmp_path):
    """A config naming one sample must not inherit the default config's other samples."""
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["samples"] = {"qq": config["samples"]["qq"]}
    config["weights"]["class_weights"] = {"qq": 1.0}
    one = _write_config(tmp_path / "one.yaml", config)
    result = run_snakemake(workdir, "-n", "--quiet", "rules", "--profile", "profiles/ci", "--configfile", str(one),
                           timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2
                  and line.split()[1].isdigit())
    assert counts["generate"] == str(config["samples"]["qq"]["n_shards"])
    assert counts["tfds"] == "1"


def _job_names(workdir, configfile, **kwargs) -> dict[str, int]:
    return planned_jobs(workdir, [configfile], **kwargs)


def test_jet_and_pf_samples_feed_their_own_branches(tmp_path):
    """A jets-only config plans no particle-flow jobs; a PF-only config no jet jobs and no jet sections."""
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    pf_only = {**config, "samples": {k: v for k, v in config["samples"].items() if v.get("dataset") != "jets"}}
    for key in ("jets", "jet_weights", "tagger"):
        pf_only.pop(key)
    jobs = planned_jobs(workdir, [_write_config(tmp_path / "pf.yaml", pf_only)])
    assert jobs == _expected_counts(pf_only)
    assert not {"ntuplize_jets", "jet_dataset", "predict_tagger"} & set(jobs)


def test_each_backend_runs_in_its_own_environment(tmp_path):
    """generate jobs take envs/<backend>.yaml (--sdm conda) and the sample's container (--sdm apptainer)."""
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["samples"] = {
        "a": {"process": "ee_qq", "backend": "builtin", "n_shards": 1, "events_per_shard": 10},
        "b": {"process": "ee_qq", "backend": "delphes", "n_shards": 1, "events_per_shard": 10,
              "container": "docker://example.org/delphes:3.5"},
        "c": {"process": "ee_qq", "backend": "key4hep", "n_shards": 1, "events_per_shard": 10,
              "key4hep": {"steering_file": "steer.py", "reco_options": "reco.py"}},
    }
    config["weights"]["class_weights"] = {"a": 1.0, "b": 1.0, "c": 1.0}
    for key in ("jets", "jet_weights", "tagger"):
        config.pop(key)
    path = _write_config(tmp_path / "backends.yaml", config)
    with dry_run(workdir, [path]) as dag:
        jobs = [j for j in dag.jobs if j.rule.name == "generate"]
        envs = {j.wildcards.sample: str(j.rule.expand_conda_env(j.wildcards).file) for j in jobs}
        images = {j.wildcards.sample: j.rule.expand_container_img(j.wildcards) for j in jobs}
    assert {s: Path(e).name for s, e in envs.items()} == {"a": "colliderflow.yaml", "b": "delphes.yaml",
                                                          "c": "key4hep.yaml"}
    assert all(Path(e).parent.name == "envs" for e in envs.values())
    assert images == {"a": None, "b": "docker://example.org/delphes:3.5", "c": None}


def test_a_samples_own_validation_thresholds_override_the_global_ones(tmp_path):
    """samples.<name>.validation reaches only that sample's validation job, key by key over ntuplize.validation."""
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["samples"]["ttbar"]["validation"] = {"closure_tolerance": 0.9}
    path = _write_config(tmp_path / "own.yaml", config)
    with dry_run(workdir, [path]) as dag:
        params = {j.wildcards.sample: json.loads(j.params.cfg) for j in dag.jobs if j.rule.name == "validate_ntuples"}
    shared = config["ntuplize"]["validation"]
    assert params["ttbar"] == {**shared, "closure_tolerance": 0.9}
    assert all(p == shared for s, p in params.items() if s != "ttbar")
    config["samples"]["ttbar"]["validation"] = {"closure_tolerence": 0.9}  # misspelt: refused, named
    result = run_snakemake(workdir, "-n", "--configfile", str(_write_config(tmp_path / "bad.yaml", config)),
                           timeout=120)
    assert result.returncode != 0
    assert "closure_tolerence" in result.stdout + result.stderr

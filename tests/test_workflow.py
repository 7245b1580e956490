"""The DAG itself: both configs plan the expected jobs, bad configs fail before any job, lint is clean."""

from __future__ import annotations

import pytest
import yaml

from workflow_api import ROOT, copy_project, planned_jobs, run_snakemake

STAGE_RULES = {"generate", "ntuplize", "validate_ntuples", "tfds", "weights", "train", "predict", "evaluate"}


def _expected_counts(config: dict) -> dict[str, int]:
    n_jobs = sum(s["n_shards"] for s in config["samples"].values()) // config.get("shards_per_job", 1)
    n_samples = len(config["samples"])
    return {
        "generate": n_jobs,
        "ntuplize": n_jobs,
        "validate_ntuples": n_samples,
        "tfds": n_samples,
        "weights": 1,
        "train": 1,
        "predict": 1,
        "evaluate": 1,
        "all": 1,
    }


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/ci.yaml"])
def test_dry_run_plans_every_stage(tmp_path, configfile):
    workdir = copy_project(tmp_path / "wf")
    config = yaml.safe_load((ROOT / configfile).read_text())
    assert planned_jobs(workdir, [workdir / configfile]) == _expected_counts(config)


def test_until_stops_after_a_stage(tmp_path):
    workdir = copy_project(tmp_path / "wf")
    jobs = planned_jobs(workdir, [workdir / "config/ci.yaml"], until=["weights"])
    assert set(jobs) == {"generate", "ntuplize", "validate_ntuples", "weights"}  # weights wait for the gate


def _write_config(path, config):
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda c: c["train"].update(learning_rate=0.1), "learning_rate"),
        (lambda c: c["samples"]["ttbar"].update(n_shards="two"), "n_shards"),
        (lambda c: c["samples"]["qq"].update(backend="geant"), "backend"),
        (lambda c: c.update(sed=1), "sed"),
        (lambda c: c.update(shards_per_job=3), "shards_per_job"),
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

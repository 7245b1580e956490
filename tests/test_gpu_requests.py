"""The workflow asks the cluster for a GPU exactly for the jobs that compute on one: train (train.device or
tagger.device), predict and predict_tagger (predict.device), each unless its device is cpu. Checked on the
resources Snakemake resolves from the rules and profiles/slurm in a dry run (no SLURM needed here; test_slurm
checks the sbatch calls themselves on a real scheduler)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings
from workflow_api import ROOT, copy_project

GPU_RULES = {"train", "predict", "predict_tagger"}


def planned_resources(workdir: Path, configfile: Path) -> list[tuple[str, str, dict]]:
    """(rule, model wildcard or "", resolved resources and params) of every planned job, with the slurm profile."""
    profile = yaml.safe_load((workdir / "profiles" / "slurm" / "config.yaml").read_text())
    jobs = []
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1024, default_resources=profile.get("default-resources"),
                                               overwrite_resources=profile.get("set-resources", {})),
            config_settings=ConfigSettings(configfiles=[configfile.absolute()]),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        workflow_api.dag(DAGSettings()).execute_workflow(pseudo_executor="dryrun")
        for job in workflow_api._workflow.dag.jobs:
            if job.rule.norun:
                continue
            params = dict(job.params.items()) if job.rule.name in GPU_RULES else {}
            jobs.append((job.rule.name, job.wildcards_dict.get("model", ""),
                         {"gpu": job.resources.get("gpu", 0), "partition": job.resources.get("slurm_partition"),
                          **params}))
    return jobs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("gpu-requests"))


def _config(workdir: Path, name: str, **changes: dict) -> Path:
    config = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    for section, values in changes.items():
        config.setdefault(section, {}).update(values)
    path = workdir / "config" / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_ci_config_trains_on_cpu_and_predicts_on_the_gpu(workdir: Path) -> None:
    """ci.yaml: train.device and tagger.device cpu, predict.device absent (auto)."""
    jobs = planned_resources(workdir, ROOT / "config" / "ci.yaml")
    rules = {rule for rule, _, _ in jobs}
    assert GPU_RULES <= rules
    for rule, model, res in jobs:
        if rule == "train":
            assert res["gpu"] == 0 and res["partition"] == "gpu", (rule, model, res)
        elif rule in ("predict", "predict_tagger"):
            assert res["gpu"] == 1 and res["device"] == "auto" and res["precision"] == "fp32", (rule, model, res)
        else:
            assert not res["gpu"] and res["partition"] == "debug", (rule, model, res)


def test_devices_decide_per_job(workdir: Path) -> None:
    configfile = _config(workdir, "devices.yaml", tagger={"device": "cuda"}, train={"device": "cpu"},
                         predict={"device": "cpu", "precision": "bf16"})
    jobs = planned_resources(workdir, configfile)
    pf_model = yaml.safe_load(configfile.read_text())["train"]["model"]
    trains = {model: res["gpu"] for rule, model, res in jobs if rule == "train"}
    assert trains[pf_model] == 0 and len(trains) > 1
    assert all(gpu == 1 for model, gpu in trains.items() if model != pf_model), trains
    for rule, _, res in jobs:
        if rule in ("predict", "predict_tagger"):
            assert res["gpu"] == 0 and res["device"] == "cpu" and res["precision"] == "bf16", (rule, res)


def test_a_bad_predict_device_is_rejected_naming_the_key(workdir: Path) -> None:
    configfile = _config(workdir, "bad-device.yaml", predict={"device": "gpu0"})
    with pytest.raises(Exception, match=r"predict\.device: 'gpu0' does not match"):
        planned_resources(workdir, configfile)

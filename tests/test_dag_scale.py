"""What keeps a production DAG cheap, without losing what it tracks.

- Parsing the Snakefile (which every cluster job does again) imports no plotting, ML or compiled-physics
  module: checked in a real `snakemake -n` subprocess, which reports the modules it ended up with.
- The per-sample values that the rules compute once per sample still carry every config key: a changed
  key changes the params (Snakemake's rerun trigger) of exactly the jobs that read it.
How long a dry run takes at production size is for benchmarks/bench_dryrun.py, not for a test.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from workflow_api import ROOT, copy_project, dry_run

HEAVY = ("matplotlib", "torch", "numba", "awkward", "uproot", "fastjet", "tensorflow_datasets", "colliderflow.evaluate.pf.plots")

# `snakemake -n` in this process, then the top-level names (and colliderflow modules) it imported.
_REPORT_MODULES = """
import sys
from snakemake.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("MODULES " + " ".join(sorted(sys.modules)))
sys.exit(code)
"""


@pytest.mark.parametrize("configfile", ["config/ci.yaml", "config/config.yaml"])
def test_parsing_the_workflow_imports_nothing_heavy(tmp_path, configfile):
    work = copy_project(tmp_path / "wf")
    result = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES, "-n", "--quiet", "rules", "--cores", "1", "--configfile", configfile],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("MODULES "))
    modules = set(line.split()[1:])
    assert "colliderflow.evaluate.figures" in modules, "the workflow did not parse rules/evaluate.smk"
    loaded = [name for name in HEAVY if name in modules]
    assert loaded == [], f"parsing the Snakefile imported {loaded}"


def _job_params(workdir: Path, configfile: Path) -> dict[tuple[str, tuple], str]:
    """{(rule, wildcards): repr of the job's params}: what Snakemake stores and compares to re-run a job."""
    with dry_run(workdir, [configfile]) as dag:
        return {
            (job.rule.name, tuple(sorted(job.wildcards_dict.items()))): repr(sorted(dict(job.params.items()).items()))
            for job in dag.jobs
        }


def _set(path: str, value) -> Callable[[dict], None]:
    def mutate(config: dict) -> None:
        *parents, key = path.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[key] = value

    return mutate


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    work = copy_project(tmp_path_factory.mktemp("dag") / "wf")
    config = yaml.safe_load((work / "config/ci.yaml").read_text())
    return work, config, _job_params(work, work / "config/ci.yaml")


@pytest.mark.parametrize(
    ("mutate", "changed"),
    [
        # a sample's own key: its generate jobs only
        (_set("samples.qq.events_per_shard", 50), {("generate", "qq")}),
        (_set("samples.pp_wz.options", {"mpi": True}), {("generate", "pp_wz")}),
        # a sample's sqrt_s replaces the global one for that sample only
        (_set("samples.pp_qcd.sqrt_s", 13000.0), {("generate", "pp_qcd")}),
        # the global sqrt_s: the generate jobs of every sample that does not set its own
        (_set("generate.sqrt_s", 365.0), {("generate", s) for s in ("ttbar", "qq", "ww")}),
        # the ntuplizer's section: every particle-flow ntuplize job, nothing else
        (_set("ntuplize.jets.radius", 0.5), {("ntuplize", s) for s in ("ttbar", "qq", "ww")}),
        # the jet ntuplizer's section: every jet ntuplize job
        (_set("jets.min_pt", 150.0), {("ntuplize_jets", s) for s in ("pp_ttbar", "pp_wz", "pp_qcd")}),
        # the split seed reaches the ntuplize jobs of every sample
        (
            _set("seed", 8),
            {("generate", s) for s in ("ttbar", "qq", "ww", "pp_ttbar", "pp_wz", "pp_qcd")}
            | {("ntuplize", s) for s in ("ttbar", "qq", "ww")},
        ),
    ],
)
def test_a_changed_key_changes_the_params_of_exactly_its_jobs(base, tmp_path, mutate, changed):
    work, config, before = base
    config = yaml.safe_load(yaml.safe_dump(config))
    mutate(config)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    after = _job_params(work, path)
    assert after.keys() == before.keys()
    differ = {key for key in before if before[key] != after[key]}
    got = {(rule, dict(wildcards).get("sample")) for rule, wildcards in differ if rule in {"generate", "ntuplize", "ntuplize_jets"}}
    assert got == changed

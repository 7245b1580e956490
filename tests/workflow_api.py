"""Drive the project's Snakefile through the Snakemake API (no subprocess), for DAG-level tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    OutputSettings,
    Quietness,
    ResourceSettings,
)

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("Snakefile", "rules", "workflow", "config", "envs", "profiles")


@contextmanager
def dry_run(
    workdir: Path,
    configfiles: Iterable[Path] = (),
    *,
    forcerun: Iterable[str] = (),
    until: Iterable[str] = (),
) -> Iterator[Any]:
    """Dry-run the workflow in `workdir` and yield its DAG (jobs, rules, params) while the API is open."""
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=2),
            config_settings=ConfigSettings(
                configfiles=[Path(c).absolute() for c in configfiles]
            ),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        dag_api = workflow_api.dag(DAGSettings(forcerun=frozenset(forcerun), until=frozenset(until)))
        dag_api.execute_workflow(pseudo_executor="dryrun")
        yield workflow_api._workflow.dag


def planned_jobs(
    workdir: Path,
    configfiles: Iterable[Path] = (),
    *,
    forcerun: Iterable[str] = (),
    until: Iterable[str] = (),
) -> dict[str, int]:
    """Dry-run the workflow in `workdir`; return {rule: number of jobs that would run}."""
    with dry_run(workdir, configfiles, forcerun=forcerun, until=until) as dag:
        counts = dict(dag.stats()[1])
    counts.pop("total", None)
    return counts


def copy_project(dest: Path) -> Path:
    """A working copy of the workflow files (not results), so a test can run or change it freely."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The `snakemake` command line, as a user runs it, with the venv's bin directory on PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )

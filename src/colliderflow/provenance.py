"""Provenance records written next to every dataset and model.

A record answers "where did this file come from": the config section and its hash, the seeds, the
versions of the packages that shaped the bytes, and the git revision of the workflow.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from colliderflow.config import config_hash
from colliderflow.io.atomic import write_text_atomic

_TRACKED_PACKAGES = (
    "colliderflow",
    "numpy",
    "awkward",
    "uproot",
    "pyarrow",
    "fastjet",
    "pythia8mc",
    "torch",
    "tensorflow-datasets",
    "array-record",
    "snakemake",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour shapes our outputs ("absent" if missing)."""
    versions = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    versions["python"] = platform.python_version()
    return versions


def git_revision(start: Path | None = None) -> str:
    """The workflow's git commit (with "-dirty" for local changes), or "unknown" outside a checkout."""
    cwd = start or Path.cwd()
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("-dirty" if dirty else "")


def provenance_record(*, stage: str, config: Any, seeds: dict[str, int] | None = None,
                      inputs: list[str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance of one output. Deliberately holds no timestamps, so reruns compare equal."""
    return {
        "stage": stage,
        "config_hash": config_hash(config),
        "config": config,
        "seeds": seeds or {},
        "inputs": sorted(inputs or []),
        "versions": package_versions(),
        "git_revision": git_revision(),
        **(extra or {}),
    }


def write_provenance(path: str | Path, record: dict[str, Any]) -> None:
    """Write a provenance record as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def write_job_provenance(path: str | Path, *, stage: str, shard_records: list[Path]) -> None:
    """One record for a job that made several shards: each shard's own record, in shard order.

    A job's record is also its handle in the DAG: downstream rules depend on it, not on each shard file,
    which keeps production-scale DAGs (tens of thousands of shards) small.
    """
    shards = [json.loads(Path(p).read_text()) for p in shard_records]
    write_provenance(path, {"stage": stage, "shards": shards})

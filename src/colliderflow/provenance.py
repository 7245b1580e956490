"""Provenance records written next to every dataset and model.

A record answers "where did this file come from": the config section and its hash, the seeds, the
versions of the packages that shaped the bytes, and the git revision of the workflow.
"""

from __future__ import annotations

import hashlib
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

# `status` of a shard in a job's record: made, or failed and skipped (generate --skip-failed).


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


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks: the checksum records give of what they describe."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

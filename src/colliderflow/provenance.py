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
SHARD_OK = "ok"
SHARD_FAILED = "failed"
_MAX_ERROR_CHARS = 4000


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


def error_summary(error: BaseException) -> dict[str, str]:
    """Type and message of an exception as a record stores them, the message capped in length.

    External tools can put pages of output into an exception; the record keeps the head, which names
    the problem, and the job's log keeps the rest.
    """
    message = str(error)
    if len(message) > _MAX_ERROR_CHARS:
        message = f"{message[:_MAX_ERROR_CHARS]}… ({len(message) - _MAX_ERROR_CHARS} more characters in the job log)"
    return {"type": type(error).__name__, "message": message}


def failed_shard_record(*, stage: str, config: Any, seeds: dict[str, int], error: BaseException,
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record of a shard whose production raised: what was asked for, and why it did not happen.

    It has the fields of a successful shard's identity (sample, shard, seeds, config) so that a
    failure can be rerun by hand from the record alone, plus `status: failed` and the error.
    """
    return provenance_record(stage=stage, config=config, seeds=seeds,
                             extra={**(extra or {}), "status": SHARD_FAILED, "error": error_summary(error)})


def annotate_record(path: str | Path, **fields: Any) -> None:
    """Add fields to a record already on disk (e.g. a shard's status once its job knows it)."""
    record = json.loads(Path(path).read_text())
    record.update(fields)
    write_provenance(path, record)


def write_job_provenance(path: str | Path, *, stage: str, shard_records: list[Path]) -> None:
    """One record for a job that made several shards: each shard's own record, in shard order.

    A job's record is also its handle in the DAG: downstream rules depend on it, not on each shard file,
    which keeps production-scale DAGs (tens of thousands of shards) small. What a reader of the job
    needs without walking the shards is lifted to the top: the job-wide `skip_failed_shards` setting,
    and the numbers of shards whose generation failed (`failed_shards`) or that were skipped
    (`skipped_shards`), whenever the shard records carry those fields.
    """
    shards = [json.loads(Path(p).read_text()) for p in shard_records]
    job: dict[str, Any] = {"stage": stage}
    flags = {s["skip_failed_shards"] for s in shards if "skip_failed_shards" in s}
    if len(flags) > 1:
        raise ValueError(f"{path}: the shards of one job disagree on skip_failed_shards")
    if flags:
        job["skip_failed_shards"] = flags.pop()
    if any("status" in s for s in shards):
        job["failed_shards"] = [s.get("shard") for s in shards if s.get("status") == SHARD_FAILED]
    if any("skipped" in s for s in shards):
        job["skipped_shards"] = [s.get("shard") for s in shards if s.get("skipped")]
    write_provenance(path, {**job, "shards": shards})


def read_job_provenance(path: str | Path, *, stage: str) -> dict[str, Any]:
    """A job's record (see `write_job_provenance`), checked to be of `stage`; ValueError naming the file.

    Records written before shard statuses existed have none: their shards read as `ok`, which is what
    they were (a failed shard then failed its whole job, leaving no record).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such provenance record")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON provenance record ({exc})") from exc
    if not isinstance(record, dict) or record.get("stage") != stage or not isinstance(record.get("shards"), list):
        found = record.get("stage") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path}: not a {stage} job record (stage {found!r}, or no list of shards)")
    for index, shard in enumerate(record["shards"]):
        if not isinstance(shard, dict) or not isinstance(shard.get("shard"), int):
            raise ValueError(f"{path}: entry {index} of shards has no shard number")  # noqa: TRY004
        status = shard.setdefault("status", SHARD_OK)
        if status not in (SHARD_OK, SHARD_FAILED):
            raise ValueError(f"{path}: shard {shard['shard']} has unknown status {status!r}")
    return record


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks: the checksum records give of what they describe."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()

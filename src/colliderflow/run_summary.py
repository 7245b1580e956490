"""The run summary: for each sample, which generation shards were asked for, made, and failed.

With `skip_failed_shards` a run can finish with fewer events than configured. That is acceptable
only when it is visible, so the summary lists every failed shard (number, seed, error) per sample and
for the whole run, states the setting the generate jobs ran with, and logs one WARNING per failed
shard. It is read from the generate jobs' records only: they are the DAG's handles of the shards,
and each shard's entry says `ok` or `failed` (records from before shard statuses read as `ok`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from colliderflow.io.atomic import write_text_atomic
from colliderflow.provenance import SHARD_FAILED, read_job_provenance

log = logging.getLogger(__name__)


def _failure(entry: dict[str, Any], record: Path) -> dict[str, Any]:
    error = entry.get("error") or {}
    return {
        "sample": entry.get("sample"),
        "shard": entry["shard"],
        "seed": (entry.get("seeds") or {}).get("generate"),
        "error_type": error.get("type"),
        "error": error.get("message"),
        "record": str(record),
    }


def _skip_setting(jobs: list[dict[str, Any]]) -> bool | None:
    """The jobs' common skip_failed_shards value; None (and a warning) when they disagree.

    A job record without the field comes from before the setting existed, when a failure always
    failed the job: it counts as false.
    """
    values = {bool(job.get("skip_failed_shards", False)) for job in jobs}
    if len(values) == 1:
        return values.pop()
    log.warning("the generate jobs of this run disagree on skip_failed_shards (some ran with it, some without)")
    return None


def summarize_generation(records: list[Path]) -> dict[str, Any]:
    """The summary (see `write_run_summary`) of the given generate job records, not written anywhere."""
    records = [Path(p) for p in records]
    if not records:
        raise ValueError("run summary: no generation records given")
    jobs = [read_job_provenance(path, stage="generate") for path in records]
    samples: dict[str, dict[str, Any]] = {}
    seen: dict[tuple[str, int], Path] = {}
    failed_shards = []
    for path, job in zip(records, jobs, strict=True):
        for entry in job["shards"]:
            sample = entry.get("sample")
            if not isinstance(sample, str):
                raise ValueError(f"{path}: shard {entry['shard']} names no sample")  # noqa: TRY004
            key = (sample, entry["shard"])
            if key in seen:
                raise ValueError(f"sample {sample!r} shard {entry['shard']} is recorded twice: in {seen[key]} "
                                 f"and in {path}")
            seen[key] = path
            n_events = int(entry.get("n_events", 0))
            stats = samples.setdefault(sample, {
                "shards_requested": 0, "shards_ok": 0, "shards_failed": 0, "ok_shards": [], "failed_shards": [],
                "events_requested": 0, "events_generated": 0,
            })
            stats["shards_requested"] += 1
            stats["events_requested"] += n_events
            if entry["status"] == SHARD_FAILED:
                failure = _failure(entry, path)
                stats["shards_failed"] += 1
                stats["failed_shards"].append(failure)
                failed_shards.append(failure)
            else:
                stats["shards_ok"] += 1
                stats["ok_shards"].append(entry["shard"])
                stats["events_generated"] += n_events
    for stats in samples.values():
        stats["ok_shards"].sort()
        stats["failed_shards"].sort(key=lambda f: f["shard"])
    failed_shards.sort(key=lambda f: (f["sample"], f["shard"]))
    for failure in failed_shards:
        log.warning("sample %s shard %d (seed %s) failed to generate and was skipped: %s: %s (%s)",
                    failure["sample"], failure["shard"], failure["seed"], failure["error_type"], failure["error"],
                    failure["record"])
    return {
        "skip_failed_shards": _skip_setting(jobs),
        "records": [str(p) for p in records],
        "samples": {name: samples[name] for name in sorted(samples)},
        "failed_shards": failed_shards,
        "totals": {
            "shards_requested": sum(s["shards_requested"] for s in samples.values()),
            "shards_ok": sum(s["shards_ok"] for s in samples.values()),
            "shards_failed": len(failed_shards),
            "events_requested": sum(s["events_requested"] for s in samples.values()),
            "events_generated": sum(s["events_generated"] for s in samples.values()),
        },
    }


def write_run_summary(*, generation_records: list[Path], output: Path) -> dict[str, Any]:
    """Summarise the generate jobs' records into `output` (JSON, written atomically); return the summary.

    Per sample: shards_requested, shards_ok, shards_failed, the ok shard numbers, the failed shards
    (shard, seed, error_type, error, record), events_requested and events_generated (of the ok
    shards). At the top: `skip_failed_shards` as the jobs ran (null if they disagree), every failed
    shard in `failed_shards`, and run totals. Unreadable or foreign records, and a shard recorded
    twice, are ValueErrors naming the files.
    """
    summary = summarize_generation(generation_records)
    write_text_atomic(output, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    totals = summary["totals"]
    log.info("run summary: %d of %d shard(s) generated (%d failed), %d of %d events → %s", totals["shards_ok"],
             totals["shards_requested"], totals["shards_failed"], totals["events_generated"],
             totals["events_requested"], output)
    return summary

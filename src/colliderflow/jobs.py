"""The shard-job policy: how one job makes several shards, what happens when one fails, and its record.

A job of the workflow may make several shards (config `shards_per_job`), each with its own seed and file.
Its record is one JSON file, the job's handle in the DAG, with each shard's own record inside
(`write_job_provenance`). With `skip_failed_shards`, a generate shard that raises is skipped, not hidden:
logged, marked `failed` in the record, its declared file an empty placeholder that every reader refuses;
the ntuplize jobs of that shard then write zero-row shards that say why (ntuplize.empty_shard), and the
run summary (`write_run_summary`) lists every failed shard. The stages themselves know none of this: they
make one shard from its inputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from colliderflow.io.atomic import atomic_path, temporary_dir, write_text_atomic
from colliderflow.provenance import provenance_record, write_provenance

log = logging.getLogger("colliderflow")

SHARD_OK = "ok"
SHARD_FAILED = "failed"
_MAX_ERROR_CHARS = 4000


# --------------------------------------------------------------------------------------------------
# Job records: one per job, each shard's record inside.
# --------------------------------------------------------------------------------------------------
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


@contextlib.contextmanager
def job_provenance(path: Path | None, *, stage: str, n_shards: int) -> Iterator[list[Path | None]]:
    """Per-shard record paths for a job's shards, combined into the job's one record at `path` at the end."""
    if path is None:
        yield [None] * n_shards
        return
    with temporary_dir(path) as tmp:  # .colliderflow-tmp-provenance.json~…, removed by the next run if killed
        records = [tmp / f"{i}.json" for i in range(n_shards)]
        yield records
        write_job_provenance(path, stage=stage, shard_records=records)


# --------------------------------------------------------------------------------------------------
# Several shards a job, skip-failed, placeholders.
# --------------------------------------------------------------------------------------------------
def paired(**options: Sequence[Any] | None) -> list[tuple]:
    """The per-shard options of a job that handles several shards, zipped, or an error naming the mismatch."""
    names = list(options)
    values = [list(options[n] or []) for n in names]
    lengths = {n: len(v) for n, v in zip(names, values, strict=True) if v}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-shard options need one value per shard each, got {lengths}")
    n = max(lengths.values())
    return list(zip(*[v if v else [None] * n for v in values], strict=True))


SKIP_FAILED_ENV = "COLLIDERFLOW_SKIP_FAILED_SHARDS"


def skip_failed_setting(flag: bool | None) -> bool:
    """--skip-failed / --no-skip-failed when given, else the environment's COLLIDERFLOW_SKIP_FAILED_SHARDS.

    The workflow sets the variable from the config's `skip_failed_shards` instead of adding the flag to
    the command, so that switching the setting does not make Snakemake rerun every generate job. Unset
    means off; the value used is written into every shard's record either way.
    """
    if flag is not None:
        return flag
    value = os.environ.get(SKIP_FAILED_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{SKIP_FAILED_ENV}={value!r}: expected 1 or 0 (true or false)")


def generate_job(*, sample: str, process: str, backend: str, n_events: int, shards: Sequence[int],
                 seeds: Sequence[int], outputs: Sequence[Path], params: dict[str, Any],
                 backend_options: dict[str, Any] | None, process_options: dict[str, Any] | None,
                 pileup_file: Path | None, provenance: Path | None, skip_failed: bool | None) -> None:
    """One generate job: its shards in turn, each with its own seed and file, into one job record.

    With skip_failed (see `skip_failed_setting`), a shard that raises is logged, marked failed in the
    record and replaced by an empty placeholder file; otherwise the first failure fails the job.
    """
    from colliderflow.generate.run import generate_shard

    skip_failed = skip_failed_setting(skip_failed)
    if skip_failed and provenance is None:
        raise ValueError("--skip-failed needs --provenance: the job's record is where a skipped shard is reported")
    jobs = paired(shard=shards, seed=seeds, output=outputs)
    failures: list[tuple[int, int, Path, Exception]] = []
    # One job may make several shards (config `shards_per_job`): each keeps its own seed and file.
    with job_provenance(provenance, stage="generate", n_shards=len(jobs)) as shard_records:
        for (shard, seed, output), record in zip(jobs, shard_records, strict=True):
            identity = {"sample": sample, "process": process, "backend": backend, "shard": shard,
                        "n_events": n_events, "output": str(output), "skip_failed_shards": skip_failed}
            try:
                generate_shard(
                    sample=sample,
                    process=process,
                    backend=backend,
                    shard=shard,
                    n_events=n_events,
                    seed=seed,
                    params=params,
                    output=output,
                    provenance=record,
                    backend_options=backend_options,
                    process_options=process_options,
                    pileup_file=pileup_file,
                )
            except Exception as exc:
                if not skip_failed:
                    raise
                # Skipped, not hidden: logged here, marked failed in the record, listed by the run summary.
                log.error("generate %s shard %d (seed %d) failed and is skipped (skip_failed_shards on): %s: %s",
                          sample, shard, seed, type(exc).__name__, exc, exc_info=exc)
                failures.append((shard, seed, output, exc))
                write_provenance(record, failed_shard_record(
                    stage="generate", config=params, seeds={"generate": int(seed)}, error=exc,
                    extra={**identity, "backend_options": backend_options or {},
                           "process_options": process_options or {}},
                ))
                continue
            if record is not None:
                annotate_record(record, status=SHARD_OK, output=str(output), skip_failed_shards=skip_failed)
        if failures and len(failures) == len(jobs):
            # Still skipped: with one shard per job this is the only way a shard is ever skipped. A sample
            # left with too few events then fails its validation step, which names it.
            log.error("generate %s: all %d shard(s) of the job failed and are skipped", sample, len(jobs))
        for shard, _, output, _ in failures:
            # Snakemake needs the declared file; an empty one holds no events, and every ROOT reader
            # refuses it as "empty file (0 bytes)", naming it. A stale file from an earlier run is replaced.
            with atomic_path(output):
                pass
            log.warning("generate %s shard %d: wrote an empty placeholder %s (no events)", sample, shard, output)


def failed_generation_shards(record: str | Path, *, sample: str | None) -> tuple[set[int], dict[int, str]]:
    """(all shard numbers, {failed shard: reason}) of a generate job's record.

    `sample`, when given, must be the record's: a record of another sample would skip the wrong shards.
    """
    job = read_job_provenance(record, stage="generate")
    shards: set[int] = set()
    failed: dict[int, str] = {}
    for entry in job["shards"]:
        if sample is not None and entry.get("sample") not in (None, sample):
            raise ValueError(f"{record}: shard {entry['shard']} belongs to sample {entry.get('sample')!r}, "
                             f"not {sample!r}")
        shards.add(entry["shard"])
        if entry["status"] == SHARD_FAILED:
            error = entry.get("error") or {}
            seed = (entry.get("seeds") or {}).get("generate")
            failed[entry["shard"]] = (
                f"generation of shard {entry['shard']} (seed {seed}) failed with "
                f"{error.get('type', 'an error')}: {error.get('message', '')} (skipped, see {record})"
            )
    return shards, failed


def shard_groups(*, inputs: list[Path], shards: list[int] | None, outputs: list[Path], sample: str | None,
                 generation_record: Path | None) -> tuple[list[tuple], dict[int, str]]:
    """(inputs, shard, output) per output of an ntuplize job, and the shards its generation record marks failed.

    One output takes every input as one shard; one output per input makes each input its own shard (as
    a job of several shards runs). With --generation-record, inputs are matched to generation shards by
    shard number, which needs one shard per input.
    """
    if len(outputs) == 1:
        groups = [(inputs, (shards or [0])[0], outputs[0])]
    elif len(outputs) == len(inputs):
        groups = paired(inputs=[[path] for path in inputs], shard=shards or list(range(len(inputs))), output=outputs)
    else:
        raise ValueError(f"-o takes one output, or one per input ({len(inputs)}); got {len(outputs)}")
    failed: dict[int, str] = {}
    if generation_record is not None:
        if any(len(group_inputs) != 1 for group_inputs, _, _ in groups):
            raise ValueError("--generation-record needs one output per input (each input its own shard)")
        recorded, failed = failed_generation_shards(generation_record, sample=sample)
        missing = sorted({shard for _, shard, _ in groups} - recorded)
        if missing:
            raise ValueError(f"{generation_record}: no record of shard(s) {missing} (it has {sorted(recorded)});"
                             " is it the record of the job that made these inputs?")
    return groups, failed


def ntuplize_job(*, inputs: list[Path], shards: list[int] | None, outputs: list[Path], sample: str | None,
                 params: dict[str, Any], seed: int, generation_record: Path | None, provenance: Path | None) -> None:
    """One ntuplize job (see `shard_groups`): a shard whose generation failed and was skipped becomes a
    zero-row shard that says why; every other shard is ntuplized."""
    from colliderflow.ntuplize.empty_shard import ntuplize_skipped_shard
    from colliderflow.ntuplize.events import default_sample_name, ntuplize_files

    groups, failed = shard_groups(inputs=inputs, shards=shards, outputs=outputs, sample=sample,
                                  generation_record=generation_record)
    with job_provenance(provenance, stage="ntuplize", n_shards=len(groups)) as shard_records:
        for (shard_inputs, shard, output), record in zip(groups, shard_records, strict=True):
            if shard in failed:
                ntuplize_skipped_shard(inputs=shard_inputs, output=output,
                                       sample=sample or default_sample_name(shard_inputs[0]), shard=shard,
                                       params=params, seed=seed, reason=failed[shard], provenance=record)
                continue
            ntuplize_files(
                shard_inputs,
                output=output,
                sample=sample,
                shard=shard,
                params=params,
                seed=seed,
                provenance=record,
            )
            if record is not None:
                annotate_record(record, skipped=False)


def ntuplize_jets_job(*, inputs: list[Path], shards: list[int] | None, outputs: list[Path], sample: str | None,
                      params: dict[str, Any], generation_record: Path | None, provenance: Path | None) -> None:
    """One ntuplize-jets job (see `shard_groups`): skipped generation shards become empty jet shards that
    say why; the others go to the jet ntuplizer of their format."""
    from colliderflow.ntuplize.empty_shard import write_skipped_jet_shard

    groups, failed = shard_groups(inputs=inputs, shards=shards, outputs=outputs, sample=sample,
                                  generation_record=generation_record)
    with job_provenance(provenance, stage="ntuplize_jets", n_shards=len(groups)) as shard_records:
        for (shard_inputs, shard, output), record in zip(groups, shard_records, strict=True):
            if shard in failed:  # generation failed and was skipped: an empty shard that says why
                write_skipped_jet_shard(output, reason=failed[shard])
                if record is not None:
                    write_provenance(record, provenance_record(
                        stage="ntuplize_jets", config=params, inputs=[str(p) for p in shard_inputs],
                        extra={"shard": shard, "skipped": True, "reason": failed[shard], "stats": {"jets_written": 0}},
                    ))
                continue
            _jet_ntuplizer(shard_inputs)(shard_inputs, output=output, params=params, provenance=record)
            if record is not None:
                annotate_record(record, shard=shard, skipped=False)


def _jet_ntuplizer(inputs: list[Path]) -> Any:
    """The jet ntuplizer for the inputs' format (all builtin or all Delphes; detected from the files)."""
    from colliderflow.io.sim_reader import detect_format
    from colliderflow.ntuplize.builtin_jets import ntuplize_builtin_jets
    from colliderflow.ntuplize.delphes_jets import ntuplize_delphes_jets

    formats = {path: detect_format(path) for path in inputs}
    kinds = set(formats.values())
    if kinds == {"builtin"}:
        return ntuplize_builtin_jets
    if kinds == {"delphes"}:
        return ntuplize_delphes_jets
    listing = ", ".join(f"{path} ({fmt})" for path, fmt in formats.items())
    raise ValueError(f"ntuplize-jets reads builtin or Delphes files, all of one kind; got {listing}")


# --------------------------------------------------------------------------------------------------
# The run summary: which generation shards were asked for, made, and failed.
# --------------------------------------------------------------------------------------------------
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

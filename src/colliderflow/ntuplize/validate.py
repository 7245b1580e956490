"""Check a sample's event-level Parquet shards before anything trains on them; fail loudly when broken.

A shard can be well-formed Parquet and still be useless: NaNs in the features, targets that lost the
event's energy, a class that never occurs, empty events. Each check has a threshold in `params`; the
summary JSON and the plot are always written (so the reason for a failure can be inspected), then a
ValueError lists the failed checks.

Energy closure. The visible truth energy of an event (status 1, no neutrinos) is split by the
ntuplizer into the energy carried by the targets and `gen_unassigned_energy` (particles inside the
polar acceptance that reached no element), so per event closure = Σ target E / (Σ target E +
gen_unassigned_energy) is the fraction of the visible energy inside the acceptance that the targets
carry: 1 for a perfectly covered event, lower when particles curl up, are missed, or the target
assignment drops particles (ISR photons along the beam do not count against it). An event is an outlier when
|closure − 1| > closure_tolerance; too many outliers fail the check. Events with no visible energy
at all have no closure and are counted separately.

Empty shards. A shard with no events is valid input: it is what the ntuplizer writes for a generation
shard that failed and was skipped (`skip_failed_shards`, see `ntuplize.empty_shard`). Such shards add
nothing to the checks — `min_events` still judges the sample's total — but the summary counts and
lists them (`empty_shards`, and `skipped_shards` with the reason for those written for a failed
generation shard), so a sample that lost shards says so where its validation is read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from colliderflow.io.atomic import atomic_path, output_set, write_text_atomic
from colliderflow.io.parquet import read_event_parquet
from colliderflow.ntuplize.empty_shard import skipped_reason
from colliderflow.params import stage_params
from colliderflow.schema import CLASS_NAMES, N_CLASSES, PF, SPLITS

log = logging.getLogger(__name__)

_FLOAT_COLUMNS = ("X", "ytarget", "ycand", "genmet", "genjets", "targetjets", "gen_unassigned_energy")


@dataclass(frozen=True)
class ValidationParams:
    """Thresholds of the checks; every key may be overridden from the config."""

    min_events: int = 1  # fewer events in the sample fails
    max_nan: int = 0  # non-finite values allowed over all float columns
    closure_tolerance: float = 0.05  # |closure − 1| above this makes an event an outlier
    max_closure_outlier_fraction: float = 0.1  # share of events with a closure outlier allowed
    min_mean_elements: float = 1.0  # mean elements per event below this fails (empty events)

    def check(self, where: str) -> None:
        """Each threshold a number (the counts whole numbers); the schema states the same for the config."""
        for f in fields(self):
            value = getattr(self, f.name)
            whole = f.type in (int, "int")
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
                kind = "a whole number" if whole else "a number"
                raise ValueError(f"{where}.{f.name}: must be {kind}, got {value!r}")


def _threshold_section(params: dict[str, Any]) -> dict[str, Any]:
    """The thresholds: `params` itself, or its `validation` part when given the whole `ntuplize` section."""
    if "validation" in params or {"split_fractions", "jets"} & set(params):
        section = params.get("validation", {})
        if not isinstance(section, dict):
            raise ValueError(f"ntuplize.validation: must be a mapping of thresholds, got {section!r}")
        return section
    return params


def _non_finite(array: ak.Array) -> int:
    values = ak.to_numpy(ak.flatten(array, axis=None))
    return int(values.size - np.count_nonzero(np.isfinite(values)))


def _file_stats(path: Path) -> dict[str, Any]:
    """What the checks need from one shard: small per-event arrays and counts (one shard in memory)."""
    events = read_event_parquet(path)
    n_elements = ak.to_numpy(events.n_elements).astype(np.int64)
    lengths = [ak.to_numpy(ak.num(events[c], axis=1)) for c in ("X", "ytarget", "ycand")]
    inconsistent = int(np.sum((lengths[0] != n_elements) | (lengths[1] != n_elements) | (lengths[2] != n_elements)))
    cls = {}
    bad_class = 0
    for block in ("ytarget", "ycand"):
        values = ak.to_numpy(ak.flatten(events[block][:, :, PF["cls_id"]], axis=None))
        valid = np.isfinite(values) & (values == np.round(values)) & (values >= 0) & (values < N_CLASSES)
        bad_class += int(np.sum(~valid))
        cls[block] = np.bincount(values[valid].astype(np.int64), minlength=N_CLASSES)
    target_e = ak.to_numpy(ak.sum(events.ytarget[:, :, PF["energy"]], axis=1)).astype(np.float64)
    unassigned = ak.to_numpy(events.gen_unassigned_energy).astype(np.float64)
    split = ak.to_numpy(events.split).astype(str)
    return {
        "events": len(events),
        "event_id": ak.to_numpy(events.event_id),
        "sample_of_event": ak.to_numpy(events.sample).astype(str),
        "n_elements": n_elements,
        "inconsistent_lengths": inconsistent,
        "non_finite": {c: _non_finite(events[c]) for c in _FLOAT_COLUMNS},
        "classes": cls,
        "bad_class": bad_class,
        "target_energy": target_e,
        "visible_energy": target_e + unassigned,
        "splits": {s: int(np.sum(split == s)) for s in SPLITS},
        "bad_split": int(np.sum(~np.isin(split, SPLITS))),
        "skipped": skipped_reason(path),
    }


def _plot(path: Path, n_elements: np.ndarray, classes: dict[str, np.ndarray], closure: np.ndarray,
          params: ValidationParams, title: str) -> None:
    import matplotlib  # imported here: only this function draws, and the import is slow

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    lo, hi = (int(n_elements.min()), int(n_elements.max())) if n_elements.size else (0, 1)
    step = max(1, (hi - lo + 1) // 60)  # whole numbers per bin: no empty comb teeth
    ax.hist(n_elements, bins=np.arange(lo, hi + step + 1, step) - 0.5, color="tab:blue")
    ax.set_xlabel("elements per event (tracks + clusters)")
    ax.set_ylabel("events")

    ax = axes[1]
    x = np.arange(N_CLASSES)
    for offset, (block, label) in zip((-0.2, 0.2), (("ytarget", "target"), ("ycand", "baseline")), strict=True):
        counts = classes[block][1:]
        total = counts.sum()
        ax.bar(x[1:] + offset, counts / total if total else counts, width=0.4, label=label)
    ax.set_xticks(x[1:], CLASS_NAMES[1:], rotation=20)
    ax.set_xlabel("particle class")
    ax.set_ylabel("fraction of particles")
    ax.legend()

    ax = axes[2]
    finite = closure[np.isfinite(closure)]
    ax.hist(np.clip(finite, 0.0, 1.5), bins=60, range=(0.0, 1.5), color="tab:green")
    for edge in (1 - params.closure_tolerance, 1 + params.closure_tolerance):
        ax.axvline(edge, color="k", linestyle="--", linewidth=1)
    if finite.size:  # a log axis of an empty histogram has nothing to scale (all shards empty)
        ax.set_yscale("log")
    ax.set_xlabel("Σ target E / visible truth E per event")
    ax.set_ylabel("events")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def validate_dataset(inputs: list[Path], *, params: dict, summary: Path, plot: Path) -> dict[str, Any]:
    """Validate a sample's Parquet shards; write `summary` (JSON) and `plot` (PNG); return the summary.

    `params` holds the thresholds (ValidationParams; absent keys keep their defaults), or is the whole
    `ntuplize` config section, whose `validation` part is then used. Raises ValueError naming the
    inputs, the summary and the failed checks when a threshold is violated — after both outputs have
    been written. Shards without events are accepted and reported (see the module doc).
    """
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError("validate: no input files")
    thresholds = stage_params(ValidationParams, _threshold_section(params), where="ntuplize.validation")
    per_file = [_file_stats(p) for p in inputs]

    n_events = sum(s["events"] for s in per_file)
    n_elements = np.concatenate([s["n_elements"] for s in per_file])
    event_id = np.concatenate([s["event_id"] for s in per_file])
    sample_of_event = np.concatenate([s["sample_of_event"] for s in per_file])
    target_e = np.concatenate([s["target_energy"] for s in per_file])
    visible_e = np.concatenate([s["visible_energy"] for s in per_file])
    has_energy = visible_e > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        closure = np.where(has_energy, target_e / np.where(has_energy, visible_e, 1.0), np.nan)
    measured = has_energy | ~np.isfinite(visible_e)
    outlier = measured & ~(np.abs(closure - 1.0) <= thresholds.closure_tolerance)  # NaN counts as outlier
    outlier_fraction = float(outlier.sum() / measured.sum()) if measured.any() else 0.0
    classes = {b: sum(s["classes"][b] for s in per_file) for b in ("ytarget", "ycand")}
    non_finite = {c: sum(s["non_finite"][c] for s in per_file) for c in _FLOAT_COLUMNS}
    n_non_finite = sum(non_finite.values())
    samples = sorted(set(sample_of_event.tolist()))
    # event_id is unique within a sample (shard · 2**32 + index); different samples may share ids.
    duplicates = sum(int(np.sum(sample_of_event == name) - np.unique(event_id[sample_of_event == name]).size)
                     for name in samples)
    inconsistent = sum(s["inconsistent_lengths"] for s in per_file)
    bad_class = sum(s["bad_class"] for s in per_file)
    bad_split = sum(s["bad_split"] for s in per_file)
    mean_elements = float(n_elements.mean()) if n_elements.size else 0.0
    finite_closure = closure[np.isfinite(closure)]
    empty_shards = [str(p) for p, s in zip(inputs, per_file, strict=True) if s["events"] == 0]
    skipped_shards = {str(p): s["skipped"] for p, s in zip(inputs, per_file, strict=True) if s["skipped"] is not None}
    for path, reason in skipped_shards.items():
        log.warning("validate: %s holds no events, its generation shard was skipped: %s", path, reason)

    def check(name: str, value: float, threshold: float, passed: bool) -> dict[str, Any]:
        return {"name": name, "value": value, "threshold": threshold, "passed": bool(passed)}

    checks = [
        check("min_events", n_events, thresholds.min_events, n_events >= thresholds.min_events),
        check("max_nan", n_non_finite, thresholds.max_nan, n_non_finite <= thresholds.max_nan),
        check("max_closure_outlier_fraction", outlier_fraction, thresholds.max_closure_outlier_fraction,
              outlier_fraction <= thresholds.max_closure_outlier_fraction),
        check("min_mean_elements", mean_elements, thresholds.min_mean_elements,
              mean_elements >= thresholds.min_mean_elements),
        check("unique_event_ids", duplicates, 0, duplicates == 0),
        check("consistent_element_counts", inconsistent, 0, inconsistent == 0),
        check("valid_class_ids", bad_class, 0, bad_class == 0),
        check("valid_splits", bad_split, 0, bad_split == 0),
    ]
    failed = [c for c in checks if not c["passed"]]

    def fractions(counts: np.ndarray) -> dict[str, float]:
        total = counts.sum()
        return {name: float(counts[i] / total) if total else 0.0 for i, name in enumerate(CLASS_NAMES)}

    result = {
        "inputs": [str(p) for p in inputs],
        "samples": samples,
        "events": n_events,
        "events_per_file": {str(p): s["events"] for p, s in zip(inputs, per_file, strict=True)},
        "shards": len(inputs),
        "n_empty_shards": len(empty_shards),
        "empty_shards": empty_shards,
        "n_skipped_shards": len(skipped_shards),
        "skipped_shards": skipped_shards,
        "splits": {sp: sum(s["splits"][sp] for s in per_file) for sp in SPLITS},
        "elements": {
            "total": int(n_elements.sum()),
            "min": int(n_elements.min()) if n_elements.size else 0,
            "mean": mean_elements,
            "max": int(n_elements.max()) if n_elements.size else 0,
        },
        "class_counts": {b: dict(zip(CLASS_NAMES, map(int, c), strict=True)) for b, c in classes.items()},
        "class_fractions": {b: fractions(c) for b, c in classes.items()},
        "non_finite": non_finite,
        "closure": {
            "definition": "per event: sum target energy / (sum target energy + gen_unassigned_energy)",
            "mean": float(finite_closure.mean()) if finite_closure.size else None,
            "median": float(np.median(finite_closure)) if finite_closure.size else None,
            "outlier_fraction": outlier_fraction,
            "events_without_visible_energy": int((~measured).sum()),
            "tolerance": thresholds.closure_tolerance,
        },
        "params": asdict(thresholds),
        "checks": checks,
        "passed": not failed,
    }
    with output_set(summary, plot):  # the summary and its plot appear together, or neither does
        write_text_atomic(summary, json.dumps(result, indent=2, sort_keys=True) + "\n")
        _plot(plot, n_elements, classes, closure, thresholds,
              title=f"{', '.join(samples) or 'no sample'}: {n_events} events, {len(inputs)} shard(s)"
                    + (f", {len(skipped_shards)} skipped" if skipped_shards else ""))
    if failed:
        reasons = "; ".join(f"{c['name']}: {c['value']} vs threshold {c['threshold']}" for c in failed)
        names = ", ".join(str(p) for p in inputs)
        raise ValueError(f"validation failed for {names} (see {summary}, {plot}): {reasons}")
    return result

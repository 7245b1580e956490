"""The `weights` stage: event shards in, per-event sampling weights plus their documentation out.

Only the training split is reweighted: validation and test keep their natural distributions, and the
weights must not depend on events the model is judged on. Output rows are sorted by
(sample, event_id), the key the training stage joins on, so the file does not depend on input order.

Params (the config's `weights` section): `method` (flat | ref), `class_column` (the column whose
values are the classes), `vars` (exactly two columns → bin edges), `class_weights` (class → weight; its
key order is the class order, the first class being the `ref` reference), and optionally `threshold`
(a fraction, default 0.1) and `discard_under_overflow` (default true); the defaults are weaver's.
Unknown keys are refused, so a misspelt key cannot silently fall back to a default.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from colliderflow.io.atomic import write_text_atomic
from colliderflow.io.parquet import read_event_columns, write_parquet_atomic
from colliderflow.provenance import provenance_record, write_provenance
from colliderflow.weights.histogram import ReweightResult, check_vars, class_indices, reweight_events

log = logging.getLogger(__name__)

REQUIRED_PARAMS: Final = ("method", "class_column", "vars", "class_weights")
OPTIONAL_PARAMS: Final = {"threshold": 0.1, "discard_under_overflow": True}
TRAIN_SPLIT: Final = "train"


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Complete and check the `weights` section before any file is read."""
    missing = [k for k in REQUIRED_PARAMS if k not in params]
    if missing:
        raise ValueError(f"weights params: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(params) - set(REQUIRED_PARAMS) - set(OPTIONAL_PARAMS))
    if unknown:
        raise ValueError(f"weights params: unknown key(s) {', '.join(unknown)}")
    out = {**OPTIONAL_PARAMS, **params}
    if not isinstance(out["class_weights"], Mapping) or not out["class_weights"]:
        raise ValueError("weights params: class_weights must map each class (a class_column value) to a weight")
    if not isinstance(out["class_column"], str):
        raise ValueError(f"weights params: class_column must be a column name, got {out['class_column']!r}")
    if not isinstance(out["discard_under_overflow"], bool):
        raise ValueError(
            f"weights params: discard_under_overflow must be true or false, got {out['discard_under_overflow']!r}"
        )
    check_vars(out["vars"])
    return out


def _key_order(sample: np.ndarray, event_id: np.ndarray, where: str) -> np.ndarray:
    """Row order by (sample, event_id); refuses a key that occurs twice (the join would be ambiguous)."""
    codes, _ = pd.factorize(sample, sort=True)  # codes follow the sorted sample names
    order = np.lexsort((event_id, codes))
    c, e = codes[order], event_id[order]
    same = (c[1:] == c[:-1]) & (e[1:] == e[:-1])
    if same.any():
        at = order[int(np.argmax(same))]
        raise ValueError(f"{where}: event (sample={sample[at]!r}, event_id={int(event_id[at])}) appears more than "
                         f"once ({int(same.sum())} repeated keys)")
    return order


def _stats(result: ReweightResult, labels: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    codes = class_indices(labels, result.classes)
    names = [str(c) for c in result.classes]
    per_class = {}
    for c, name in enumerate(names):
        mine = codes == c
        w = weights[mine]
        per_class[name] = {
            "events": int(mine.sum()),
            "sum_of_weights": float(w.sum()),
            "zero_weight_fraction": float(np.mean(w == 0)) if w.size else 0.0,
            "max_weight": float(w.max()) if w.size else 0.0,
        }
    return {
        "events": int(weights.size),
        "events_not_in_any_class": int(np.sum(codes < 0)),
        "sum_of_weights": float(weights.sum()),
        "zero_weight_fraction": float(np.mean(weights == 0)) if weights.size else 0.0,
        "per_class": per_class,
    }


def compute_weights_from_files(inputs: list[Path], *, params: dict[str, Any], output: Path, histograms: Path,
                               plot: Path, provenance: Path | None) -> None:
    """Weights for every training event of `inputs`, written with their histograms, plot and provenance."""
    p = _check_params(params)
    inputs = [Path(i) for i in inputs]
    if not inputs:
        raise ValueError("weights: no input Parquet files given")
    var_names = list(p["vars"])
    columns = [*var_names, p["class_column"], "sample", "event_id"]
    data = read_event_columns(inputs, columns, split=TRAIN_SPLIT)
    where = f"training split of {len(inputs)} file(s) starting with {inputs[0]}"
    n_events = data["event_id"].size
    if n_events == 0:
        raise ValueError(f"{where}: no training events")

    order = _key_order(data["sample"], data["event_id"], where)

    labels = data[p["class_column"]]
    try:
        result, weights = reweight_events(
            data,
            class_labels=labels,
            classes=list(p["class_weights"]),
            vars=p["vars"],
            method=p["method"],
            class_weights=p["class_weights"],
            threshold=p["threshold"],
            discard_under_overflow=p["discard_under_overflow"],
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc

    table = pa.table({
        "sample": pa.array(data["sample"][order], pa.string()),
        "event_id": pa.array(data["event_id"][order], pa.int64()),
        "weight": pa.array(weights[order].astype(np.float32), pa.float32()),
    })
    write_parquet_atomic(table, output)

    stats = _stats(result, labels, weights)
    document = {**result.to_dict(), "class_column": p["class_column"], "split": TRAIN_SPLIT, "stats": stats}
    write_text_atomic(histograms, json.dumps(document, indent=1) + "\n")
    from colliderflow.weights.plots import plot_projections  # matplotlib only where a plot is drawn

    plot_projections(result, plot)
    if provenance is not None:
        write_provenance(provenance, provenance_record(
            stage="weights", config=params, inputs=[str(i) for i in inputs],
            extra={"outputs": {"weights": str(output), "histograms": str(histograms), "plot": str(plot)},
                   "stats": {k: stats[k] for k in ("events", "events_not_in_any_class", "zero_weight_fraction")}},
        ))
    log.info("weights: %d training events, %.1f%% with weight 0", n_events, 100 * stats["zero_weight_fraction"])

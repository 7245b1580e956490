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

from colliderflow.finite import nonfinite_columns
from colliderflow.io.atomic import output_set, write_text_atomic
from colliderflow.io.parquet import read_event_columns, write_parquet_atomic
from colliderflow.params import EventWeightsParams, stage_params
from colliderflow.provenance import provenance_record, write_provenance
from colliderflow.weights.histogram import ReweightResult, weigh_rows

log = logging.getLogger(__name__)

TRAIN_SPLIT: Final = "train"


def check_classes_present(class_weights: Mapping[str, Any], labels: np.ndarray, *, column: str, where: str,
                          section: str) -> None:
    """Every class named in class_weights must occur in the data: a typo is an error naming the key, never a
    class that is silently empty (or the misleading 'no events inside the binning')."""
    present = {str(v) for v in pd.unique(np.asarray(labels, dtype=object))}
    missing = [str(c) for c in class_weights if str(c) not in present]
    if missing:
        raise ValueError(f"{where}: {section}.class_weights names {missing}, which have no events in column "
                         f"{column!r} (its values: {', '.join(sorted(present)[:20])})")


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


def weight_stats(result: ReweightResult, codes: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """Counts and weight sums per class; `codes` is each row's index in result.classes (-1: no class)."""
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


def write_weight_outputs(*, sample: np.ndarray | pa.Array, event_id: np.ndarray, weights: np.ndarray,
                         result: ReweightResult, document: Mapping[str, Any], output: Path, histograms: Path,
                         plot: Path, rows: str = "events") -> None:
    """The weights Parquet (rows as given, which must already be in key order), histograms JSON and plot.

    `document` is what the histograms file says beyond the maps themselves (class column, split, stats).
    """
    table = pa.table({
        "sample": sample if isinstance(sample, (pa.Array, pa.ChunkedArray)) else pa.array(sample, pa.string()),
        "event_id": pa.array(event_id, pa.int64()),
        "weight": pa.array(weights.astype(np.float32), pa.float32()),
    })
    write_parquet_atomic(table, output)
    write_text_atomic(histograms, json.dumps({**result.to_dict(), **document}, indent=1) + "\n")
    from colliderflow.weights.plots import plot_projections  # matplotlib only where a plot is drawn

    plot_projections(result, plot, rows=rows)


def compute_weights_from_files(inputs: list[Path], *, params: dict[str, Any], output: Path, histograms: Path,
                               plot: Path, provenance: Path | None) -> None:
    """Weights for every training event of `inputs`, written with their histograms, plot and provenance."""
    p = stage_params(EventWeightsParams, params, where="weights").as_dict()  # the dry run's check too
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

    nonfinite_columns({v: data[v] for v in var_names}).resolve(
        where=where, rows="events", allow=False, switch=None)
    labels = data[p["class_column"]]
    check_classes_present(p["class_weights"], labels, column=p["class_column"], where=where, section="weights")
    try:
        weighted = weigh_rows(
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

    result, weights = weighted.result, weighted.weights
    stats = weight_stats(result, weighted.class_index, weights)
    with output_set(output, histograms, plot, provenance):  # all four appear together, or none does
        write_weight_outputs(sample=data["sample"][order], event_id=data["event_id"][order], weights=weights[order],
                             result=result, document={"class_column": p["class_column"], "split": TRAIN_SPLIT,
                                                      "stats": stats},
                             output=output, histograms=histograms, plot=plot)
        if provenance is not None:
            write_provenance(provenance, provenance_record(
                stage="weights", config=params, inputs=[str(i) for i in inputs],
                extra={"outputs": {"weights": str(output), "histograms": str(histograms), "plot": str(plot)},
                       "stats": {k: stats[k] for k in ("events", "events_not_in_any_class", "zero_weight_fraction")}},
            ))
    log.info("weights: %d training events, %.1f%% with weight 0", n_events, 100 * stats["zero_weight_fraction"])

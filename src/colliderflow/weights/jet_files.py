"""The jet `weights` stage: JetClass-II training files in, per-jet sampling weights plus documentation out.

Same semantics as the event stage (colliderflow.weights.histogram: weaver's WeightMaker), with what
differs for jets:

* Classes are jet_label values, named in the config by their label-table names. class_weights maps
  names ("X_bb" or "label_X_bb", both accepted, as in weaver's label columns) to weights; its key order
  is the class order, the first being the `ref` reference. A jet whose label is not listed gets 0.
* The two `vars` must be per-jet (scalar) JetClass-II columns, e.g. jet_pt and jet_sdmass: exactly what
  weaver's reweight_vars can read from the same files, so the weights this stage writes and the ones
  weaver would make from the config of `weaver_config` agree (absent keys take weaver's defaults on
  both sides).
* Keys are (sample, event_id) = (file stem, row in the file), what colliderflow.train.jet_data.JetDataset keys
  jets by and colliderflow.train.sampling.read_sampling_weights looks up. Stems must be unique over the inputs;
  the assembled dataset's file names (colliderflow.jetset) are. Rows come out sorted by (stem, row).
* Every row of every input gets a weight: the stage does not know which jets the trainer will hold out
  for validation, and a lookup table that covers more keys than needed is harmless.

Params: method, vars, class_weights, optional threshold (default 0.1), discard_under_overflow (default
true) and class_column (only "jet_label" is meaningful; accepted so the section can be shared with
weaver_config).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colliderflow.finite import nonfinite_columns
from colliderflow.io.atomic import output_set
from colliderflow.io.dataset_files import jet_files
from colliderflow.jetschema import schema_differences
from colliderflow.jetclass2 import label_name
from colliderflow.provenance import provenance_record, write_provenance
from colliderflow.params import JetWeightsParams, stage_params
from colliderflow.weights.files import TRAIN_SPLIT, weight_stats, write_weight_outputs
from colliderflow.weights.histogram import ReweightResult, weigh_rows

log = logging.getLogger(__name__)

CLASS_COLUMN: Final = "jet_label"


def class_jet_labels(class_names: Sequence[str], label_table: Sequence[str]) -> list[int]:
    """The jet_label value of each class name: its position in the label table."""
    index = {label_name(str(n)): i for i, n in enumerate(label_table)}
    if len(index) != len(label_table):
        raise ValueError("label_table: repeats a label name")
    out = []
    for name in class_names:
        if not isinstance(name, str) or label_name(name) not in index:
            raise ValueError(f"jet weights params: class {name!r} of class_weights is not in the label table")
        out.append(index[label_name(name)])
    if len(set(out)) != len(out):
        raise ValueError(f"jet weights params: class_weights names a label twice: {list(class_names)}")
    return out


def _check_jet_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The `jet_weights` section, checked as the dry run checks it (colliderflow.params.JetWeightsParams)."""
    return stage_params(JetWeightsParams, params, where="jet_weights").as_dict()


def _ordered_files(inputs: Sequence[Path]) -> list[Path]:
    """Input files in key order (by stem); a repeated stem would make the (stem, row) keys ambiguous."""
    files = sorted(jet_files([Path(i) for i in inputs]), key=lambda p: (p.stem, str(p)))
    for a, b in itertools.pairwise(files):
        if a.stem == b.stem:
            raise ValueError(f"{a} and {b} share the file stem {a.stem!r}, which is what jets are keyed by")
    return files


def read_jet_columns(files: Sequence[Path], columns: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Scalar JetClass-II columns of `files`, concatenated, and the number of rows of each file."""
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    counts = []
    for path in files:
        if not path.is_file():
            raise ValueError(f"{path}: jet Parquet file does not exist")
        try:
            parquet = pq.ParquetFile(path)
            problems = schema_differences(parquet.schema_arrow)
            if problems:
                raise ValueError(f"{path}: not a JetClass-II jet file: {'; '.join(problems)}")
            table = parquet.read(columns=list(columns))
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
        for name in columns:
            parts[name].append(table.column(name).to_numpy())
        counts.append(table.num_rows)
    return {c: np.concatenate(v) for c, v in parts.items()}, np.asarray(counts, dtype=np.int64)


def jet_weights(columns: Mapping[str, np.ndarray], *, params: Mapping[str, Any],
                label_table: Sequence[str]) -> tuple[ReweightResult, np.ndarray, np.ndarray]:
    """(maps with classes named as in class_weights, weight per jet, class index per jet or -1).

    columns: the two `vars` and jet_label, one value per jet. This is the whole computation of the
    stage without its reading and writing, so that it can be timed against the read.
    """
    p = _check_jet_params(params)
    class_names = [str(c) for c in p["class_weights"]]
    jet_labels = class_jet_labels(class_names, label_table)
    name_of = {str(label): name for label, name in zip(jet_labels, class_names, strict=True)}
    try:
        # Classes are the jet_label values: integer labels are mapped to classes through a table.
        weighted = weigh_rows(
            columns, class_labels=columns[CLASS_COLUMN], classes=jet_labels, vars=p["vars"], method=p["method"],
            class_weights=list(p["class_weights"].values()), threshold=p["threshold"],
            discard_under_overflow=p["discard_under_overflow"],
        )
    except ValueError as exc:  # the maps name classes by jet_label value; the user knows them by name
        message = re.sub(r"\bclass (\d+)\b", lambda m: f"class {name_of[m.group(1)]!r}"
                         if m.group(1) in name_of else m.group(0), str(exc))
        raise ValueError(message) from exc
    result, weights, codes = weighted.result, weighted.weights, weighted.class_index
    return dataclasses.replace(result, classes=tuple(class_names)), weights, codes


def _in_jets(stats: dict[str, Any]) -> dict[str, Any]:
    """The shared stats with "events" spelt "jets", which is what a row is here."""
    renamed = {k.replace("events", "jets"): v for k, v in stats.items()}
    renamed["per_class"] = {c: {k.replace("events", "jets"): v for k, v in d.items()}
                            for c, d in stats["per_class"].items()}
    return renamed


def compute_jet_weights_from_files(inputs: list[Path], *, params: Mapping[str, Any], label_table: Sequence[str],
                                   output: Path, histograms: Path, plot: Path,
                                   provenance: Path | None) -> dict[str, Any]:
    """Weights for every jet of the training files `inputs` (files or directories of *.parquet).

    Writes `output` (Parquet: sample = file stem, event_id = row, weight float32; sorted by
    (sample, event_id)), `histograms` (JSON: binning, per-class histograms and maps, stats), `plot`
    (per-class projections before and after weighting) and, if given, `provenance`. label_table: the
    names the jets were labelled with (jet_label = position), e.g. jetclass2.JETCLASS2_LABELS.
    Returns the stats (jets, per class counts and weight sums, zero-weight fraction) and the outputs.
    """
    p = _check_jet_params(params)
    class_names = [str(c) for c in p["class_weights"]]
    jet_labels = class_jet_labels(class_names, label_table)
    if not inputs:
        raise ValueError("jet weights: no input Parquet files given")
    files = _ordered_files(inputs)
    var_names = list(p["vars"])
    data, counts = read_jet_columns(files, [*var_names, CLASS_COLUMN])
    where = f"jet training files ({len(files)}, first {files[0]})"
    n_jets = int(counts.sum())
    if n_jets == 0:
        raise ValueError(f"{where}: no jets")
    nonfinite_columns({v: data[v] for v in var_names}).resolve(
        where=where, rows="jets", allow=False, switch=None)

    try:
        result, weights, codes = jet_weights(data, params=p, label_table=label_table)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc

    # Files are in stem order and rows in file order: this is already (sample, event_id) order.
    stems = pa.array([f.stem for f in files], pa.string())
    file_index = np.repeat(np.arange(len(files), dtype=np.int32), counts)
    sample = pa.DictionaryArray.from_arrays(pa.array(file_index), stems).cast(pa.string())
    event_id = np.concatenate([np.arange(n, dtype=np.int64) for n in counts])
    stats = _in_jets(weight_stats(result, codes, weights))
    classes = dict(zip(class_names, jet_labels, strict=True))
    outputs = {"weights": str(output), "histograms": str(histograms), "plot": str(plot)}
    with output_set(output, histograms, plot, provenance):  # all four appear together, or none does
        write_weight_outputs(sample=sample, event_id=event_id, weights=weights, result=result,
                             document={"class_column": CLASS_COLUMN, "class_jet_label": classes, "split": TRAIN_SPLIT,
                                       "files": len(files), "stats": stats},
                             output=Path(output), histograms=Path(histograms), plot=Path(plot), rows="jets")
        if provenance is not None:
            write_provenance(provenance, provenance_record(
                stage="jet_weights", config=dict(params), inputs=[str(f) for f in files],
                extra={"outputs": outputs, "class_jet_label": classes,
                       "stats": {k: stats[k] for k in ("jets", "jets_not_in_any_class", "zero_weight_fraction")}},
            ))
    log.info("jet weights: %d jets in %d files, %.1f%% with weight 0", n_jets, len(files),
             100 * stats["zero_weight_fraction"])
    return {**stats, "class_jet_label": classes, "files": len(files), "outputs": outputs}

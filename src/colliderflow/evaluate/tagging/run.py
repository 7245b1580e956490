"""Evaluation of a jet tagger: tagger predictions Parquet (+ training log) → summary JSON and figures.

The input contract is written down in docs/schema.md ("Tagger predictions"): one row per jet, the true
class `jet_label`, one float score column `score_<class name>` per class in class order, and the jet
variables the cut-based baseline and the sculpting check need. Per-class columns were chosen over one
list column plus file metadata because the class names then travel with the scores through any tool
that rewrites the table (pandas, pyarrow concatenation, weaver's own output), where metadata is lost.

Reading and checking live here; the numbers are in `tagging`, the drawing in `tagging_plots`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colliderflow.evaluate.tagging import metrics as tagging
from colliderflow.finite import nonfinite_columns
from colliderflow.evaluate.records import json_safe, read_training_log
from colliderflow.evaluate.tagging.plots import TAGGER_PLOTS, TaggerPlotInputs, make_tagger_plots
from colliderflow.io.atomic import output_set, write_text_atomic
from colliderflow.params import TaggingParams, stage_params

log = logging.getLogger(__name__)

SCORE_PREFIX = "score_"
TAGGER_COLUMNS: tuple[str, ...] = ("jet_label", "jet_pt", "jet_eta", "jet_sdmass", "jet_tau2", "jet_tau3", "sample")

DEFAULT_SDMASS_BINS: tuple[float, ...] = tuple(float(v) for v in np.arange(0.0, 310.0, 10.0))
DEFAULT_TAU32_CUTS: tuple[float, ...] = tuple(float(v) for v in np.round(np.linspace(0.2, 1.0, 33), 4))
_WINDOW_EDGES = (0.0, 30.0, 60.0, 90.0, 120.0, 150.0, 180.0, 210.0, 240.0, 300.0, np.inf)
DEFAULT_MASS_WINDOWS: tuple[tuple[float, float], ...] = tuple(
    (lo, hi) for i, lo in enumerate(_WINDOW_EDGES[:-1]) for hi in _WINDOW_EDGES[i + 1 :]
)
MAX_PLOTTED_CLASSES = 4


def read_tagger_predictions(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The columns of a tagger predictions file as numpy arrays, plus the class names in score order.

    Returns ({"scores": [N, C] float64, "jet_label": [N] int64, jet_*: [N] float64, "sample": [N] str},
    class names). ValueError naming the file when it is missing, unreadable or breaks the contract, and
    naming the columns and counts when a score or jet variable is NaN/inf or a label is null.
    """
    data, classes, _ = load_tagger_predictions(path, allow_nonfinite=False)
    return data, classes


def load_tagger_predictions(
    path: Path, *, allow_nonfinite: bool
) -> tuple[dict[str, np.ndarray], list[str], dict[str, Any]]:
    """`read_tagger_predictions`, where allow_nonfinite drops the jets holding a non-finite value instead of
    failing; the third item records how many were dropped (for the summary)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: tagger predictions file does not exist")
    try:
        schema = pq.read_schema(path)
        classes = [n[len(SCORE_PREFIX) :] for n in schema.names if n.startswith(SCORE_PREFIX)]
        missing = [c for c in TAGGER_COLUMNS if c not in schema.names]
        if missing:
            raise ValueError(f"{path}: tagger predictions lack column(s) {missing}; has {schema.names}")
        if len(classes) < 2:
            raise ValueError(f"{path}: need a score_<class> column for each of at least two classes, got {classes}")
        table = pq.read_table(path, columns=[*TAGGER_COLUMNS, *(SCORE_PREFIX + c for c in classes)])
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file: {exc}") from exc
    if not pa.types.is_integer(table.schema.field("jet_label").type):
        raise ValueError(f"{path}: jet_label must be an integer column, got {table.schema.field('jet_label').type}")
    if table.num_rows == 0:
        raise ValueError(f"{path}: tagger predictions hold no jets")

    def floats(name: str) -> np.ndarray:
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN

    found = nonfinite_columns({SCORE_PREFIX + c: floats(SCORE_PREFIX + c) for c in classes}
                              | {name: floats(name) for name in TAGGER_COLUMNS[1:-1]})
    label_null = table.column("jet_label").is_null().to_numpy(zero_copy_only=False)
    found.add("jet_label", label_null)
    dropped = found.resolve(where=str(path), rows="jets", allow=allow_nonfinite,
                            switch="--allow-nonfinite (config evaluate.tagging.allow_nonfinite: true)")
    keep = ~found.bad_rows
    if not keep.any():
        raise ValueError(f"{path}: no jets left after dropping those with non-finite values")
    data: dict[str, np.ndarray] = {
        "scores": np.stack([floats(SCORE_PREFIX + c)[keep] for c in classes], axis=1),
        "jet_label": table.column("jet_label").fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)[keep],
        "sample": np.asarray(table.column("sample").to_pylist(), dtype=object)[keep],
    }
    for name in TAGGER_COLUMNS[1:-1]:
        data[name] = floats(name)[keep]
    return data, classes, dropped


def _select(data: Mapping[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[keep] for k, v in data.items()}


def _default_plot_classes(labels: np.ndarray, signal: Sequence[int]) -> list[int]:
    """The most populated signal classes: a talk figure shows a few, the JSON holds them all."""
    counts = np.bincount(labels, minlength=max(signal, default=0) + 1)
    ranked = sorted(signal, key=lambda c: (-counts[c], c))
    return [c for c in ranked if counts[c] > 0][:MAX_PLOTTED_CLASSES]


def _working_point_cuts(baseline: Mapping[str, Any], working_points: Sequence[float]) -> dict[str, Any]:
    """The envelope cut pair first reaching each working point: what the baseline number stands for."""
    es = np.asarray(baseline["eff_sig"], dtype=float)
    out: dict[str, Any] = {}
    for wp in working_points:
        hits = np.flatnonzero(np.isfinite(es) & (es >= wp))
        cut = baseline["cuts"][hits[0]] if hits.size else None
        out[f"{wp:g}"] = (
            None if cut is None else {**cut, "eff_sig": es[hits[0]], "eff_bkg": baseline["eff_bkg"][hits[0]]}
        )
    return out


def evaluate_tagger(
    *, predictions: Path, metrics_log: Path | None, params: dict, summary: Path, plots_dir: Path,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """Every tagging metric, the summary JSON and every figure of TAGGER_PLOTS; returns the summary.

    params (all optional): qcd_classes (indices or names; default every class named QCD_*),
    signal_classes (default every other class), plot_classes (default the four most populated signal
    classes), working_points (signal efficiencies, default [0.5, 0.3]), sculpting_efficiency (default 0.5),
    sdmass_bins (GeV), tau32_cuts, mass_windows ([[lo, hi], …] GeV), dataset_label (figure header),
    allow_nonfinite; checked as the dry run checks them (colliderflow.params.TaggingParams).
    allow_nonfinite (or the params key): drop jets holding NaN/inf values instead of failing; the summary's
    `dropped_nonfinite` says how many.
    """
    predictions = Path(predictions)
    checked = stage_params(TaggingParams, params, where="evaluate.tagging")
    data, classes, dropped = load_tagger_predictions(
        predictions, allow_nonfinite=allow_nonfinite or checked.allow_nonfinite)
    n_classes = len(classes)
    labelled = (data["jet_label"] >= 0) & (data["jet_label"] < n_classes)
    if not labelled.all():
        log.warning("%s: %d jet(s) with a label outside [0, %d) left out", predictions, (~labelled).sum(), n_classes)
    n_unlabelled = int((~labelled).sum())
    data = _select(data, labelled)
    labels, scores = data["jet_label"], data["scores"]

    qcd = tagging.class_indices(classes, params.get("qcd_classes"), "QCD")
    if not qcd:
        raise ValueError(f"{predictions}: no QCD class among {classes}; set params qcd_classes")
    signal = (
        tagging.class_indices(classes, params.get("signal_classes"), "")
        if params.get("signal_classes")
        else [c for c in range(n_classes) if c not in qcd]
    )
    if params.get("plot_classes"):
        plot_classes = tagging.class_indices(classes, params["plot_classes"], "")
    else:
        plot_classes = _default_plot_classes(labels, signal)
    wps = [float(w) for w in params.get("working_points", tagging.DEFAULT_WORKING_POINTS)]
    sculpt_eff = float(params.get("sculpting_efficiency", 0.5))
    mass_bins = np.asarray(params.get("sdmass_bins", DEFAULT_SDMASS_BINS), dtype=float)
    tau32_cuts = np.asarray(params.get("tau32_cuts", DEFAULT_TAU32_CUTS), dtype=float)
    windows = [(float(lo), float(hi)) for lo, hi in params.get("mass_windows", DEFAULT_MASS_WINDOWS)]

    ovr = tagging.one_vs_rest(scores, labels)
    tau32 = tagging.tau32(data["jet_tau2"], data["jet_tau3"])
    is_qcd = np.isin(labels, qcd)
    vs_qcd: dict[str, Any] = {}
    curves: dict[int, dict[str, Any]] = {}
    for c in signal:
        roc, disc, mask = tagging.signal_vs_qcd(scores, labels, c, qcd)
        base = tagging.baseline_roc(tau32[mask], data["jet_sdmass"][mask], labels[mask] == c, tau32_cuts, windows)
        threshold = tagging.threshold_at_signal_efficiency(disc[labels == c], sculpt_eff)
        sculpt = tagging.mass_sculpting(data["jet_sdmass"][is_qcd], disc[is_qcd] >= threshold, mass_bins)
        vs_qcd[classes[c]] = {
            "tagger": tagging.summarise_roc(roc, wps),
            "baseline": {
                **tagging.summarise_curve(base["eff_bkg"], base["eff_sig"], wps),
                "working_point_cuts": _working_point_cuts(base, wps),
            },
            "sculpting": {
                "signal_efficiency": sculpt_eff,
                "threshold": threshold,
                "background_efficiency": sculpt["background_efficiency"] if roc.defined else float("nan"),
                "jsd": sculpt["jsd"] if roc.defined else float("nan"),
                "n_qcd": sculpt["n_before"],
            },
        }
        if c in plot_classes:
            curves[c] = {"roc": roc, "baseline": base, "sculpting": sculpt}

    samples = sorted(set(data["sample"].tolist()))
    result = json_safe(
        {
            "predictions": str(predictions),
            "n_jets": int(labels.size),
            "n_jets_unlabelled": n_unlabelled,
            "dropped_nonfinite": dropped,
            "n_jets_per_sample": {s: int((data["sample"] == s).sum()) for s in samples},
            "n_jets_per_class": {classes[c]: int((labels == c).sum()) for c in range(n_classes)},
            "classes": classes,
            "qcd_classes": [classes[c] for c in qcd],
            "signal_classes": [classes[c] for c in signal],
            "working_points": wps,
            "one_vs_rest": {classes[c]: tagging.summarise_roc(r, wps) for c, r in ovr.items()},
            "vs_qcd": vs_qcd,
            "baseline_definition": "upper envelope of (tau3/tau2 < cut) & (lo <= jet_sdmass < hi), tuned on these jets",
            "plots": list(TAGGER_PLOTS),
        }
    )
    inputs: TaggerPlotInputs = {
        "classes": classes,
        "plot_classes": plot_classes,
        "one_vs_rest": {c: ovr[c] for c in plot_classes},
        "vs_qcd": curves,
        "summary": result,
        "working_points": wps,
        "sculpting_efficiency": sculpt_eff,
        "training_log": read_training_log(metrics_log),
        "dataset_label": str(params.get("dataset_label", "JetClass-II")),
    }
    with output_set(summary, dirs=(plots_dir,)):  # the summary and its figures appear together, or none
        make_tagger_plots(inputs, Path(plots_dir))
        write_text_atomic(summary, json.dumps(result, indent=2, allow_nan=False) + "\n")
    log.info("wrote %s and %d figures in %s", summary, len(TAGGER_PLOTS), plots_dir)
    return result

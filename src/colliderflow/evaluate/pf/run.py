"""The `evaluate` stage: predictions Parquet (+ training log) → headline numbers (JSON) and figures.

Reading and checking inputs, pooling samples and writing outputs live here; the physics is in
`metrics` and the drawing in `plots`, so either can be reused without the other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colliderflow.evaluate.pf import metrics, summary_table
from colliderflow.finite import NonFinite
from colliderflow.evaluate.pf.plots import PF_PLOTS, PlotInputs, make_plots
from colliderflow.evaluate.records import json_safe, read_training_log
from colliderflow.evaluate.style import DEFAULT_SQRT_S_GEV, order_samples
from colliderflow.io.atomic import output_set, write_text_atomic
from colliderflow.params import EvaluateParams, stage_params
from colliderflow.schema import CLASS_NAMES, N_CLASSES, N_PARTICLE_FEATURES, PARTICLE_FEATURES, PREDICTION_COLUMNS

log = logging.getLogger(__name__)

# Which particle block each algorithm is: truth-level target, rule-based baseline, the model.
ALGO_COLUMNS: dict[str, str] = {"target": "ytarget", "baseline": "ycand", "mlpf": "ypred"}

DEFAULT_ETA_BINS = (-2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
DEFAULT_MET_BINS = (1.0, 5.0, 10.0, 20.0, 40.0, 80.0, 200.0)
DEFAULT_PARTICLE_PT_BINS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def read_predictions(path: Path, *, allow_nonfinite: bool = False) -> tuple[ak.Array, dict[str, Any]]:
    """The prediction columns of `path` as an awkward array, checked, and what was dropped as non-finite.

    ValueError naming the file when it is missing, unreadable or breaks the contract, and naming the
    columns and counts when any value is NaN, inf or null (unless allow_nonfinite: then the events that
    hold one are dropped, and the returned record says how many).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: predictions file does not exist")
    try:
        schema = pq.read_schema(path)
        missing = [c for c in PREDICTION_COLUMNS if c not in schema.names]
        if missing:
            raise ValueError(f"{path}: predictions lack column(s) {missing}; has {schema.names}")
        table = pq.read_table(path, columns=list(PREDICTION_COLUMNS))
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file: {exc}") from exc
    if table.num_rows == 0:
        raise ValueError(f"{path}: predictions hold no events")
    events = ak.from_arrow(table)
    n_elem = ak.num(events["ytarget"], axis=1)
    for column in ("ytarget", "ycand", "ypred"):
        block = events[column]
        if not ak.all(ak.num(block, axis=1) == n_elem):
            raise ValueError(f"{path}: column {column} has a different number of elements than ytarget")
        if ak.count(block) and not ak.all(ak.num(block, axis=2) == N_PARTICLE_FEATURES):
            raise ValueError(f"{path}: column {column} rows are not {N_PARTICLE_FEATURES} features long")
    if ak.count(events["genjets"]) and not ak.all(ak.num(events["genjets"], axis=2) == 4):
        raise ValueError(f"{path}: genjets rows are not (pt, eta, phi, energy)")

    found = _nonfinite_events(events)
    dropped = found.resolve(where=str(path), rows="events", allow=allow_nonfinite,
                            switch="--allow-nonfinite (config evaluate.allow_nonfinite: true)")
    if found.bad_rows.any():
        events = events[~found.bad_rows]
        if len(events) == 0:
            raise ValueError(f"{path}: no events left after dropping those with non-finite values")
    for column in ("ytarget", "ycand", "ypred"):
        cls = metrics.element_classes(events[column])
        if cls.size and (cls.min() < 0 or cls.max() >= N_CLASSES):
            raise ValueError(f"{path}: column {column} has class ids outside [0, {N_CLASSES})")
    return events, dropped


def _nonfinite_events(events: ak.Array) -> NonFinite:
    """Non-finite values per particle feature of each block, in genmet and in genjets; the events holding one."""
    found = NonFinite(len(events))
    event_index = np.arange(len(events))
    for column in ("ytarget", "ycand", "ypred"):
        block = events[column]
        values = np.asarray(ak.flatten(ak.fill_none(block, np.nan), axis=None), dtype=np.float64)
        values = values.reshape(-1, N_PARTICLE_FEATURES)
        row = np.repeat(event_index, ak.to_numpy(ak.num(block, axis=1)))
        bad = ~np.isfinite(values)
        for f, feature in enumerate(PARTICLE_FEATURES):
            found.add(f"{column}.{feature}", bad[:, f], row)
    genmet = ak.to_numpy(ak.fill_none(events["genmet"], np.nan)).astype(np.float64)
    found.add("genmet", ~np.isfinite(genmet))
    genjets = events["genjets"]
    values = np.asarray(ak.flatten(ak.fill_none(genjets, np.nan), axis=None), dtype=np.float64).reshape(-1, 4)
    found.add("genjets", ~np.isfinite(values).all(axis=1), np.repeat(event_index, ak.to_numpy(ak.num(genjets, axis=1))))
    return found


def _jet_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {**metrics.DEFAULT_JET_PARAMS, **dict(params.get("jets") or {})}


# --------------------------------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------------------------------
def _binned_summary(rr: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {k: rr[k] for k in ("count", "response", "response_err", "resolution", "resolution_err")}


def _ratio(a: Any, b: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(a, dtype=float) / np.asarray(b, dtype=float)


def _jets_summary(jets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sample, per_algo in jets.items():
        entry: dict[str, Any] = {}
        for algo, res in per_algo.items():
            entry[algo] = {
                **_binned_summary(res["vs_pt"]),
                "matching_efficiency": res["matching_efficiency"]["fraction"],
                "inclusive": res["inclusive"],
                "n_gen_jets": res["n_gen"],
                "n_matched": res["n_matched"],
            }
        if "mlpf" in per_algo and "baseline" in per_algo:
            entry["resolution_ratio_mlpf_over_baseline"] = _ratio(
                per_algo["mlpf"]["vs_pt"]["resolution"], per_algo["baseline"]["vs_pt"]["resolution"]
            )
            entry["inclusive_resolution_ratio_mlpf_over_baseline"] = float(
                _ratio(per_algo["mlpf"]["inclusive"]["resolution"], per_algo["baseline"]["inclusive"]["resolution"])
            )
        out[sample] = entry
    return out


def _met_summary(met: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for sample, per_algo in met.items():
        entry: dict[str, Any] = {}
        for algo, res in per_algo.items():
            entry[algo] = {
                "response": res["inclusive"]["response"],
                "resolution": res["inclusive"]["resolution"],
                "count": res["inclusive"]["count"],
                "delta_median_gev": res["delta_median"],
                "delta_iqr_gev": res["delta_iqr"],
                "vs_genmet": _binned_summary(res["vs_genmet"]),
            }
        if "mlpf" in per_algo and "baseline" in per_algo:
            entry["resolution_ratio_mlpf_over_baseline"] = float(
                _ratio(entry["mlpf"]["resolution"], entry["baseline"]["resolution"])
            )
        out[sample] = entry
    return out


def _classification_summary(
    accuracy: Mapping[str, float],
    efficiency: Mapping[str, Mapping[str, np.ndarray]],
    particle: Mapping[str, Mapping[int, Mapping[str, Any]]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for algo, eff in efficiency.items():
        per_class = {}
        for c, name in enumerate(CLASS_NAMES):
            per_class[name] = {
                "efficiency": eff["efficiency_inclusive"][c],
                "fake_rate": eff["fake_rate_inclusive"][c],
                "n_target": eff["n_true_total"][c],
                "n_pred": eff["n_pred_total"][c],
            }
            if c in particle[algo]:
                per_class[name]["pt_response"] = particle[algo][c]["pt_inclusive"]["response"]
                per_class[name]["pt_resolution"] = particle[algo][c]["pt_inclusive"]["resolution"]
                per_class[name]["energy_response"] = particle[algo][c]["energy_inclusive"]["response"]
                per_class[name]["energy_resolution"] = particle[algo][c]["energy_inclusive"]["resolution"]
        out[algo] = {"accuracy": accuracy[algo], "per_class": per_class}
    return out


# --------------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------------
def evaluate(
    *,
    predictions: Path,
    metrics_log: Path | None,
    params: dict,
    summary: Path,
    plots_dir: Path,
    tagger_summary: Path | None = None,
    allow_nonfinite: bool = False,
) -> dict[str, Any]:
    """Compute every metric, write the summary JSON and every figure of PF_PLOTS; returns the summary.

    params: the config's `evaluate` section — jet_pt_bins (GeV), jet_match_dr — and optionally jets
    {algorithm, radius, p, min_pt}, jet_eta_bins, met_bins (GeV), particle_pt_bins (GeV), sqrt_s (GeV),
    allow_nonfinite; checked as the dry run checks them (colliderflow.params.EvaluateParams).
    allow_nonfinite (or the params key): drop events holding NaN/inf values instead of failing; the
    summary's `dropped_nonfinite` says how many.
    tagger_summary: a tagger's summary JSON (colliderflow.evaluate.tagging.run) whose AUCs and
    rejections join the headline table; the table is also written as summary_table.{html,rst} for
    the report caption.
    """
    predictions = Path(predictions)
    checked = stage_params(EvaluateParams, params, where="evaluate")
    pt_bins = np.asarray(params.get("jet_pt_bins", (10, 20, 40, 60, 80, 100, 200)), dtype=float)
    eta_bins = np.asarray(params.get("jet_eta_bins", DEFAULT_ETA_BINS), dtype=float)
    met_bins = np.asarray(params.get("met_bins", DEFAULT_MET_BINS), dtype=float)
    particle_bins = np.asarray(params.get("particle_pt_bins", DEFAULT_PARTICLE_PT_BINS), dtype=float)
    match_dr = float(params.get("jet_match_dr", 0.1))
    jet_params = _jet_params(params)

    events, dropped = read_predictions(predictions, allow_nonfinite=allow_nonfinite or checked.allow_nonfinite)
    sample_column = np.asarray(ak.to_list(events["sample"]), dtype=object)
    samples = order_samples(set(sample_column.tolist()))
    if "all" in samples:
        raise ValueError(f"{predictions}: a sample is named 'all', the name of the pooled numbers in the summary")
    log.info("%s: %d events in samples %s", predictions, len(events), samples)

    # Jets and MET, per sample; the all-samples numbers pool the per-sample matches (no re-clustering).
    jets: dict[str, dict[str, Any]] = {}
    met: dict[str, dict[str, Any]] = {}
    pooled_match: dict[str, list[metrics.JetMatch]] = {a: [] for a in ALGO_COLUMNS}
    pooled_met: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {a: [] for a in ALGO_COLUMNS}
    for sample in samples:
        sel = events[sample_column == sample]
        genmet = ak.to_numpy(ak.fill_none(sel["genmet"], np.nan)).astype(np.float64)
        jets[sample], met[sample] = {}, {}
        for algo, column in ALGO_COLUMNS.items():
            match = metrics.match_block_jets(sel[column], sel["genjets"], match_dr=match_dr, jet_params=jet_params)
            pooled_match[algo].append(match)
            jets[sample][algo] = metrics.jet_response_from_match(match, pt_bins=pt_bins, eta_bins=eta_bins)
            reco_met = metrics.block_met(sel[column])
            pooled_met[algo].append((reco_met, genmet))
            met[sample][algo] = metrics.met_response_from_values(reco_met, genmet, bins=met_bins)
    jets["all"] = {
        a: metrics.jet_response_from_match(metrics.JetMatch.concatenate(m), pt_bins=pt_bins, eta_bins=eta_bins)
        for a, m in pooled_match.items()
    }
    met["all"] = {
        a: metrics.met_response_from_values(
            np.concatenate([r for r, _ in v]), np.concatenate([g for _, g in v]), bins=met_bins
        )
        for a, v in pooled_met.items()
    }

    # Element-wise: every reconstruction against the target, over all samples.
    true_cls = metrics.element_classes(events["ytarget"])
    true_pt = metrics.element_column(events["ytarget"], "pt")
    true_e = metrics.element_column(events["ytarget"], "energy")
    confusion, efficiency, particle, accuracy = {}, {}, {}, {}
    for algo in ("baseline", "mlpf"):
        block = events[ALGO_COLUMNS[algo]]
        cls = metrics.element_classes(block)
        pt = metrics.element_column(block, "pt")
        energy = metrics.element_column(block, "energy")
        confusion[algo] = metrics.confusion_matrix(true_cls, cls)
        accuracy[algo] = metrics.classification_accuracy(true_cls, cls)
        efficiency[algo] = metrics.class_efficiency_and_fake_rate(true_cls, true_pt, cls, pt, bins=particle_bins)
        particle[algo] = metrics.particle_response(true_cls, cls, true_pt, pt, true_e, energy, bins=particle_bins)

    result = {
        "predictions": str(predictions),
        "n_events": len(events),
        "dropped_nonfinite": dropped,
        "n_events_per_sample": {s: int((sample_column == s).sum()) for s in samples},
        "n_elements": int(true_cls.size),
        "jet_params": jet_params,
        "jet_match_dr": match_dr,
        "jet_pt_bins": pt_bins,
        "met_bins": met_bins,
        "particle_pt_bins": particle_bins,
        "jets": _jets_summary(jets),
        "met": _met_summary(met),
        "classification": _classification_summary(accuracy, efficiency, particle),
        "confusion_matrix": {a: {"classes": list(CLASS_NAMES), **c} for a, c in confusion.items()},
        "plots": list(PF_PLOTS),
    }
    result = json_safe(result)

    tagger = json.loads(Path(tagger_summary).read_text()) if tagger_summary is not None else None
    inputs: PlotInputs = {
        "jets": {s: v for s, v in jets.items() if s != "all"},
        "met": {s: v for s, v in met.items() if s != "all"},
        "confusion": confusion,
        "class_efficiency": efficiency,
        "particle_response": particle,
        "training_log": read_training_log(metrics_log),
        "sqrt_s": float(params.get("sqrt_s", DEFAULT_SQRT_S_GEV)),
        "summary": result,
        "tagger_summary": tagger,
    }
    with output_set(summary, dirs=(plots_dir,)):  # the summary and its figures appear together, or none
        make_plots(inputs, Path(plots_dir))
        summary_table.write_summary_table(result, Path(plots_dir), tagger, figure=False)
        write_text_atomic(summary, json.dumps(result, indent=2, allow_nan=False) + "\n")
    log.info("wrote %s and %d figures in %s", summary, len(PF_PLOTS), plots_dir)
    return result

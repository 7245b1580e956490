"""Physics performance of particle-flow reconstruction, as pure functions on arrays.

Three views of one reconstruction, each against its own reference:

* jets and MET against the generator-level (status=1, no neutrinos) jets and MET: what an analysis sees;
* element-wise classes against the target particle of each element: what the network was asked to do;
* particle pT/E against the target particle, on elements where the class is right.

Resolutions are IQR/median of reco/gen rather than a Gaussian width, so that the non-Gaussian tails of
jet and MET response (lost neutrals, merged jets) neither dominate the number nor need a fit to converge.
Every binned quantity is NaN in a bin with no entries, never an error: a small test sample or a narrow
process always leaves some bins empty, and a figure with a gap is the honest answer. Quantile statistics
(response, resolution and their errors) are NaN too in a bin with fewer than MIN_ENTRIES entries: the
IQR of a single entry is 0, so such a bin would read as a perfect resolution; the entry count is kept.

Units: GeV for pT, energy and MET; η is dimensionless. Bins are half-open, [lo, hi).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np

from colliderflow.kinematics import (
    EVENT_JETS,
    cluster_jets,
    jets_from_block,
    match_jets,
    missing_et,
    particles_from_block,
)
from colliderflow.schema import N_CLASSES, PF

# The project's jet definition (the ntuplizer builds gen jets with the same one).
DEFAULT_JET_PARAMS: dict[str, Any] = dict(EVENT_JETS)

# Gaussian-limit factors for the statistical error of sample quantiles (asymptotic order statistics):
# σ(median) = 1.2533 σ/√n, σ(IQR) = 1.573 σ/√n, and σ = IQR/1.349 for a Gaussian.
_IQR_TO_SIGMA = 1.0 / 1.349
_MEDIAN_ERR = 1.2533
_IQR_ERR = 1.573
# Fewest entries for which a bin's median and IQR are reported. Below it the quartiles are set by one or
# two events (IQR = 0 for one), which reads as a perfect resolution rather than as "not measured".
MIN_ENTRIES = 5


# --------------------------------------------------------------------------------------------------
# Binned quantiles
# --------------------------------------------------------------------------------------------------
def _check_bins(bins: Sequence[float] | np.ndarray) -> np.ndarray:
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError(f"bins must be at least two strictly increasing edges, got {list(edges)}")
    return edges


def bin_index(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Index of the half-open bin [lo, hi) of each value; −1 outside the edges or for NaN. Shape of `values`."""
    idx = np.searchsorted(bins, values, side="right") - 1
    idx[(idx >= bins.size - 1) | ~np.isfinite(values)] = -1
    return idx


def binned_quantiles(values: np.ndarray, index: np.ndarray, n_bins: int, qs: Sequence[float]) -> np.ndarray:
    """Quantiles `qs` of `values` in each of `n_bins` groups given by `index` (−1 = ignore): [len(qs), n_bins].

    One sort for all bins instead of a quantile call per bin; linear interpolation between order
    statistics, identical to numpy's default quantile method. Empty groups give NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    keep = index >= 0
    v, b = values[keep], index[keep]
    order = np.lexsort((v, b))
    v = v[order]
    counts = np.bincount(b, minlength=n_bins)[:n_bins]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full((len(qs), n_bins), np.nan)
    filled = counts > 0
    for i, q in enumerate(qs):
        pos = starts[filled] + q * (counts[filled] - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        out[i, filled] = v[lo] + (pos - lo) * (v[hi] - v[lo])
    return out


def _check_min_entries(min_entries: int) -> int:
    if not isinstance(min_entries, (int, np.integer)) or isinstance(min_entries, bool) or min_entries < 1:
        raise ValueError(f"min_entries: expected a positive integer, got {min_entries!r}")
    return int(min_entries)


def response_and_resolution(
    reco_pt: np.ndarray,
    gen_pt: np.ndarray,
    bin_var: np.ndarray,
    bins: Sequence[float] | np.ndarray,
    *,
    min_entries: int = MIN_ENTRIES,
) -> dict[str, np.ndarray]:
    """Median of reco/gen and (q75 − q25)/median per bin of `bin_var`.

    reco_pt, gen_pt, bin_var: [n] matched pairs (GeV for pT; bin_var in the unit of `bins`). Pairs with
    gen ≤ 0 or any non-finite value are dropped (the ratio is undefined for them). Returns arrays of
    length n_bins: count, response, q25, q75, resolution and Gaussian-limit errors response_err and
    resolution_err, plus bins (edges) and centers. Every quantity but the count is NaN in a bin with
    fewer than `min_entries` pairs (and the errors below two, where no spread exists to scale).
    """
    min_entries = _check_min_entries(min_entries)
    reco = np.asarray(reco_pt, dtype=np.float64).ravel()
    gen = np.asarray(gen_pt, dtype=np.float64).ravel()
    var = np.asarray(bin_var, dtype=np.float64).ravel()
    if not reco.shape == gen.shape == var.shape:
        raise ValueError(f"reco {reco.shape}, gen {gen.shape} and bin variable {var.shape} differ in length")
    edges = _check_bins(bins)
    n_bins = edges.size - 1
    valid = np.isfinite(reco) & np.isfinite(gen) & (gen > 0)
    ratio = np.where(valid, reco / np.where(valid, gen, 1.0), np.nan)
    index = bin_index(np.where(valid, var, np.nan), edges)
    q25, median, q75 = binned_quantiles(ratio, index, n_bins, (0.25, 0.5, 0.75))
    count = np.bincount(index[index >= 0], minlength=n_bins)[:n_bins]
    too_few = count < min_entries
    q25, median, q75 = (np.where(too_few, np.nan, q) for q in (q25, median, q75))
    iqr = q75 - q25
    with np.errstate(divide="ignore", invalid="ignore"):
        resolution = np.where(median != 0, iqr / median, np.nan)
        sqrt_n = np.sqrt(np.where(count >= 2, count, np.nan))
        sigma = iqr * _IQR_TO_SIGMA
        response_err = _MEDIAN_ERR * sigma / sqrt_n
        resolution_err = np.abs(resolution) * np.hypot(_IQR_ERR * sigma / (iqr * sqrt_n), response_err / median)
        # A bin whose entries are all equal has IQR = 0: its resolution is exactly 0, with no spread to err on.
        resolution_err = np.where(iqr == 0, 0.0, resolution_err)
        resolution_err = np.where(count >= 2, resolution_err, np.nan)
    return {
        "bins": edges,
        "centers": 0.5 * (edges[1:] + edges[:-1]),
        "count": count,
        "response": median,
        "response_err": response_err,
        "q25": q25,
        "q75": q75,
        "resolution": resolution,
        "resolution_err": resolution_err,
    }


def inclusive_response(reco: np.ndarray, gen: np.ndarray, *, min_entries: int = MIN_ENTRIES) -> dict[str, float]:
    """response_and_resolution over all pairs in one bin, as scalars (NaN below `min_entries` pairs)."""
    gen = np.asarray(gen, dtype=np.float64).ravel()
    rr = response_and_resolution(reco, gen, np.zeros_like(gen), [-1.0, 1.0], min_entries=min_entries)
    return {
        "count": int(rr["count"][0]),
        "response": float(rr["response"][0]),
        "response_err": float(rr["response_err"][0]),
        "resolution": float(rr["resolution"][0]),
        "resolution_err": float(rr["resolution_err"][0]),
    }


def binned_fraction(
    passed: np.ndarray, bin_var: np.ndarray, bins: Sequence[float] | np.ndarray
) -> dict[str, np.ndarray]:
    """Fraction of `passed` (bool [n]) per bin of `bin_var`, with its binomial error; NaN in empty bins."""
    edges = _check_bins(bins)
    n_bins = edges.size - 1
    index = bin_index(np.asarray(bin_var, dtype=np.float64).ravel(), edges)
    passed = np.asarray(passed, dtype=bool).ravel()
    inside = index >= 0
    total = np.bincount(index[inside], minlength=n_bins)[:n_bins]
    n_pass = np.bincount(index[inside], weights=passed[inside], minlength=n_bins)[:n_bins]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(total > 0, n_pass / total, np.nan)
        err = np.sqrt(frac * (1 - frac) / total)
    return {"bins": edges, "centers": 0.5 * (edges[1:] + edges[:-1]), "count": total, "fraction": frac, "error": err}


# --------------------------------------------------------------------------------------------------
# Jets
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JetMatch:
    """Gen jets of many events, and the reco jets matched to them, as flat arrays.

    gen_pt/gen_eta: every gen jet, [n_gen]; matched: [n_gen] bool; reco_pt/reco_eta: [n_gen], NaN where
    the gen jet has no reco jet within ΔR. Flat and aligned so that samples concatenate trivially.
    """

    gen_pt: np.ndarray
    gen_eta: np.ndarray
    matched: np.ndarray
    reco_pt: np.ndarray
    reco_eta: np.ndarray

    @classmethod
    def concatenate(cls, matches: Sequence[JetMatch]) -> JetMatch:
        """Pool several samples' jets (for the all-samples numbers)."""
        return cls(*(np.concatenate([getattr(m, f) for m in matches]) for f in cls.__dataclass_fields__))


def _jet_records(jets: ak.Array) -> ak.Array:
    """Accept jets as records (pt, eta, phi, energy) or in the stored [events, jets, 4] layout."""
    return jets if "pt" in ak.fields(jets) else jets_from_block(jets)


def _flat(array: ak.Array) -> np.ndarray:
    return ak.to_numpy(ak.flatten(ak.drop_none(array), axis=None)).astype(np.float64)


def jets_from_particle_block(block: ak.Array, jet_params: Mapping[str, Any] | None = None) -> ak.Array:
    """Jets of the particles of a per-element block [events, elements, 8], with the project's jet definition."""
    params = {**DEFAULT_JET_PARAMS, **(jet_params or {})}
    return cluster_jets(
        particles_from_block(ak.Array(block)),
        algorithm=str(params["algorithm"]),
        radius=float(params["radius"]),
        p=float(params["p"]),
        min_pt=float(params["min_pt"]),
    )


def match_block_jets(
    block: ak.Array, genjets: ak.Array, *, match_dr: float = 0.1, jet_params: Mapping[str, Any] | None = None
) -> JetMatch:
    """Cluster the particles of `block` into jets and match each gen jet to the nearest within `match_dr`.

    block: [events, elements, 8] particle block; genjets: [events, jets, 4] (pt, eta, phi, energy) or records.
    """
    reco = jets_from_particle_block(block, jet_params)
    gen = _jet_records(ak.Array(genjets))
    if len(reco) != len(gen):
        raise ValueError(f"{len(reco)} events of particles but {len(gen)} events of gen jets")
    # Index every gen jet so that the matched subset can be put back in place.
    gen_indexed = ak.zip({"pt": gen.pt, "eta": gen.eta, "phi": gen.phi, "index": ak.local_index(gen.pt, axis=1)})
    gen_matched, reco_matched = match_jets(reco, gen_indexed, max_dr=match_dr)
    n_per_event = ak.to_numpy(ak.num(gen.pt, axis=1))
    offsets = np.concatenate([[0], np.cumsum(n_per_event)[:-1]])
    flat_index = _flat(gen_matched.index + offsets).astype(np.int64) if len(gen) else np.zeros(0, np.int64)
    gen_pt, gen_eta = _flat(gen.pt), _flat(gen.eta)
    reco_pt = np.full_like(gen_pt, np.nan)
    reco_eta = np.full_like(gen_pt, np.nan)
    reco_pt[flat_index] = _flat(reco_matched.pt)
    reco_eta[flat_index] = _flat(reco_matched.eta)
    matched = np.zeros(gen_pt.shape, dtype=bool)
    matched[flat_index] = True
    return JetMatch(gen_pt=gen_pt, gen_eta=gen_eta, matched=matched, reco_pt=reco_pt, reco_eta=reco_eta)


def jet_response_from_match(
    match: JetMatch,
    *,
    pt_bins: Sequence[float] | np.ndarray,
    eta_bins: Sequence[float] | np.ndarray,
    eta_min_pt: float | None = None,
    min_entries: int = MIN_ENTRIES,
) -> dict[str, Any]:
    """Jet response/resolution vs gen-jet pT and η, and the matching efficiency vs gen-jet pT.

    The η view uses only gen jets with pT ≥ `eta_min_pt` (default: the lowest pT edge), so that it is not
    dominated by soft jets whose response is set by the clustering threshold. Bins (and the inclusive
    numbers) with fewer than `min_entries` matched jets have NaN response and resolution.
    """
    pt_edges = _check_bins(pt_bins)
    min_pt = float(pt_edges[0]) if eta_min_pt is None else float(eta_min_pt)
    m = match.matched
    hard = m & (match.gen_pt >= min_pt)
    return {
        "vs_pt": response_and_resolution(
            match.reco_pt[m], match.gen_pt[m], match.gen_pt[m], pt_edges, min_entries=min_entries
        ),
        "vs_eta": response_and_resolution(
            match.reco_pt[hard], match.gen_pt[hard], match.gen_eta[hard], eta_bins, min_entries=min_entries
        ),
        "matching_efficiency": binned_fraction(m, match.gen_pt, pt_edges),
        "inclusive": inclusive_response(match.reco_pt[hard], match.gen_pt[hard], min_entries=min_entries),
        "eta_min_pt": min_pt,
        "n_gen": int(m.size),
        "n_matched": int(m.sum()),
    }


def jet_response(
    ypart_block: ak.Array,
    genjets: ak.Array,
    *,
    pt_bins: Sequence[float] | np.ndarray,
    eta_bins: Sequence[float] | np.ndarray,
    match_dr: float = 0.1,
    jet_params: Mapping[str, Any] | None = None,
    min_entries: int = MIN_ENTRIES,
) -> dict[str, Any]:
    """Jets of a particle block ([events, elements, 8]) against gen jets ([events, jets, 4]); see jet_response_from_match."""
    match = match_block_jets(ypart_block, genjets, match_dr=match_dr, jet_params=jet_params)
    return jet_response_from_match(match, pt_bins=pt_bins, eta_bins=eta_bins, min_entries=min_entries)


# --------------------------------------------------------------------------------------------------
# MET
# --------------------------------------------------------------------------------------------------
def block_met(ypart_block: ak.Array) -> np.ndarray:
    """|−Σ pT| of the particles (cls_id ≠ 0) of a block, GeV: [events]."""
    return missing_et(particles_from_block(ak.Array(ypart_block))).astype(np.float64)


def met_response_from_values(
    reco_met: np.ndarray,
    gen_met: np.ndarray,
    *,
    bins: Sequence[float] | np.ndarray,
    min_entries: int = MIN_ENTRIES,
) -> dict[str, Any]:
    """MET response/resolution vs gen MET, inclusive over the bin range, and reco − gen in GeV.

    The ratio is ill-defined as gen MET → 0 (most hadronic e+e− events), so the inclusive ratio uses
    only events inside the bins, and the absolute difference (median, IQR; GeV) is given for all events.
    A fully hadronic sample may have only a handful of events inside the bins: with fewer than
    `min_entries` the inclusive (and per-bin) response and resolution are NaN, not the 0 that the IQR of
    one event would give; likewise the difference's median and IQR below `min_entries` events.
    """
    min_entries = _check_min_entries(min_entries)
    reco = np.asarray(reco_met, dtype=np.float64).ravel()
    gen = np.asarray(gen_met, dtype=np.float64).ravel()
    if reco.shape != gen.shape:
        raise ValueError(f"{reco.size} reco MET values but {gen.size} gen MET values")
    edges = _check_bins(bins)
    inside = (gen >= edges[0]) & (gen < edges[-1])
    delta = reco - gen
    delta = delta[np.isfinite(delta)]
    if delta.size >= min_entries:
        d25, d50, d75 = np.quantile(delta, [0.25, 0.5, 0.75])
    else:
        d25 = d50 = d75 = np.nan
    return {
        "reco_met": reco,
        "gen_met": gen,
        "vs_genmet": response_and_resolution(reco, gen, gen, edges, min_entries=min_entries),
        "inclusive": inclusive_response(reco[inside], gen[inside], min_entries=min_entries),
        "delta_median": float(d50),
        "delta_iqr": float(d75 - d25),
        "n_events": int(gen.size),
    }


def met_response(
    ypart_block: ak.Array, genmet: np.ndarray, *, bins: Sequence[float] | np.ndarray, min_entries: int = MIN_ENTRIES
) -> dict[str, Any]:
    """MET of a particle block [events, elements, 8] against gen MET [events] (GeV); see met_response_from_values."""
    reco = block_met(ypart_block)
    gen = np.asarray(genmet, dtype=np.float64).ravel()
    if reco.shape != gen.shape:
        raise ValueError(f"{reco.size} events of particles but {gen.size} gen MET values")
    return met_response_from_values(reco, gen, bins=bins, min_entries=min_entries)


# --------------------------------------------------------------------------------------------------
# Element-wise classification and particle regression
# --------------------------------------------------------------------------------------------------
def element_column(block: ak.Array, feature: str) -> np.ndarray:
    """One PARTICLE_FEATURES column of every element of every event, flat: [total elements]."""
    return ak.to_numpy(ak.flatten(ak.Array(block)[:, :, PF[feature]], axis=None)).astype(np.float64)


def element_classes(block: ak.Array) -> np.ndarray:
    """cls_id of every element, flat int64 [total elements] (stored as float; rounded, not truncated)."""
    return np.rint(element_column(block, "cls_id")).astype(np.int64)


def confusion_matrix(true_cls: np.ndarray, pred_cls: np.ndarray, n_classes: int = N_CLASSES) -> dict[str, np.ndarray]:
    """Element-wise counts [true, pred] and the same normalised per true class (rows sum to 1; NaN rows when empty).

    true_cls, pred_cls: int [n] in [0, n_classes).
    """
    t = np.asarray(true_cls, dtype=np.int64).ravel()
    p = np.asarray(pred_cls, dtype=np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"{t.size} true classes but {p.size} predicted")
    bad = (t < 0) | (t >= n_classes) | (p < 0) | (p >= n_classes)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} class ids outside [0, {n_classes})")
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        normalised = np.where(rows > 0, counts / rows, np.nan)
    return {"counts": counts, "normalised": normalised}


def classification_accuracy(true_cls: np.ndarray, pred_cls: np.ndarray) -> float:
    """Fraction of elements whose predicted class equals the target class (NaN with no elements)."""
    t = np.asarray(true_cls).ravel()
    return float(np.mean(t == np.asarray(pred_cls).ravel())) if t.size else float("nan")


def _per_class_bin_fraction(
    cls: np.ndarray, var: np.ndarray, passed: np.ndarray, edges: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of `passed` per (class, bin): fraction, binomial error, count — each [n_classes, n_bins]."""
    n_bins = edges.size - 1
    index = bin_index(var, edges)
    inside = index >= 0
    flat = cls[inside] * n_bins + index[inside]
    total = np.bincount(flat, minlength=n_classes * n_bins).reshape(n_classes, n_bins)
    n_pass = np.bincount(flat, weights=passed[inside], minlength=n_classes * n_bins).reshape(n_classes, n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(total > 0, n_pass / total, np.nan)
        err = np.sqrt(frac * (1 - frac) / total)
    return frac, err, total


def class_efficiency_and_fake_rate(
    true_cls: np.ndarray,
    true_pt: np.ndarray,
    pred_cls: np.ndarray,
    pred_pt: np.ndarray,
    *,
    bins: Sequence[float] | np.ndarray,
    n_classes: int = N_CLASSES,
) -> dict[str, np.ndarray]:
    """Per-class efficiency vs target pT and fake rate vs predicted pT, element by element.

    Efficiency of class c: of the elements whose target is c, the fraction predicted as c.
    Fake rate of class c: of the elements predicted as c, the fraction whose target is not c (none or
    another class). Inputs are flat [n] arrays (pT in GeV). Returns [n_classes, n_bins] arrays
    efficiency, efficiency_err, n_true, fake_rate, fake_rate_err, n_pred, and [n_classes] inclusive
    efficiency_inclusive, fake_rate_inclusive, n_true_total, n_pred_total (over all pT).
    """
    t = np.asarray(true_cls, dtype=np.int64).ravel()
    p = np.asarray(pred_cls, dtype=np.int64).ravel()
    tpt = np.asarray(true_pt, dtype=np.float64).ravel()
    ppt = np.asarray(pred_pt, dtype=np.float64).ravel()
    if not t.shape == p.shape == tpt.shape == ppt.shape:
        raise ValueError("true/pred classes and pT must all have one entry per element")
    edges = _check_bins(bins)
    same = t == p
    eff, eff_err, n_true = _per_class_bin_fraction(t, tpt, same, edges, n_classes)
    fake, fake_err, n_pred = _per_class_bin_fraction(p, ppt, ~same, edges, n_classes)
    n_true_total = np.bincount(t, minlength=n_classes)[:n_classes]
    n_pred_total = np.bincount(p, minlength=n_classes)[:n_classes]
    with np.errstate(divide="ignore", invalid="ignore"):
        eff_incl = np.where(n_true_total > 0, np.bincount(t, weights=same, minlength=n_classes) / n_true_total, np.nan)
        fake_incl = np.where(
            n_pred_total > 0, np.bincount(p, weights=~same, minlength=n_classes) / n_pred_total, np.nan
        )
    return {
        "bins": edges,
        "centers": 0.5 * (edges[1:] + edges[:-1]),
        "efficiency": eff,
        "efficiency_err": eff_err,
        "n_true": n_true,
        "fake_rate": fake,
        "fake_rate_err": fake_err,
        "n_pred": n_pred,
        "efficiency_inclusive": eff_incl,
        "fake_rate_inclusive": fake_incl,
        "n_true_total": n_true_total,
        "n_pred_total": n_pred_total,
    }


def particle_response(
    true_cls: np.ndarray,
    pred_cls: np.ndarray,
    true_pt: np.ndarray,
    pred_pt: np.ndarray,
    true_energy: np.ndarray,
    pred_energy: np.ndarray,
    *,
    bins: Sequence[float] | np.ndarray,
    n_classes: int = N_CLASSES,
    min_entries: int = MIN_ENTRIES,
) -> dict[int, dict[str, Any]]:
    """pT and energy response per class on elements where target and prediction agree on the class.

    Restricting to the right class separates the regression from the classification: a photon
    predicted as a neutral hadron is a classification error, not an energy-scale one. Returns, for each
    class c ≥ 1, {"pt": response_and_resolution vs target pT, "energy": vs target energy,
    "pt_inclusive", "energy_inclusive"}. Inputs flat [n]; GeV. Fewer than `min_entries` elements in a
    bin (or a class): NaN response and resolution.
    """
    t = np.asarray(true_cls, dtype=np.int64).ravel()
    p = np.asarray(pred_cls, dtype=np.int64).ravel()
    tpt, ppt = np.asarray(true_pt, np.float64).ravel(), np.asarray(pred_pt, np.float64).ravel()
    te, pe = np.asarray(true_energy, np.float64).ravel(), np.asarray(pred_energy, np.float64).ravel()
    out: dict[int, dict[str, Any]] = {}
    for c in range(1, n_classes):
        sel = (t == c) & (p == c)
        out[c] = {
            "pt": response_and_resolution(ppt[sel], tpt[sel], tpt[sel], bins, min_entries=min_entries),
            "energy": response_and_resolution(pe[sel], te[sel], te[sel], bins, min_entries=min_entries),
            "pt_inclusive": inclusive_response(ppt[sel], tpt[sel], min_entries=min_entries),
            "energy_inclusive": inclusive_response(pe[sel], te[sel], min_entries=min_entries),
        }
    return out

"""Jet-tagging performance as pure functions on arrays: ROC, AUC, background rejection, mass sculpting.

Conventions are the ones of jet-tagging papers, so that numbers can be put next to published ones:

* a ROC curve is signal efficiency ε_S against background efficiency ε_B, from the tightest cut
  (0, 0) to no cut (1, 1); the figure of merit is the background rejection 1/ε_B at a fixed ε_S;
* AUC is the trapezoid area under ε_S(ε_B). Jets with equal scores cannot be separated by any cut,
  so every distinct score is one point of the curve and a tie becomes a straight segment: tied
  signal–background pairs count one half, which is the Mann–Whitney definition of the AUC;
* the rejection at a working point interpolates linearly between the two ROC points around it — the
  performance of cutting at one threshold on a random fraction of jets and at the next on the rest.

Everything is computed with one sort and cumulative sums (no per-threshold loop, no sklearn). Without
signal or without background a curve is undefined: the functions return NaN rather than raising,
because a small test split often lacks some classes, and the summary should say so, not crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_WORKING_POINTS: tuple[float, ...] = (0.5, 0.3)


@dataclass(frozen=True)
class Roc:
    """One ROC curve: eff_bkg, eff_sig and the score threshold (select score ≥ threshold) of each point.

    Points run from the tightest cut (0, 0; threshold +inf) to no cut (1, 1). All NaN (one point) when
    there is no signal or no background.
    """

    eff_bkg: np.ndarray
    eff_sig: np.ndarray
    thresholds: np.ndarray
    n_sig: float
    n_bkg: float

    @property
    def defined(self) -> bool:
        return bool(self.n_sig > 0 and self.n_bkg > 0)


def _undefined_roc(n_sig: float, n_bkg: float) -> Roc:
    nan = np.array([np.nan])
    return Roc(nan, nan, nan, float(n_sig), float(n_bkg))


def roc_curve(scores: np.ndarray, is_signal: np.ndarray, weights: np.ndarray | None = None) -> Roc:
    """ROC of selecting `score ≥ t` for every distinct score t (higher = more signal-like).

    scores: [N] float; is_signal: [N] bool; weights: optional [N] event weights. Non-finite scores are
    dropped (a jet without a score cannot be selected by a cut on it).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_signal, dtype=bool).ravel()
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not s.shape == y.shape == w.shape:
        raise ValueError(f"scores {s.shape}, labels {y.shape} and weights {w.shape} differ in length")
    keep = np.isfinite(s)
    s, y, w = s[keep], y[keep], w[keep]
    n_sig, n_bkg = float(w[y].sum()), float(w[~y].sum())
    if n_sig <= 0 or n_bkg <= 0:
        return _undefined_roc(n_sig, n_bkg)
    order = np.argsort(-s, kind="stable")
    s, y, w = s[order], y[order], w[order]
    tp = np.cumsum(np.where(y, w, 0.0))
    fp = np.cumsum(np.where(y, 0.0, w))
    # The last jet of each run of equal scores: a cut cannot stop inside a run.
    last = np.flatnonzero(np.append(s[1:] != s[:-1], True))
    eff_sig = np.concatenate([[0.0], tp[last] / n_sig])
    eff_bkg = np.concatenate([[0.0], fp[last] / n_bkg])
    thresholds = np.concatenate([[np.inf], s[last]])
    return Roc(eff_bkg, eff_sig, thresholds, n_sig, n_bkg)


def auc(eff_bkg: np.ndarray, eff_sig: np.ndarray) -> float:
    """Trapezoid area under ε_S(ε_B), points ordered by ε_B; NaN when the curve is undefined."""
    x = np.asarray(eff_bkg, dtype=np.float64)
    y = np.asarray(eff_sig, dtype=np.float64)
    if x.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    return float(np.sum(np.diff(x) * 0.5 * (y[1:] + y[:-1])))


def roc_auc(scores: np.ndarray, is_signal: np.ndarray, weights: np.ndarray | None = None) -> float:
    """AUC of `scores` separating `is_signal` jets from the others (0.5 = no separation)."""
    roc = roc_curve(scores, is_signal, weights)
    return auc(roc.eff_bkg, roc.eff_sig)


def background_efficiency_at(
    eff_bkg: np.ndarray, eff_sig: np.ndarray, target: float | Sequence[float] | np.ndarray
) -> np.ndarray:
    """ε_B at signal efficiency `target` (scalar or array), interpolated on a ROC ordered from (0, 0).

    Where several points share ε_S the first (lowest ε_B) is used: the best cut reaching that
    efficiency. NaN for an undefined curve or a target outside [0, 1].
    """
    x = np.asarray(eff_bkg, dtype=np.float64)
    y = np.asarray(eff_sig, dtype=np.float64)
    t = np.atleast_1d(np.asarray(target, dtype=np.float64))
    out = np.full(t.shape, np.nan)
    if x.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return out
    ok = (t >= 0) & (t <= y[-1])
    hi = np.searchsorted(y, t[ok], side="left")  # first point reaching the target
    lo = np.maximum(hi - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(y[hi] > y[lo], (t[ok] - y[lo]) / (y[hi] - y[lo]), 0.0)
    out[ok] = np.where(y[hi] == t[ok], x[hi], x[lo] + frac * (x[hi] - x[lo]))
    return out


def rejection_at(eff_bkg: np.ndarray, eff_sig: np.ndarray, target: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Background rejection 1/ε_B at signal efficiency `target`; inf when no background passes."""
    eb = background_efficiency_at(eff_bkg, eff_sig, target)
    with np.errstate(divide="ignore"):
        return np.where(np.isnan(eb), np.nan, 1.0 / eb)


def threshold_at_signal_efficiency(signal_scores: np.ndarray, efficiency: float) -> float:
    """The score cut (select ≥) that keeps at least `efficiency` of the signal: its ⌈εN⌉-th highest score.

    NaN without signal. Ties at the cut may keep slightly more than `efficiency`.
    """
    s = np.asarray(signal_scores, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    if s.size == 0 or not 0 < efficiency <= 1:
        return float("nan")
    k = max(int(np.ceil(efficiency * s.size - 1e-9)), 1)
    return float(np.partition(s, s.size - k)[s.size - k])


# --------------------------------------------------------------------------------------------------
# Multi-class scores
# --------------------------------------------------------------------------------------------------
def summarise_roc(roc: Roc, working_points: Sequence[float] = DEFAULT_WORKING_POINTS) -> dict[str, Any]:
    """AUC, ε_B and 1/ε_B at each working point, and the counts: the numbers a summary table quotes."""
    return {
        **summarise_curve(roc.eff_bkg, roc.eff_sig, working_points),
        "n_signal": roc.n_sig,
        "n_background": roc.n_bkg,
    }


def one_vs_rest(scores: np.ndarray, labels: np.ndarray, classes: Sequence[int] | None = None) -> dict[int, Roc]:
    """For each class c: the ROC of score[:, c] separating jets of class c from all other jets.

    scores: [N, C]; labels: [N] int class index. Classes default to all C.
    """
    sc = np.asarray(scores, dtype=np.float64)
    lab = np.asarray(labels).ravel()
    if sc.ndim != 2 or sc.shape[0] != lab.size:
        raise ValueError(f"scores must be [N, C] with N = {lab.size} labels, got {sc.shape}")
    classes = range(sc.shape[1]) if classes is None else classes
    return {int(c): roc_curve(sc[:, c], lab == c) for c in classes}


def signal_vs_qcd_discriminant(scores: np.ndarray, signal_class: int, qcd_classes: Sequence[int]) -> np.ndarray:
    """S / (S + Σ B_QCD) per jet: the likelihood ratio of one signal against QCD, from softmax scores.

    It ignores the other signal classes, which a one-vs-rest score would count as background, so the
    tagger is judged on the separation an analysis of that signal actually needs. 0/0 gives 0.
    """
    sc = np.asarray(scores, dtype=np.float64)
    qcd = list(qcd_classes)
    if not qcd:
        raise ValueError("signal-vs-QCD needs at least one QCD class")
    sig = sc[:, signal_class]
    denom = sig + sc[:, qcd].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom > 0, sig / np.where(denom > 0, denom, 1.0), 0.0)


def signal_vs_qcd(
    scores: np.ndarray, labels: np.ndarray, signal_class: int, qcd_classes: Sequence[int]
) -> tuple[Roc, np.ndarray, np.ndarray]:
    """ROC of the S/(S+B_QCD) discriminant on jets of `signal_class` (signal) and of the QCD classes.

    Returns (roc, discriminant, mask): discriminant and the signal/QCD mask are [N], so that a cut
    found on the ROC can be applied back to the jets (mass sculpting).
    """
    lab = np.asarray(labels).ravel()
    disc = signal_vs_qcd_discriminant(scores, signal_class, qcd_classes)
    is_sig = lab == signal_class
    mask = is_sig | np.isin(lab, list(qcd_classes))
    return roc_curve(disc[mask], is_sig[mask]), disc, mask


# --------------------------------------------------------------------------------------------------
# Mass sculpting
# --------------------------------------------------------------------------------------------------
def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of two histograms, each normalised here.

    0 means the shapes are identical, 1 that they do not overlap. NaN if either is empty.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def mass_sculpting(mass: np.ndarray, passed: np.ndarray, bins: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Background mass distribution before and after a tagger cut, and how much the cut changed its shape.

    mass: [N] background (QCD) jet masses, GeV; passed: [N] bool, the cut. A tagger that learnt the
    mass turns the falling QCD spectrum into a peak at the signal mass, which fakes a signal in a mass
    fit; the JSD between the normalised histograms measures it (0: shape unchanged). Returns bins,
    density_before, density_after (per GeV), counts, the background efficiency of the cut, the JSD.
    Masses outside the bins are left out of the shapes but counted in the efficiency.
    """
    m = np.asarray(mass, dtype=np.float64).ravel()
    keep = np.asarray(passed, dtype=bool).ravel()
    edges = np.asarray(bins, dtype=np.float64)
    before, _ = np.histogram(m, edges)
    after, _ = np.histogram(m[keep], edges)
    width = np.diff(edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        dens_before = before / (before.sum() * width) if before.sum() else np.full(width.shape, np.nan)
        dens_after = after / (after.sum() * width) if after.sum() else np.full(width.shape, np.nan)
    return {
        "bins": edges,
        "count_before": before,
        "count_after": after,
        "density_before": dens_before,
        "density_after": dens_after,
        "background_efficiency": float(keep.mean()) if m.size else float("nan"),
        "n_before": int(m.size),
        "n_after": int(keep.sum()),
        "jsd": jensen_shannon(before, after),
    }


# --------------------------------------------------------------------------------------------------
# Cut-based baseline: τ32 and a soft-drop mass window
# --------------------------------------------------------------------------------------------------
def tau32(tau2: np.ndarray, tau3: np.ndarray) -> np.ndarray:
    """τ3/τ2 (small for three-prong jets); NaN where τ2 = 0, so such jets never pass a τ32 cut."""
    t2 = np.asarray(tau2, dtype=np.float64)
    t3 = np.asarray(tau3, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t2 > 0, t3 / np.where(t2 > 0, t2, 1.0), np.nan)


def cut_scan(
    tau32_values: np.ndarray,
    mass: np.ndarray,
    is_signal: np.ndarray,
    tau32_cuts: Sequence[float] | np.ndarray,
    mass_windows: Sequence[tuple[float, float]],
) -> dict[str, np.ndarray]:
    """ε_S and ε_B of every cut pair (τ32 < cut) & (lo ≤ m_SD < hi): arrays [n_windows, n_cuts].

    One sort per window and a searchsorted for all τ32 cuts, so the scan costs O(windows · N log N).
    """
    t = np.asarray(tau32_values, dtype=np.float64).ravel()
    m = np.asarray(mass, dtype=np.float64).ravel()
    y = np.asarray(is_signal, dtype=bool).ravel()
    cuts = np.asarray(tau32_cuts, dtype=np.float64)
    n_sig, n_bkg = int(y.sum()), int((~y).sum())
    eff_sig = np.full((len(mass_windows), cuts.size), np.nan)
    eff_bkg = np.full_like(eff_sig, np.nan)
    for i, (lo, hi) in enumerate(mass_windows):
        inside = (m >= lo) & (m < hi) & np.isfinite(t)
        for eff, sel, n in ((eff_sig, y, n_sig), (eff_bkg, ~y, n_bkg)):
            if n:
                eff[i] = np.searchsorted(np.sort(t[inside & sel]), cuts, side="left") / n
    return {"eff_sig": eff_sig, "eff_bkg": eff_bkg, "tau32_cuts": cuts, "mass_windows": np.asarray(mass_windows)}


def upper_envelope(eff_bkg: np.ndarray, eff_sig: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The best cuts of a scan: points no other point beats in both ε_S (higher) and ε_B (lower).

    Returns (eff_bkg, eff_sig, index into the flattened inputs) ordered by ε_B, starting at (0, 0) and
    ending at (1, 1) (index −1: rejecting or accepting every jet), so the result reads like a ROC.
    """
    eb = np.asarray(eff_bkg, dtype=np.float64).ravel()
    es = np.asarray(eff_sig, dtype=np.float64).ravel()
    ok = np.flatnonzero(np.isfinite(eb) & np.isfinite(es))
    if ok.size == 0:
        nan = np.array([np.nan])
        return nan, nan, np.array([-1])
    order = ok[np.lexsort((-es[ok], eb[ok]))]  # by ε_B, best ε_S first among equal ε_B
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], es[order]]))[:-1]
    keep = order[es[order] > best_before]
    keep = keep[(es[keep] > 0) | (eb[keep] > 0)]
    idx = np.concatenate([[-1], keep, [-1]])
    x = np.concatenate([[0.0], eb[keep], [1.0]])
    y = np.concatenate([[0.0], es[keep], [1.0]])
    return x, y, idx


def baseline_roc(
    tau32_values: np.ndarray,
    mass: np.ndarray,
    is_signal: np.ndarray,
    tau32_cuts: Sequence[float] | np.ndarray,
    mass_windows: Sequence[tuple[float, float]],
) -> dict[str, Any]:
    """The τ32 + soft-drop mass baseline as a ROC: the upper envelope of the cut scan, and the scan itself.

    The envelope is what an analyst would tune the two cuts to; its AUC and rejections are the numbers
    a learnt tagger has to beat. NaN numbers without signal or background.
    """
    y = np.asarray(is_signal, dtype=bool)
    scan = cut_scan(tau32_values, mass, y, tau32_cuts, mass_windows)
    if not (y.any() and (~y).any()):
        nan = np.array([np.nan])
        return {"eff_bkg": nan, "eff_sig": nan, "cuts": [], "scan": scan}
    eb, es, idx = upper_envelope(scan["eff_bkg"], scan["eff_sig"])
    n_cuts = scan["tau32_cuts"].size
    cuts = [
        None
        if i < 0
        else {
            "tau32_max": float(scan["tau32_cuts"][i % n_cuts]),
            "mass_window": [float(v) for v in scan["mass_windows"][i // n_cuts]],
        }
        for i in idx
    ]
    return {"eff_bkg": eb, "eff_sig": es, "cuts": cuts, "scan": scan}


def summarise_curve(
    eff_bkg: np.ndarray, eff_sig: np.ndarray, working_points: Sequence[float] = DEFAULT_WORKING_POINTS
) -> dict[str, Any]:
    """summarise_roc for a curve given as arrays (the baseline envelope)."""
    eb = background_efficiency_at(eff_bkg, eff_sig, working_points)
    with np.errstate(divide="ignore"):
        rej = np.where(np.isnan(eb), np.nan, 1.0 / eb)
    return {
        "auc": auc(eff_bkg, eff_sig),
        "background_efficiency": {f"{wp:g}": float(v) for wp, v in zip(working_points, eb, strict=True)},
        "rejection": {f"{wp:g}": float(v) for wp, v in zip(working_points, rej, strict=True)},
    }


def class_indices(names: Sequence[str], selection: Sequence[int | str] | None, default_prefix: str) -> list[int]:
    """Class indices from a list of indices or names; by default every class whose name has the prefix.

    Names are compared without a leading 'label_' (JetClass-II writes label_QCD_bb, a tagger may write
    QCD_bb), so either spelling selects the same class.
    """
    bare = [n.removeprefix("label_") for n in names]
    if selection is None:
        return [i for i, n in enumerate(bare) if n.startswith(default_prefix)]
    out = []
    for item in selection:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if not 0 <= int(item) < len(names):
                raise ValueError(f"class index {item} outside [0, {len(names)})")
            out.append(int(item))
        else:
            key = str(item).removeprefix("label_")
            if key not in bare:
                raise ValueError(f"class {item!r} is not one of the tagger's classes {list(names)}")
            out.append(bare.index(key))
    return out

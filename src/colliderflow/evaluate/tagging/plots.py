"""The jet-tagging figures, drawn from the outputs of `colliderflow.evaluate.tagging.metrics` (no physics here).

Each figure has a fixed file name, listed in TAGGER_PLOTS (colliderflow.evaluate.figures), with a caption in
workflow/report/tagging_<name>.rst, and is written as PNG and PDF. ROC curves are drawn the way
tagging papers draw them — background rejection 1/ε_B on a log scale against signal efficiency ε_S —
because the interesting region (rejections of 10 to 10⁴) is invisible on a linear ε_B axis. The learnt
tagger always takes the model's colour and the cut-based τ32 + m_SD baseline the baseline's colour of
`style`, so the comparison reads the same as in the particle-flow figures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from colliderflow.evaluate import style
from colliderflow.evaluate.figures import TAGGER_PLOTS
from colliderflow.evaluate.pf.plots import plot_loss_curves  # one loss-curve figure for every model
from colliderflow.evaluate.style import save_figure
from colliderflow.evaluate.tagging.metrics import Roc

TAGGER = style.AlgoStyle(label="Tagger", color=style.ALGO_STYLE["mlpf"].color, marker="^", linestyle="-")
CUT_BASELINE = style.AlgoStyle(
    label=r"$\tau_{32}$ + $m_{SD}$ window", color=style.ALGO_STYLE["baseline"].color, marker="s", linestyle="--"
)
# One colour per class in the one-vs-rest figure (classes are not algorithms: the auxiliary palette).
# Red and blue are kept for tagger and baseline, so a class is never mistaken for an algorithm.
_CLASS_COLORS = ("#f89c20", "#964a8b", "#2ca02c", "#17becf", "#000000", "#9c9ca1", "#a96b59", "#7a21dd")
_PANEL = 6.5  # inches
_LABEL = 20
_EFF_S = r"Signal efficiency $\varepsilon_{S}$"
_REJ = r"Background rejection $1/\varepsilon_{B}$"
_MIN_EFF_S = 0.05  # below this the rejection is set by a handful of jets


class TaggerPlotInputs(TypedDict, total=False):
    """What make_tagger_plots needs, as produced by colliderflow.evaluate.tagging.run.

    classes: class names in score order; plot_classes: the class indices to draw.
    one_vs_rest: class → Roc. vs_qcd: class → {"roc": Roc, "baseline": tagging.baseline_roc output,
    "sculpting": tagging.mass_sculpting output}. summary: the JSON summary (for the rejection figure).
    training_log: as colliderflow.evaluate.records.read_training_log. dataset_label: header text, top right.
    """

    classes: Sequence[str]
    plot_classes: Sequence[int]
    one_vs_rest: Mapping[int, Roc]
    vs_qcd: Mapping[int, Mapping[str, Any]]
    summary: Mapping[str, Any]
    working_points: Sequence[float]
    sculpting_efficiency: float
    training_log: Mapping[str, Mapping[str, np.ndarray]] | None
    dataset_label: str


def class_label(name: str) -> str:
    """A readable label for a class name of the JetClass-II grammar: X_YY_bbcq → X→YY→bbcq, QCD_bb → QCD (bb)."""
    body = name.removeprefix("label_")
    if body.startswith("X_YY_"):
        return rf"$X\to YY\to$ {body[5:]}"
    if body.startswith("X_"):
        return rf"$X\to$ {body[2:]}"
    if body.startswith("QCD_"):
        return f"QCD ({body[4:]})"
    return re.sub(r"_", " ", body)


def _header(axes: Sequence[Axes], inputs: TaggerPlotInputs) -> None:
    style.experiment_label(axes[0], fontsize=22)
    style.experiment_label(axes[-1], right=inputs.get("dataset_label", ""), left=False, fontsize=22)


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4", fontsize=_LABEL)


def _rejection_curve(eff_bkg: np.ndarray, eff_sig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ε_S, 1/ε_B) of a ROC for drawing: only where ε_B > 0 (a log axis has no room for inf)."""
    eb = np.asarray(eff_bkg, dtype=float)
    es = np.asarray(eff_sig, dtype=float)
    ok = np.isfinite(eb) & np.isfinite(es) & (eb > 0) & (es >= _MIN_EFF_S)
    return es[ok], 1.0 / eb[ok]


def _rejection_axes(ax: Axes) -> None:
    """Log rejection axis with room above the curves for the panel title, working points marked."""
    ax.set_yscale("log")
    tops = [
        np.nanmax(y)
        for y in (np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines())
        if np.isfinite(y).any()
    ]
    ax.set_ylim(0.8, max(max(tops, default=10.0), 10.0) * 40)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(_EFF_S, fontsize=_LABEL)
    ax.axhline(1.0, color="0.5", linewidth=1, zorder=0)
    for wp in (0.3, 0.5):
        ax.axvline(wp, color="0.7", linewidth=1, linestyle=":", zorder=0)


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not np.isfinite(value):
        return "∞" if value is not None and np.isinf(value) else "n/a"
    return f"{value:.{digits}g}"


def _grid(n: int) -> tuple[Figure, np.ndarray]:
    ncols = min(n, 2) or 1
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(_PANEL * ncols + 1, _PANEL * nrows),
        squeeze=False,
        gridspec_kw={"hspace": 0.28, "wspace": 0.22},
    )
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def plot_roc_one_vs_rest(inputs: TaggerPlotInputs) -> Figure:
    classes = inputs["classes"]
    fig, ax = plt.subplots(figsize=(10, 8.5))
    drawn = 0
    for k, c in enumerate(inputs.get("plot_classes", [])):
        roc = inputs["one_vs_rest"][c]
        x, y = _rejection_curve(roc.eff_bkg, roc.eff_sig)
        if x.size == 0:
            continue
        auc = inputs["summary"]["one_vs_rest"][classes[c]]["auc"]
        ax.plot(
            x,
            y,
            color=_CLASS_COLORS[k % len(_CLASS_COLORS)],
            linewidth=2.5,
            label=f"{class_label(classes[c])}, AUC = {_fmt(auc)}",
        )
        drawn += 1
    _rejection_axes(ax)
    ax.set_ylabel(_REJ + " (all other jets)", fontsize=_LABEL)
    if drawn:
        ax.legend(loc="lower left", fontsize=15, title="One vs. rest", title_fontsize=16)
    else:
        _no_data(ax, "no class with both signal and background")
    _header([ax], inputs)
    return fig


def plot_roc_vs_qcd(inputs: TaggerPlotInputs) -> Figure:
    classes = inputs["classes"]
    plot_classes = list(inputs.get("plot_classes", []))
    fig, axes = _grid(len(plot_classes))
    flat = axes.ravel()
    for ax, c in zip(flat, plot_classes, strict=False):
        entry = inputs["vs_qcd"].get(c)
        summ = inputs["summary"]["vs_qcd"].get(classes[c], {})
        drawn = False
        if entry is not None:
            scan = entry["baseline"]["scan"]
            sx, sy = _rejection_curve(scan["eff_bkg"], scan["eff_sig"])
            ax.plot(
                sx,
                sy,
                linestyle="none",
                marker=".",
                markersize=3,
                color=CUT_BASELINE.color,
                alpha=0.25,
                label="single cut pairs",
            )
            bx, by = _rejection_curve(entry["baseline"]["eff_bkg"], entry["baseline"]["eff_sig"])
            if bx.size:
                ax.plot(
                    bx,
                    by,
                    color=CUT_BASELINE.color,
                    linestyle=CUT_BASELINE.linestyle,
                    linewidth=2.5,
                    label=f"{CUT_BASELINE.label}, AUC = {_fmt(summ.get('baseline', {}).get('auc'))}",
                )
                drawn = True
            tx, ty = _rejection_curve(entry["roc"].eff_bkg, entry["roc"].eff_sig)
            if tx.size:
                ax.plot(
                    tx,
                    ty,
                    color=TAGGER.color,
                    linestyle=TAGGER.linestyle,
                    linewidth=2.5,
                    label=f"{TAGGER.label}, AUC = {_fmt(summ.get('tagger', {}).get('auc'))}",
                )
                drawn = True
        _rejection_axes(ax)
        style.panel_title(ax, f"{class_label(classes[c])} vs. QCD")
        if drawn:
            ax.legend(loc="lower left", fontsize=13)
        else:
            _no_data(ax, "no signal or no QCD jets")
    for ax in axes[:, 0]:
        ax.set_ylabel(_REJ + " (QCD)", fontsize=_LABEL)
    if not plot_classes:
        _no_data(flat[0], "no signal class to show")
        flat[0].set_visible(True)
    _header(list(axes[0]), inputs)
    return fig


def plot_rejection_bars(inputs: TaggerPlotInputs) -> Figure:
    """Grouped horizontal bars: per signal class, rejection of QCD at each working point, tagger vs baseline."""
    classes = inputs["classes"]
    plot_classes = list(inputs.get("plot_classes", []))
    wps = [f"{w:g}" for w in inputs.get("working_points", (0.5, 0.3))]
    fig, ax = plt.subplots(figsize=(12, 2.2 + 1.6 * max(len(plot_classes), 1)))
    series = [(algo, st, wp) for wp in wps for algo, st in (("tagger", TAGGER), ("baseline", CUT_BASELINE))]
    height = 0.8 / len(series)
    values = np.array(
        [
            [inputs["summary"]["vs_qcd"][classes[c]][algo]["rejection"][wp] or np.nan for (algo, _, wp) in series]
            if classes[c] in inputs["summary"]["vs_qcd"]
            else [np.nan] * len(series)
            for c in plot_classes
        ],
        dtype=float,
    ).reshape(len(plot_classes), len(series))
    # json null stands for both "undefined" and "infinite"; infinite shows as a full bar marked ∞.
    eff_bkg = np.array(
        [
            [inputs["summary"]["vs_qcd"][classes[c]][algo]["background_efficiency"][wp] for (algo, _, wp) in series]
            if classes[c] in inputs["summary"]["vs_qcd"]
            else [None] * len(series)
            for c in plot_classes
        ],
        dtype=float,
    ).reshape(len(plot_classes), len(series))
    finite = values[np.isfinite(values)]
    top = max(10.0, finite.max() * 8 if finite.size else 10.0)
    for k, (algo, st, wp) in enumerate(series):
        y = np.arange(len(plot_classes)) - 0.4 + (k + 0.5) * height
        v = np.where(eff_bkg[:, k] == 0, top, values[:, k])
        hatch = None if wp == wps[0] else "//"
        ax.barh(
            y,
            np.nan_to_num(v, nan=0.0),
            height=height * 0.92,
            color=st.color,
            alpha=0.85 if hatch is None else 0.45,
            hatch=hatch,
            edgecolor=st.color,
            label=f"{st.label}, $\\varepsilon_S$ = {float(wp):.0%}",
        )
        for yi, vi, ebi in zip(y, values[:, k], eff_bkg[:, k], strict=True):
            text = "∞" if ebi == 0 else _fmt(vi)
            ax.text(
                min(vi, top) * 1.05 if np.isfinite(vi) else (top if ebi == 0 else 1.05),
                yi,
                text,
                va="center",
                ha="left",
                fontsize=12,
            )
    ax.set_xscale("log")
    ax.set_xlim(1.0, top * 3)
    ax.set_yticks(np.arange(len(plot_classes)), [class_label(classes[c]) for c in plot_classes], fontsize=16)
    ax.invert_yaxis()
    ax.set_xlabel(_REJ + " of QCD", fontsize=_LABEL)
    ax.grid(axis="y", visible=False)
    ax.minorticks_off()
    ax.tick_params(axis="y", length=0)
    if plot_classes:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=14)
    else:
        _no_data(ax, "no signal class to show")
    _header([ax], inputs)
    return fig


def plot_mass_sculpting(inputs: TaggerPlotInputs) -> Figure:
    classes = inputs["classes"]
    plot_classes = list(inputs.get("plot_classes", []))
    eff = float(inputs.get("sculpting_efficiency", 0.5))
    fig, axes = _grid(len(plot_classes))
    for ax, c in zip(axes.ravel(), plot_classes, strict=False):
        entry = inputs["vs_qcd"].get(c)
        if entry is None or entry["sculpting"]["n_before"] == 0:
            _no_data(ax, "no QCD jets")
            continue
        sc = entry["sculpting"]
        edges = np.asarray(sc["bins"], dtype=float)
        before = np.nan_to_num(np.asarray(sc["density_before"], dtype=float))
        ax.stairs(before, edges, color="0.2", linewidth=2, fill=True, alpha=0.15)
        ax.stairs(before, edges, color="0.2", linewidth=2, label=f"QCD, all ({sc['n_before']} jets)")
        if sc["n_after"] > 0:
            ax.stairs(
                np.asarray(sc["density_after"], dtype=float),
                edges,
                color=TAGGER.color,
                linewidth=2.5,
                label=f"QCD after tagger cut ({sc['n_after']} jets)",
            )
        ax.set_xlim(edges[0], edges[-1])
        peak = np.nanmax(np.concatenate([before, np.nan_to_num(np.asarray(sc["density_after"], dtype=float))]))
        ax.set_ylim(0, 1.45 * peak if peak > 0 else 1.0)
        ax.set_xlabel(r"Soft-drop mass $m_{SD}$ [GeV]", fontsize=_LABEL)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.legend(loc="upper right", fontsize=13, bbox_to_anchor=(1.0, 0.9))
        style.panel_title(ax, f"{class_label(classes[c])} vs. QCD")
        jsd = inputs["summary"]["vs_qcd"][classes[c]]["sculpting"]["jsd"]
        ax.text(
            0.96,
            0.6,
            f"cut at $\\varepsilon_S$ = {eff:.0%}\n"
            f"$\\varepsilon_B$ = {_fmt(sc['background_efficiency'])}\nJSD = {_fmt(jsd, 2)}",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=14,
        )
    for ax in axes[:, 0]:
        ax.set_ylabel("Fraction of jets / GeV", fontsize=_LABEL)
    if not plot_classes:
        _no_data(axes[0, 0], "no signal class to show")
        axes[0, 0].set_visible(True)
    _header(list(axes[0]), inputs)
    return fig


def plot_tagger_loss_curves(inputs: TaggerPlotInputs) -> Figure:
    return plot_loss_curves({"training_log": inputs.get("training_log"), "rlabel": inputs.get("dataset_label", "")})


_PLOTTERS: dict[str, Callable[[TaggerPlotInputs], Figure]] = {
    "roc_one_vs_rest": plot_roc_one_vs_rest,
    "roc_vs_qcd": plot_roc_vs_qcd,
    "rejection_bars": plot_rejection_bars,
    "mass_sculpting": plot_mass_sculpting,
    "loss_curves": plot_tagger_loss_curves,
}
if tuple(_PLOTTERS) != TAGGER_PLOTS:
    raise RuntimeError("every name in TAGGER_PLOTS needs exactly one plotting function, in the same order")


def make_tagger_plots(inputs: TaggerPlotInputs, plots_dir: Path) -> dict[str, Path]:
    """Draw and save every figure of TAGGER_PLOTS into `plots_dir`; returns name → PNG path."""
    written: dict[str, Path] = {}
    for name in TAGGER_PLOTS:
        with style.figure_style():
            written[name] = save_figure(_PLOTTERS[name](inputs), plots_dir, name)
    return written

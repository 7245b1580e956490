"""The evaluation figures, drawn from the outputs of `colliderflow.evaluate.pf.metrics` (no physics here).

Each figure has a fixed file name, listed in PF_PLOTS (colliderflow.evaluate.figures); the workflow declares exactly these as report
outputs, each with a caption in workflow/report/<name>.rst. Every figure is written as PNG (for the
report) and PDF (for slides) side by side. Per-sample figures put one sample per panel and keep the
colour for the algorithm, so that tt̄, qq̄ and WW read the same way. Bins with fewer than MIN_ENTRIES
entries are not drawn: a median of two jets is noise that the eye takes for a trend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from colliderflow.evaluate import style
from colliderflow.evaluate.style import save_figure
from colliderflow.evaluate.pf import summary_table
from colliderflow.evaluate.figures import PF_PLOTS
from colliderflow.evaluate.pf.metrics import MIN_ENTRIES  # one threshold: a bin hidden here is null in the summary
from colliderflow.schema import CLASS_NAMES


# Algorithms that reconstruct particles (the target is the reference of element-wise metrics, not a contender).
_RECO_ALGOS = ("baseline", "mlpf")
_LOSS_TERMS = ("loss", "loss_cls", "loss_charge", "loss_reg", "loss_gev")
_LOSS_LABELS = {"loss": "total", "loss_cls": "classification", "loss_charge": "charge", "loss_reg": "regression",
                "loss_gev": "pT, E in GeV"}
_PANEL_W = 7.0  # inches
_PANEL_H = 6.0
_LABEL_SIZE = 22  # axis labels of multi-panel figures
_PLAIN = FuncFormatter(lambda v, _pos: f"{v:g}")


class PlotInputs(TypedDict, total=False):
    """What make_plots needs, as produced by colliderflow.evaluate.pf.run.

    jets: sample → algorithm → metrics.jet_response_from_match output.
    met: sample → algorithm → metrics.met_response_from_values output.
    confusion: algorithm → metrics.confusion_matrix output.
    class_efficiency: algorithm → metrics.class_efficiency_and_fake_rate output.
    particle_response: algorithm → metrics.particle_response output.
    training_log: split → column → array (step, loss…, lr, samples_per_s), or None when there is no log.
    sqrt_s: collision energy for the figure label, GeV.
    rlabel: text above the top-right panel instead of the collision energy (e.g. a dataset name).
    summary: the summary JSON of the stage (for the headline table); tagger_summary: that of a tagger.
    """

    jets: Mapping[str, Mapping[str, Mapping[str, Any]]]
    met: Mapping[str, Mapping[str, Mapping[str, Any]]]
    confusion: Mapping[str, Mapping[str, np.ndarray]]
    class_efficiency: Mapping[str, Mapping[str, np.ndarray]]
    particle_response: Mapping[str, Mapping[int, Mapping[str, Any]]]
    training_log: Mapping[str, Mapping[str, np.ndarray]] | None
    sqrt_s: float
    rlabel: str
    summary: Mapping[str, Any]
    tagger_summary: Mapping[str, Any] | None


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
def _grid(
    row_heights: Sequence[float],
    ncols: int,
    *,
    sharex: Any = "col",
    sharey: Any = "row",
    width: float = _PANEL_W,
    hspace: float = 0.08,
) -> tuple[Figure, np.ndarray]:
    """Panels of fixed size in inches (row heights given), so fonts read the same in every figure."""
    fig, axes = plt.subplots(
        len(row_heights),
        ncols,
        figsize=(width * ncols, sum(row_heights)),
        squeeze=False,
        sharex=sharex,
        sharey=sharey,
        gridspec_kw={"height_ratios": list(row_heights), "hspace": hspace, "wspace": 0.14},
    )
    return fig, axes


def _use_log_x(edges: np.ndarray) -> bool:
    return bool(edges[0] > 0 and edges[-1] / edges[0] >= 8)


def _format_x(ax: Axes, edges: np.ndarray) -> None:
    """Log x for pT-like axes spanning a decade or more, with plain-number ticks a reader can read off."""
    ax.set_xlim(edges[0], edges[-1])
    if not _use_log_x(edges):
        return
    ax.set_xscale("log")
    decades = np.log10(edges[-1] / edges[0])
    candidates = (1, 10, 100, 1000) if decades > 2.5 else (0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    candidates = (0.1, *candidates) if decades > 2.5 else candidates
    ticks = [t for t in candidates if edges[0] <= t <= edges[-1]]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(_PLAIN)
    ax.xaxis.set_minor_formatter(NullFormatter())


def _points(
    ax: Axes,
    edges: np.ndarray,
    y: np.ndarray,
    yerr: np.ndarray | None,
    count: np.ndarray,
    algo: str,
    *,
    slot: int = 0,
    n_slots: int = 1,
) -> bool:
    """Binned values as markers with error bars spanning the bin, algorithms slightly staggered in x.

    Returns whether anything was drawn (bins below MIN_ENTRIES are left out).
    """
    st = style.ALGO_STYLE[algo]
    edges = np.asarray(edges, dtype=float)
    lo, hi = edges[:-1], edges[1:]
    frac = 0.5 + 0.12 * (slot - (n_slots - 1) / 2)  # marker position inside the bin
    x = np.exp(np.log(lo) + frac * np.log(hi / lo)) if _use_log_x(edges) else lo + frac * (hi - lo)
    y = np.where(np.asarray(count) >= MIN_ENTRIES, np.asarray(y, dtype=float), np.nan)
    err = None if yerr is None else np.where(np.isfinite(yerr), yerr, 0.0)
    ax.errorbar(
        x,
        y,
        yerr=err,
        xerr=[x - lo, hi - x],
        color=st.color,
        marker=st.marker,
        markersize=8,
        linestyle="none",
        elinewidth=1.5,
        label=st.label,
    )
    ax.plot(x, y, color=st.color, linestyle=st.linestyle, linewidth=1.2, alpha=0.6)
    return bool(np.isfinite(y).any())


def _no_data(ax: Axes, text: str = "no entries") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4", fontsize=_LABEL_SIZE)


def _header(
    fig: Figure, axes: np.ndarray, sqrt_s: float, algos: Sequence[str] = (), *, right: str | None = None
) -> None:
    """Experiment label top left, energy (or `right`) top right, and one legend of the algorithms between them."""
    style.experiment_label(axes[0, 0], fontsize=24)
    style.experiment_label(axes[0, -1], right=style.rlabel(sqrt_s) if right is None else right, left=False, fontsize=24)
    if algos:
        handles = [
            Line2D(
                [],
                [],
                color=style.ALGO_STYLE[a].color,
                marker=style.ALGO_STYLE[a].marker,
                linestyle=style.ALGO_STYLE[a].linestyle,
                markersize=9,
                label=style.ALGO_STYLE[a].label,
            )
            for a in algos
        ]
        top = axes[0, 0].get_position().y1
        fig.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, top + 0.005),
            ncols=len(handles),
            fontsize=20,
            frameon=False,
            handlelength=2.5,
            columnspacing=1.5,
        )


def _unity(ax: Axes) -> None:
    ax.axhline(1.0, color="0.5", linewidth=1, linestyle="-", zorder=0, label="_unity")


def _samples(per_sample: Mapping[str, Any]) -> list[str]:
    return style.order_samples([s for s in per_sample if s != "all"]) or list(per_sample)


def _fit_ylim(axes: Sequence[Axes], *, around_one: bool, floor_zero: bool, headroom: float) -> None:
    """One y range for a row: the drawn points, room at the top for the panel title, 1 always in view for responses."""
    lo, hi = np.inf, -np.inf
    for ax in axes:
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            y = y[np.isfinite(y)]
            if y.size and line.get_label() != "_unity":
                lo, hi = min(lo, y.min()), max(hi, y.max())
    if not np.isfinite(lo):
        lo, hi = (0.9, 1.1) if around_one else (0.0, 1.0)
    if around_one:
        lo, hi = min(lo, 1.0), max(hi, 1.0)
    if floor_zero:
        lo = 0.0
    span = max(hi - lo, 0.02)
    axes[0].set_ylim(lo if floor_zero else lo - 0.08 * span, hi + headroom * span)


# --------------------------------------------------------------------------------------------------
# Jets and MET
# --------------------------------------------------------------------------------------------------
_PT_GEN = r"Gen-jet $p_{T}$ [GeV]"
_ETA_GEN = r"Gen-jet $\eta$"
_MET_GEN = r"Gen $p_{T}^{miss}$ [GeV]"


def _per_sample_panels(
    per_sample: Mapping[str, Mapping[str, Mapping[str, Any]]],
    view: str,
    rows: Sequence[tuple[str, str]],
    xlabel: str,
    sqrt_s: float,
    *,
    ratio_row: bool = False,
    empty_text: str = "no matched jets",
) -> Figure:
    """One column per sample; one row per (quantity, y label); optionally an MLPF/baseline resolution-ratio row."""
    samples = _samples(per_sample)
    heights = [_PANEL_H] * len(rows) + ([2.6] if ratio_row else [])
    fig, axes = _grid(heights, len(samples))
    algos_seen: list[str] = []
    for col, sample in enumerate(samples):
        algos = [a for a in style.ALGORITHMS if a in per_sample[sample]]
        algos_seen += [a for a in algos if a not in algos_seen]
        edges = np.asarray(per_sample[sample][algos[0]][view]["bins"], dtype=float)
        for row, (key, ylabel) in enumerate(rows):
            ax = axes[row, col]
            drawn = False
            for slot, algo in enumerate(algos):
                binned = per_sample[sample][algo][view]
                drawn |= _points(
                    ax, edges, binned[key], binned[f"{key}_err"], binned["count"], algo, slot=slot, n_slots=len(algos)
                )
            if not drawn:
                _no_data(ax, empty_text)
            if key == "response":
                _unity(ax)
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=_LABEL_SIZE)
            if row == 0:
                style.panel_title(ax, style.sample_label(sample))
        if ratio_row:
            ax = axes[-1, col]
            if "mlpf" in per_sample[sample] and "baseline" in per_sample[sample]:
                m, b = per_sample[sample]["mlpf"][view], per_sample[sample]["baseline"][view]
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.asarray(m["resolution"]) / np.asarray(b["resolution"])
                    err = np.abs(ratio) * np.hypot(
                        np.asarray(m["resolution_err"]) / np.asarray(m["resolution"]),
                        np.asarray(b["resolution_err"]) / np.asarray(b["resolution"]),
                    )
                _points(ax, edges, ratio, err, np.minimum(m["count"], b["count"]), "mlpf")
            _unity(ax)
            if col == 0:
                ax.set_ylabel("MLPF / baseline", fontsize=18)
        for row in range(len(heights)):
            _format_x(axes[row, col], edges)
        axes[-1, col].set_xlabel(xlabel, fontsize=_LABEL_SIZE)
    for row, (key, _) in enumerate(rows):
        _fit_ylim(axes[row, :], around_one=key == "response", floor_zero=key == "resolution", headroom=0.3)
    if ratio_row:
        _fit_ylim(axes[-1, :], around_one=True, floor_zero=False, headroom=0.1)
    _header(fig, axes, sqrt_s, algos_seen)
    fig.align_ylabels(axes[:, 0])
    return fig


def plot_jet_response(inputs: PlotInputs) -> Figure:
    rows = [("response", r"Jet response: median $p_{T}^{reco}/p_{T}^{gen}$")]
    return _per_sample_panels(inputs["jets"], "vs_pt", rows, _PT_GEN, inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV))


def plot_jet_resolution(inputs: PlotInputs) -> Figure:
    rows = [("resolution", r"Jet resolution: IQR / median")]
    return _per_sample_panels(
        inputs["jets"], "vs_pt", rows, _PT_GEN, inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV), ratio_row=True
    )


def plot_jet_response_eta(inputs: PlotInputs) -> Figure:
    rows = [("response", r"Median $p_{T}^{reco}/p_{T}^{gen}$"), ("resolution", "IQR / median")]
    return _per_sample_panels(inputs["jets"], "vs_eta", rows, _ETA_GEN, inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV))


def plot_met_response(inputs: PlotInputs) -> Figure:
    rows = [("response", r"Median $p_{T}^{miss,reco}/p_{T}^{miss,gen}$"), ("resolution", "IQR / median")]
    return _per_sample_panels(
        inputs["met"],
        "vs_genmet",
        rows,
        _MET_GEN,
        inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV),
        empty_text="no events",
    )


# --------------------------------------------------------------------------------------------------
# Element-wise classification and particle regression
# --------------------------------------------------------------------------------------------------
def plot_confusion_matrix(inputs: PlotInputs) -> Figure:
    confusion = inputs["confusion"]
    algos = [a for a in _RECO_ALGOS if a in confusion]
    labels = [style.CLASS_LABELS.get(n, n) for n in CLASS_NAMES]
    n = len(labels)
    fig, axes = plt.subplots(
        1, len(algos), figsize=(8.5 * len(algos) + 1.5, 8.5), squeeze=False, gridspec_kw={"wspace": 0.06}
    )
    image = None
    for k, (ax, algo) in enumerate(zip(axes[0], algos, strict=True)):
        norm = np.asarray(confusion[algo]["normalised"], dtype=float)
        counts = np.asarray(confusion[algo]["counts"])
        image = ax.imshow(np.nan_to_num(norm, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0, origin="upper")
        for i in range(n):
            for j in range(n):
                if counts[i, j] == 0:
                    continue
                v = norm[i, j]
                ax.text(
                    j,
                    i,
                    f"{100 * v:.1f}" if v < 0.9995 else "100",
                    ha="center",
                    va="center",
                    fontsize=16,
                    color="white" if v > 0.55 else "black",
                )
        ax.set_xticks(range(n), labels, rotation=40, ha="right", rotation_mode="anchor", fontsize=18)
        ax.set_yticks(range(n), labels if k == 0 else [], fontsize=18)
        ax.minorticks_off()
        ax.grid(False)
        ax.tick_params(top=False, right=False, length=0)
        st = style.ALGO_STYLE[algo]
        ax.set_title(st.label, color=st.color, fontsize=24, pad=40)
        ax.set_xlabel("Reconstructed class", fontsize=_LABEL_SIZE)
        if k == 0:
            ax.set_ylabel("Target class", fontsize=_LABEL_SIZE)
    if image is not None:
        cbar = fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03, pad=0.02)
        cbar.set_label("Fraction of target class [%]", fontsize=_LABEL_SIZE)
        cbar.set_ticks([0, 0.25, 0.5, 0.75, 1.0], labels=["0", "25", "50", "75", "100"])
        cbar.ax.minorticks_off()
    _header(fig, axes, inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV))
    return fig


def _per_class_panels(
    per_algo: Mapping[str, Any],
    get: Callable[[Any, int, int], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    rows: Sequence[tuple[str, str, tuple[float, float]]],
    sqrt_s: float,
    *,
    unity: bool = False,
) -> Figure:
    """One column per particle class (none excluded), one row per quantity; baseline and MLPF in each panel.

    rows: (y label, x label, y range). `get(result, class, row)` returns (edges, y, yerr, count).
    """
    classes = list(range(1, len(CLASS_NAMES)))
    algos = [a for a in _RECO_ALGOS if a in per_algo]
    fig, axes = _grid([5.2] * len(rows), len(classes), sharex=False, sharey="row", width=5.4, hspace=0.3)
    for col, c in enumerate(classes):
        for row, (ylabel, xlabel, ylim) in enumerate(rows):
            ax = axes[row, col]
            drawn = False
            edges = None
            for slot, algo in enumerate(algos):
                edges, y, yerr, count = get(per_algo[algo], c, row)
                drawn |= _points(ax, edges, y, yerr, count, algo, slot=slot, n_slots=len(algos))
            if edges is not None:
                _format_x(ax, np.asarray(edges, dtype=float))
            if not drawn:
                _no_data(ax)
            if unity and row == 0:
                _unity(ax)
            ax.set_ylim(*ylim)
            if col == 0:
                ax.set_ylabel(ylabel, fontsize=20)
            ax.set_xlabel(xlabel, fontsize=18)
            ax.tick_params(labelsize=16)
            style.panel_title(ax, style.CLASS_LABELS.get(CLASS_NAMES[c], CLASS_NAMES[c]))
    _header(fig, axes, sqrt_s, algos)
    fig.align_ylabels(axes[:, 0])
    return fig


def plot_class_efficiency(inputs: PlotInputs) -> Figure:
    def get(eff: Mapping[str, np.ndarray], c: int, row: int) -> tuple[np.ndarray, ...]:
        key, n_key = (("efficiency", "n_true"), ("fake_rate", "n_pred"))[row]
        return eff["bins"], np.asarray(eff[key])[c], np.asarray(eff[f"{key}_err"])[c], np.asarray(eff[n_key])[c]

    rows = [
        ("Efficiency", r"Target $p_{T}$ [GeV]", (0.0, 1.2)),
        ("Fake rate", r"Reconstructed $p_{T}$ [GeV]", (0.0, 1.2)),
    ]
    return _per_class_panels(inputs["class_efficiency"], get, rows, inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV))


def plot_particle_response(inputs: PlotInputs) -> Figure:
    def get(resp: Mapping[int, Mapping[str, Any]], c: int, row: int) -> tuple[np.ndarray, ...]:
        key = ("response", "resolution")[row]
        binned = resp[c]["pt"]
        return binned["bins"], binned[key], binned[f"{key}_err"], binned["count"]

    rows = [
        (r"Median $p_{T}^{reco}/p_{T}^{target}$", r"Target $p_{T}$ [GeV]", (0.5, 1.5)),
        (r"$p_{T}$ resolution: IQR / median", r"Target $p_{T}$ [GeV]", (0.0, 1.0)),
    ]
    return _per_class_panels(
        inputs["particle_response"], get, rows, inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV), unity=True
    )


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------
_SPLIT_STYLE: dict[str, dict[str, Any]] = {
    "train": {"linestyle": "-", "marker": None, "alpha": 0.85},
    "val": {"linestyle": "--", "marker": "o", "alpha": 1.0},
}
_SPLIT_LABELS = {"train": "training", "val": "validation"}


def _split_handles(log: Mapping[str, Any]) -> list[Line2D]:
    return [
        Line2D(
            [],
            [],
            color="0.3",
            linestyle=_SPLIT_STYLE[s]["linestyle"],
            marker=_SPLIT_STYLE[s]["marker"],
            label=_SPLIT_LABELS[s],
        )
        for s in ("train", "val")
        if s in log
    ]


def _draw_losses(ax: Axes, log: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """Every loss term (colour) on every split (line style); log y when all values are positive."""
    terms_seen: list[str] = []
    positive = True
    for split, cols in log.items():
        st = _SPLIT_STYLE.get(split, {"linestyle": ":", "marker": "x", "alpha": 1.0})
        step = np.asarray(cols.get("step", []), dtype=float)
        for color, term in zip(style.AUX_COLORS, _LOSS_TERMS, strict=False):
            y = np.asarray(cols.get(term, np.full(step.shape, np.nan)), dtype=float)
            ok = np.isfinite(step) & np.isfinite(y)
            if not ok.any():
                continue
            positive &= bool((y[ok] > 0).all())
            ax.plot(step[ok], y[ok], color=color, linewidth=2.5 if term == "loss" else 1.6, markersize=7, **st)
            if term not in terms_seen:
                terms_seen.append(term)
    if positive and terms_seen:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(_PLAIN)
        ax.yaxis.set_minor_formatter(NullFormatter())
    if not terms_seen:
        _no_data(ax, "no loss values in the training log")
    ax.set_ylabel("Loss")
    handles = [
        Line2D([], [], color=c, linewidth=2.5, label=_LOSS_LABELS[t])
        for c, t in zip(style.AUX_COLORS, _LOSS_TERMS, strict=False)
        if t in terms_seen
    ]
    ax.legend(handles=handles + _split_handles(log), loc="upper right", ncols=2, fontsize=20)


def _draw_learning_rate(ax: Axes, log: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """The schedule as logged with the training lines (validation lines repeat it, when they have it)."""
    for split in ("train", *[s for s in log if s != "train"]):
        cols = log.get(split, {})
        step = np.asarray(cols.get("step", []), dtype=float)
        lr = np.asarray(cols.get("lr", np.full(step.shape, np.nan)), dtype=float)
        ok = np.isfinite(step) & np.isfinite(lr)
        if ok.any():
            ax.plot(step[ok], lr[ok], color="0.2", linewidth=2)
            break
    else:
        _no_data(ax, "no learning rate logged")
    ax.set_ylabel("Learning rate", fontsize=_LABEL_SIZE)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3), useMathText=True)


def _draw_throughput(ax: Axes, log: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """samples/s per split: training speed (forward + backward) and, on validation lines, inference speed.

    A drop in training throughput at constant batch size points at the input pipeline or at contention
    on the machine, not at the model; it is the first thing to look at when a run is slower than expected.
    """
    drawn = False
    for split, cols in log.items():
        st = _SPLIT_STYLE.get(split, {"linestyle": ":", "marker": "x", "alpha": 1.0})
        step = np.asarray(cols.get("step", []), dtype=float)
        rate = np.asarray(cols.get("samples_per_s", np.full(step.shape, np.nan)), dtype=float)
        ok = np.isfinite(step) & np.isfinite(rate) & (rate > 0)
        if ok.any():
            ax.plot(step[ok], rate[ok], color=style.AUX_COLORS[4], linewidth=2, markersize=6, **st)
            drawn = True
    if drawn:
        ax.set_ylim(0, None)
        ax.legend(handles=_split_handles(log), loc="lower right", ncols=2, fontsize=16)
    else:
        _no_data(ax, "no throughput logged")
    ax.set_ylabel("Throughput\n[samples/s]", fontsize=_LABEL_SIZE)


def plot_loss_curves(inputs: PlotInputs) -> Figure:
    """Loss per term and split (top), learning rate (middle) and throughput in samples/s (bottom) vs step."""
    log = inputs.get("training_log")
    sqrt_s = inputs.get("sqrt_s", style.DEFAULT_SQRT_S_GEV)
    right = inputs.get("rlabel")
    has_data = bool(log) and any(np.asarray(cols.get("step", [])).size for cols in log.values())
    if not has_data:
        fig, axes = plt.subplots(figsize=(10, 7), squeeze=False)
        _no_data(axes[0, 0], "no training log" if log is None else "training log has no entries")
        axes[0, 0].tick_params(which="both", labelbottom=False, labelleft=False)
        axes[0, 0].set_xlabel("Training step")
        axes[0, 0].set_ylabel("Loss")
        _header(fig, axes, sqrt_s, right=right)
        return fig
    fig, axes = plt.subplots(
        3, 1, figsize=(12, 14), sharex=True, squeeze=False, gridspec_kw={"height_ratios": [3, 1, 1], "hspace": 0.08}
    )
    _draw_losses(axes[0, 0], log)
    _draw_learning_rate(axes[1, 0], log)
    _draw_throughput(axes[2, 0], log)
    axes[2, 0].set_xlabel("Training step")
    _header(fig, axes, sqrt_s, right=right)
    fig.align_ylabels(axes[:, 0])
    return fig


def plot_summary_table(inputs: PlotInputs) -> Figure:
    """The headline numbers of the summary JSON (and of a tagger summary, when given) as a table figure."""
    return summary_table.table_figure(
        summary_table.summary_sections(inputs.get("summary") or {}, inputs.get("tagger_summary"))
    )


_PLOTTERS: dict[str, Callable[[PlotInputs], Figure]] = {
    "jet_response": plot_jet_response,
    "jet_resolution": plot_jet_resolution,
    "jet_response_eta": plot_jet_response_eta,
    "met_response": plot_met_response,
    "confusion_matrix": plot_confusion_matrix,
    "class_efficiency": plot_class_efficiency,
    "particle_response": plot_particle_response,
    "loss_curves": plot_loss_curves,
    "summary_table": plot_summary_table,
}
if tuple(_PLOTTERS) != PF_PLOTS:
    raise RuntimeError("every name in PF_PLOTS needs exactly one plotting function, in the same order")


def make_plots(inputs: PlotInputs, plots_dir: Path) -> dict[str, Path]:
    """Draw and save every figure of PF_PLOTS into `plots_dir`; returns name → PNG path."""
    written: dict[str, Path] = {}
    for name in PF_PLOTS:
        with style.figure_style():
            fig = _PLOTTERS[name](inputs)
            written[name] = save_figure(fig, plots_dir, name)
    return written

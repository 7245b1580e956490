"""One look for every evaluation figure: mplhep style, labels, and a fixed colour per algorithm.

A reader comparing figures in a talk should never have to re-learn which colour is MLPF, so the
colour, marker and line style of each algorithm are decided here once and used by every plot; and every
figure is written the same way (`save_figure`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # batch jobs have no display, and figures are only ever written to files

import matplotlib.pyplot as plt
import mplhep as hep
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from colliderflow.io.atomic import atomic_path

EXPERIMENT = "colliderflow"
LLABEL = "Simulation"
DEFAULT_SQRT_S_GEV = 380.0


@dataclass(frozen=True)
class AlgoStyle:
    label: str
    color: str
    marker: str
    linestyle: str


# Target = truth-level particles assigned to elements; baseline = the rule-based PF candidates.
ALGORITHMS: tuple[str, ...] = ("target", "baseline", "mlpf")
ALGO_STYLE: dict[str, AlgoStyle] = {
    "target": AlgoStyle(label="Target (truth-level)", color="#000000", marker="o", linestyle=":"),
    "baseline": AlgoStyle(label="Baseline PF", color="#5790fc", marker="s", linestyle="--"),
    "mlpf": AlgoStyle(label="MLPF", color="#e42536", marker="^", linestyle="-"),
}

# Colours for curves that are not algorithms (loss terms), chosen apart from the algorithm colours.
AUX_COLORS: tuple[str, ...] = ("#964a8b", "#f89c20", "#2ca02c", "#17becf", "#9c9ca1")

_SAMPLE_LABELS = {
    "ttbar": r"$e^+e^- \to t\bar{t}$",
    "tt": r"$e^+e^- \to t\bar{t}$",
    "qq": r"$e^+e^- \to q\bar{q}$",
    "ww": r"$e^+e^- \to W^+W^-$",
    "ww_fullhad": r"$e^+e^- \to W^+W^- \to$ hadrons",
    "zh": r"$e^+e^- \to ZH$",
    "all": "all samples",
}

CLASS_LABELS = {
    "none": "no particle",
    "charged_hadron": "charged hadron",
    "neutral_hadron": "neutral hadron",
    "photon": r"photon",
    "electron": r"electron",
    "muon": r"muon",
}

# Preferred order of samples in multi-panel figures; unknown samples follow in sorted order.
_SAMPLE_ORDER = ("ttbar", "tt", "qq", "ww", "ww_fullhad", "zh")


def sample_label(sample: str) -> str:
    """A physics label for a sample name; the name itself when it is not a known process."""
    return _SAMPLE_LABELS.get(sample.lower(), sample)


def order_samples(samples: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """Samples in a stable reading order (tt̄, qq̄, WW first), whatever order the data came in."""
    rank = {name: i for i, name in enumerate(_SAMPLE_ORDER)}
    return sorted(samples, key=lambda s: (rank.get(s.lower(), len(rank)), s))


def rlabel(sqrt_s_gev: float = DEFAULT_SQRT_S_GEV) -> str:
    return rf"$e^+e^-$, {sqrt_s_gev:g} GeV"


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """The CMS-like mplhep style, scoped to one figure so that no global state leaks between plots."""
    overrides = {
        "savefig.transparent": False,
        "savefig.facecolor": "white",
        "figure.facecolor": "white",
        "legend.frameon": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
    }
    with plt.style.context([hep.style.CMS, overrides]):
        yield


def experiment_label(ax: Axes, *, right: str | None = None, left: bool = True, fontsize: float | None = None) -> None:
    """'colliderflow Simulation' above the top-left panel and the collision energy above the top-right one.

    Drawn as one mathtext string rather than with mplhep's label helper, which lays its parts out by
    rendering the whole figure several times: seconds per multi-panel figure.
    """
    size = fontsize or plt.rcParams["font.size"]
    if left:
        ax.text(
            0.0,
            1.01,
            rf"$\bf{{{EXPERIMENT}}}$ $\it{{{LLABEL}}}$",
            transform=ax.transAxes,
            ha="left",
            va="bottom",
            fontsize=size,
        )
    if right:
        ax.text(1.0, 1.01, right, transform=ax.transAxes, ha="right", va="bottom", fontsize=size * 0.85)


def panel_title(ax: Axes, text: str) -> None:
    """A sample or class name inside the top-left corner of a panel."""
    ax.text(
        0.04,
        0.95,
        text,
        transform=ax.transAxes,
        ha="left",
        va="top",
        fontsize="small",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 2},
    )


def save_figure(fig: Figure, plots_dir: Path, name: str) -> Path:
    """Write <name>.png and <name>.pdf atomically; returns the PNG path."""
    plots_dir = Path(plots_dir)
    png = plots_dir / f"{name}.png"
    # One layout pass for both formats: "tight" would re-render the whole figure for each of them.
    fig.draw_without_rendering()
    bbox = fig.get_tightbbox().padded(0.15)
    for path in (png, plots_dir / f"{name}.pdf"):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix[1:], dpi=100, bbox_inches=bbox)
    plt.close(fig)
    return png

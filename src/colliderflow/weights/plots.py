"""The picture that shows whether the weights do their job: per class, before vs after, per variable.

Drawn from the histograms alone (the weighted projection is ``sum(H_c * W_c)`` over the other
variable), so the plot shows exactly what the weights were computed on, clipped edge bins included.
Bins are drawn with equal widths, labelled with their edges: the reweighting equalises counts per
bin, not densities, and the wide overflow-like last bins would otherwise hide that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from colliderflow.io.atomic import atomic_path
from colliderflow.weights.histogram import ReweightResult

# Axis labels of the variables the datasets are usually reweighted in; others show their name.
AXIS_LABELS: Final[dict[str, str]] = {
    "n_elements": "number of PF elements",
    "genmet": "generator MET [GeV]",
    "gen_unassigned_energy": "unassigned truth energy [GeV]",
    "jet_pt": r"jet $p_T$ [GeV]",
    "jet_sdmass": r"jet soft-drop mass $m_{SD}$ [GeV]",
    "jet_eta": r"jet $\eta$",
    "jet_nparticles": "jet constituents",
}


def _edge_label(value: float) -> str:
    return f"{value:g}"


def plot_projections(result: ReweightResult, path: str | Path, *, rows: str = "events") -> None:
    """One row per class, one column per variable: unweighted vs weighted fraction of rows per bin.

    rows: what a row is ("events", "jets"), for the labels.
    """
    n_classes = len(result.classes)
    fig, axes = plt.subplots(n_classes, 2, figsize=(10, 3.0 * n_classes), squeeze=False)
    weighted = result.raw_hists * result.weight_maps
    for c, label in enumerate(result.classes):
        for v, (name, edges) in enumerate(zip(result.var_names, result.edges)):
            ax = axes[c, v]
            other = 1 - v
            before = result.raw_hists[c].sum(axis=other)
            after = weighted[c].sum(axis=other)
            positions = np.arange(edges.size)
            for counts, style, text in ((before, "-", "unweighted"), (after, "--", "weighted")):
                total = counts.sum()
                fractions = counts / total if total > 0 else counts
                ax.stairs(fractions, positions, linestyle=style, linewidth=1.6, label=text)
            ax.set_xticks(positions, [_edge_label(e) for e in edges], fontsize=7)
            ax.set_xlabel(f"{AXIS_LABELS.get(name, name)} (bin edges)")
            ax.set_ylabel(f"fraction of {rows} per bin")
            ax.set_title(
                f"{label}: {int(result.raw_hists[c].sum())} {rows}, sum of weights {weighted[c].sum():.4g}",
                fontsize=9,
            )
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
    fig.suptitle(f"sampling weights ({result.method}, threshold {result.threshold:g})")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)

"""The names of the evaluation figures, apart from the code that draws them.

The workflow declares one report output per name when it parses the Snakefile, which every cluster job
does again; importing the plotting modules (matplotlib, numpy, awkward) there would cost each parse
seconds. So the names live here, with no imports, and plots.py / tagging_plots.py check that they draw
exactly these.
"""

from __future__ import annotations

# The particle-flow model's figures, in report order; each has workflow/report/<name>.rst.
PF_PLOTS: tuple[str, ...] = (
    "jet_response",
    "jet_resolution",
    "jet_response_eta",
    "met_response",
    "confusion_matrix",
    "class_efficiency",
    "particle_response",
    "loss_curves",
    "summary_table",
)

# The taggers' figures; each has workflow/report/tagging_<name>.rst.
TAGGER_PLOTS: tuple[str, ...] = ("roc_one_vs_rest", "roc_vs_qcd", "rejection_bars", "mass_sculpting", "loss_curves")

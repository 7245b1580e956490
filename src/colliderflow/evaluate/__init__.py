"""Evaluation: a trained model's predictions over a split, then metrics and figures.

    pf/       the particle-flow model: predict, metrics (pure functions), plots, summary_table, run
    tagging/  the jet taggers: predict, metrics (pure functions), plots, run
    figures   the figure names the workflow declares (no imports, read when the Snakefile is parsed)
    style     one look for every figure, and how a figure is written (PNG + PDF, atomically)
    records   the training log both read, and strict JSON for their summaries
"""

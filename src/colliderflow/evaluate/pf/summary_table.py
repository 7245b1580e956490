"""The headline numbers of an evaluation as a table: a figure for slides, HTML and reStructuredText for reports.

The summary JSON stays the machine-readable record; this module only picks the few numbers a talk
quotes — jet and MET resolution of the model against the rule-based baseline and their ratio,
classification accuracy, and for a tagger its AUCs and QCD rejections — and lays them out. Everything
is built from one list of `Section`s, so the figure and the text tables can never disagree.
Missing numbers (an empty bin, an absent class) read "–" rather than failing: a table with a gap is
still the right table. A resolution measured on fewer than metrics.MIN_ENTRIES entries is missing too,
also in a summary written before metrics nulled such bins itself: the IQR of one event is 0, which
would read as a perfect resolution.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from colliderflow.evaluate import style
from colliderflow.evaluate.style import save_figure
from colliderflow.evaluate.pf.metrics import MIN_ENTRIES
from colliderflow.io.atomic import write_text_atomic

MAX_TAGGER_ROWS = 8  # signal classes shown; JetClass-II has 161, the JSON keeps them all
_MISSING = "–"
_BETTER = "#d9f0d3"  # cell colour where the model beats the baseline
_WORSE = "#f6d5d5"


@dataclass(frozen=True)
class Section:
    """One titled table: a header row and rows of strings. `shade` marks cells (row, col) as better/worse."""

    title: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    shade: dict[tuple[int, int], str] = field(default_factory=dict)
    note: str = ""


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def _fmt(value: Any, err: Any = None, digits: int = 3) -> str:
    v = _num(value)
    if not math.isfinite(v):
        return _MISSING
    e = _num(err)
    return f"{v:.{digits}f} ± {e:.{digits}f}" if math.isfinite(e) else f"{v:.{digits}f}"


def _measured(stats: Mapping[str, Any], count: Any) -> dict[str, Any]:
    """`stats` ({"resolution", "resolution_err", …}), emptied when `count` says too few entries went in.

    Without a count (a hand-written summary) the numbers are taken as they are.
    """
    n = _num(count)
    return {} if math.isfinite(n) and n < MIN_ENTRIES else dict(stats)


def _ratio_cell(value: Any, *, lower_is_better: bool) -> tuple[str, str | None]:
    v = _num(value)
    if not math.isfinite(v):
        return _MISSING, None
    better = v < 1 if lower_is_better else v > 1
    return f"{v:.2f}", (_BETTER if better else _WORSE) if v != 1 else None


def _bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}–{hi:g}"


def _jet_section(summary: Mapping[str, Any]) -> Section | None:
    jets = summary.get("jets") or {}
    edges = summary.get("jet_pt_bins") or []
    rows: list[tuple[str, ...]] = []
    shade: dict[tuple[int, int], str] = {}
    samples = style.order_samples([s for s in jets if s != "all"]) + (["all"] if "all" in jets else [])
    for sample in samples:
        entry = jets[sample]
        base, model = entry.get("baseline") or {}, entry.get("mlpf") or {}
        b_incl, m_incl = base.get("inclusive") or {}, model.get("inclusive") or {}
        bins = [
            (
                "inclusive",
                _measured(b_incl, b_incl.get("count")),
                _measured(m_incl, m_incl.get("count")),
                entry.get("inclusive_resolution_ratio_mlpf_over_baseline"),
            )
        ]
        ratios = entry.get("resolution_ratio_mlpf_over_baseline") or []

        def at(values: Any, i: int) -> Any:
            return values[i] if isinstance(values, Sequence) and i < len(values) else None

        for i in range(len(edges) - 1):
            b = {k: at(base.get(k), i) for k in ("resolution", "resolution_err")}
            m = {k: at(model.get(k), i) for k in ("resolution", "resolution_err")}
            b, m = _measured(b, at(base.get("count"), i)), _measured(m, at(model.get("count"), i))
            bins.append((_bin_label(edges[i], edges[i + 1]), b, m, at(ratios, i)))
        for label, b, m, ratio in bins:
            b_ok, m_ok = math.isfinite(_num(b.get("resolution"))), math.isfinite(_num(m.get("resolution")))
            if not (b_ok or m_ok):
                continue
            if not (b_ok and m_ok):
                ratio = None
            text, colour = _ratio_cell(ratio, lower_is_better=True)
            if colour:
                shade[(len(rows), 4)] = colour
            rows.append(
                (
                    style.sample_label(sample) if sample != "all" else "all samples",
                    label,
                    _fmt(b.get("resolution"), b.get("resolution_err")),
                    _fmt(m.get("resolution"), m.get("resolution_err")),
                    text,
                )
            )
    if not rows:
        return None
    return Section(
        "Jet $p_T$ resolution (IQR / median of reco/gen)",
        ("Sample", "Gen-jet $p_T$ [GeV]", "Baseline PF", "MLPF", "MLPF / baseline"),
        rows,
        shade,
        note="inclusive: gen-jet pT above the lowest bin edge; ratio < 1: MLPF jets are better measured",
    )


def _met_section(summary: Mapping[str, Any]) -> Section | None:
    met = summary.get("met") or {}
    rows, shade = [], {}
    samples = style.order_samples([s for s in met if s != "all"]) + (["all"] if "all" in met else [])
    for sample in samples:
        entry = met[sample]
        base, model = (_measured(entry.get(a) or {}, (entry.get(a) or {}).get("count")) for a in ("baseline", "mlpf"))
        measured = math.isfinite(_num(base.get("resolution"))) and math.isfinite(_num(model.get("resolution")))
        ratio = entry.get("resolution_ratio_mlpf_over_baseline") if measured else None
        text, colour = _ratio_cell(ratio, lower_is_better=True)
        if colour:
            shade[(len(rows), 3)] = colour
        rows.append(
            (
                style.sample_label(sample) if sample != "all" else "all samples",
                _fmt(base.get("resolution")),
                _fmt(model.get("resolution")),
                text,
            )
        )
    if not rows:
        return None
    missing = any(_MISSING in row[1:3] for row in rows)
    return Section(
        "$p_T^{miss}$ resolution (IQR / median of reco/gen)",
        ("Sample", "Baseline PF", "MLPF", "MLPF / baseline"),
        rows,
        shade,
        note=f"{_MISSING}: fewer than {MIN_ENTRIES} events with gen MET inside the binned range" if missing else "",
    )


def _classification_section(summary: Mapping[str, Any]) -> Section | None:
    cls = summary.get("classification") or {}
    if not cls:
        return None
    base = _num((cls.get("baseline") or {}).get("accuracy"))
    model = _num((cls.get("mlpf") or {}).get("accuracy"))

    def pct(v: float) -> str:
        return f"{100 * v:.1f} %" if math.isfinite(v) else _MISSING

    text, colour = _ratio_cell(model / base if base else math.nan, lower_is_better=False)
    return Section(
        "Particle classification (element by element, all samples)",
        ("Quantity", "Baseline PF", "MLPF", "MLPF / baseline"),
        [("Accuracy", pct(base), pct(model), text)],
        {(0, 3): colour} if colour else {},
    )


def _rejection(entry: Mapping[str, Any], wp: str) -> str:
    """1/ε_B, with ∞ when no background passed (the JSON stores inf as null next to ε_B = 0)."""
    if (entry.get("background_efficiency") or {}).get(wp) == 0:
        return "∞"
    v = _num((entry.get("rejection") or {}).get(wp))
    return f"{v:.3g}" if math.isfinite(v) else _MISSING


def _tagger_section(tagger: Mapping[str, Any]) -> Section | None:
    vs_qcd = tagger.get("vs_qcd") or {}
    if not vs_qcd:
        return None
    wps = [f"{w:g}" for w in tagger.get("working_points", (0.5, 0.3))]
    ranked = sorted(
        vs_qcd,
        key=lambda c: (
            -_num(vs_qcd[c]["tagger"].get("n_signal"))
            if math.isfinite(_num(vs_qcd[c]["tagger"].get("n_signal")))
            else 0.0
        ),
    )
    shown = ranked[:MAX_TAGGER_ROWS]
    rows, shade = [], {}
    for name in shown:
        t, b = vs_qcd[name]["tagger"], vs_qcd[name]["baseline"]
        t_auc, b_auc = _num(t.get("auc")), _num(b.get("auc"))
        if math.isfinite(t_auc) and math.isfinite(b_auc) and t_auc != b_auc:
            shade[(len(rows), 1)] = _BETTER if t_auc > b_auc else _WORSE
        rows.append(
            (
                name.removeprefix("label_"),
                _fmt(t_auc),
                *(_rejection(t, wp) for wp in wps),
                _fmt(b_auc),
                *(_rejection(b, wp) for wp in wps),
                _fmt(vs_qcd[name].get("sculpting", {}).get("jsd"), digits=3),
            )
        )
    wp_cols = tuple(f"$1/\\varepsilon_B$ @ {float(w):.0%}" for w in wps)
    note = f"{len(ranked) - len(shown)} more signal classes in the summary JSON" if len(ranked) > len(shown) else ""
    return Section(
        "Jet tagging: signal vs. QCD (tagger | $\\tau_{32}$ + $m_{SD}$ baseline)",
        ("Signal class", "AUC", *wp_cols, "AUC (baseline)", *(c + " (baseline)" for c in wp_cols), "QCD mass JSD"),
        rows,
        shade,
        note=note,
    )


def summary_sections(summary: Mapping[str, Any], tagger_summary: Mapping[str, Any] | None = None) -> list[Section]:
    """The headline tables of a PF summary JSON and, when given, a tagger summary JSON (either may be empty)."""
    sections = [_jet_section(summary), _met_section(summary), _classification_section(summary)]
    if tagger_summary:
        sections.append(_tagger_section(tagger_summary))
    return [s for s in sections if s is not None]


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
_ROW_IN = 0.42  # inches per table row
_TITLE_IN = 0.55
_NOTE_IN = 0.35
_GAP_IN = 0.3  # between sections
_CHAR_IN = 0.12  # inches per character of the widest cell of a column, at font size 13


def _column_widths(section: Section) -> list[float]:
    """Column widths in inches from the longest text of each column (mathtext counted as plain text)."""
    rows = (section.header, *section.rows)
    return [_CHAR_IN * (max(len(plain(r[j])) for r in rows) + 3) for j in range(len(section.header))]


def table_figure(sections: Sequence[Section]) -> Figure:
    """All sections stacked in one figure, sized so every row is readable at 100 dpi.

    Cells where the model (or tagger) is better than the baseline are shaded green, worse red.
    """
    if not sections:
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.axis("off")
        ax.text(0.5, 0.5, "no headline numbers", ha="center", va="center", color="0.4", fontsize=20)
        style.experiment_label(ax, fontsize=18)
        return fig
    heights = [_TITLE_IN + _ROW_IN * (len(s.rows) + 1) + (_NOTE_IN if s.note else 0.0) + _GAP_IN for s in sections]
    widths = [_column_widths(s) for s in sections]
    width = max(10.0, max(sum(w) for w in widths))
    fig = plt.figure(figsize=(width, sum(heights) + 0.6))
    top = 1.0 - 0.3 / (sum(heights) + 0.6)
    axes = []
    for section, h, col_w in zip(sections, heights, widths, strict=True):
        frac = h / (sum(heights) + 0.6)
        ax = fig.add_axes((0.0, top - frac, 1.0, frac))
        top -= frac
        axes.append(ax)
        ax.axis("off")
        title_h, rows_h = _TITLE_IN / h, _ROW_IN * (len(section.rows) + 1) / h
        ax.text(0.0, 1.0, section.title, transform=ax.transAxes, ha="left", va="top", fontsize=17, fontweight="bold")
        table_w = sum(col_w) / width
        table = ax.table(
            cellText=[list(r) for r in section.rows],
            colLabels=list(section.header),
            colWidths=[w / width for w in col_w],
            cellLoc="center",
            bbox=(0.0, 1.0 - title_h - rows_h, table_w, rows_h),
        )
        table.auto_set_font_size(False)
        table.set_fontsize(13)
        for (r, c), cell in table.get_celld().items():
            cell.set_edgecolor("0.75")
            if r == 0:
                cell.set_facecolor("#e8e8ee")
                cell.set_text_props(fontweight="bold")
            elif (r - 1, c) in section.shade:
                cell.set_facecolor(section.shade[(r - 1, c)])
        if section.note:
            ax.text(
                0.0,
                1.0 - title_h - rows_h - 0.08 / h,
                section.note,
                transform=ax.transAxes,
                ha="left",
                va="top",
                fontsize=12,
                color="0.35",
                style="italic",
            )
    style.experiment_label(axes[0], fontsize=18)
    axes[0].texts[-1].set_y(1.0 + 0.3 / heights[0])
    fig.text(
        0.0,
        0.0,
        "shaded: model better (green) or worse (red) than the baseline",
        ha="left",
        va="bottom",
        fontsize=12,
        color="0.35",
    )
    return fig


_PLAIN = {
    "$p_T$": "pT",
    "$p_T^{miss}$": "MET",
    "$1/\\varepsilon_B$": "1/eff_B",
    "$\\tau_{32}$": "tau32",
    "$m_{SD}$": "m_SD",
    "$e^+e^- \\to t\\bar{t}$": "e+e− → tt̄",
    "$e^+e^- \\to q\\bar{q}$": "e+e− → qq̄",
    "$e^+e^- \\to W^+W^-$": "e+e− → W+W−",
    "$e^+e^- \\to W^+W^- \\to$ hadrons": "e+e− → W+W− → hadrons",
    "$e^+e^- \\to ZH$": "e+e− → ZH",
}


def plain(text: str) -> str:
    """Mathtext of the figure as plain text for HTML/RST (longest patterns first, so none is cut in two)."""
    for pattern in sorted(_PLAIN, key=len, reverse=True):
        text = text.replace(pattern, _PLAIN[pattern])
    return text.replace("$", "")


def to_html(sections: Sequence[Section]) -> str:
    """The sections as HTML tables (one <table> per section, a <caption> each)."""
    out = []
    for s in sections:
        out.append(f'<table class="summary-table">\n<caption>{html.escape(plain(s.title))}</caption>')
        out.append("<tr>" + "".join(f"<th>{html.escape(plain(h))}</th>" for h in s.header) + "</tr>")
        for i, row in enumerate(s.rows):
            cells = []
            for j, v in enumerate(row):
                colour = s.shade.get((i, j))
                attr = f' style="background:{colour}"' if colour else ""
                cells.append(f"<td{attr}>{html.escape(plain(v))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        if s.note:
            out.append(f'<tr><td colspan="{len(s.header)}"><i>{html.escape(plain(s.note))}</i></td></tr>')
        out.append("</table>")
    return "\n".join(out) + "\n"


def to_rst(sections: Sequence[Section]) -> str:
    """The sections as reStructuredText list-tables (what a Snakemake report caption can include)."""
    out = []
    for s in sections:
        out += [f".. list-table:: {plain(s.title)}", "   :header-rows: 1", ""]
        for row in (s.header, *s.rows):
            cells = [plain(v).replace("*", "\\*") or " " for v in row]
            out.append(f"   * - {cells[0]}")
            out += [f"     - {c}" for c in cells[1:]]
        out.append("")
        if s.note:
            out += [plain(s.note), ""]
    return "\n".join(out)


def write_summary_table(
    summary: Mapping[str, Any],
    plots_dir: Path,
    tagger_summary: Mapping[str, Any] | None = None,
    *,
    figure: bool = True,
) -> dict[str, Path]:
    """Write summary_table.{html,rst} (and, with figure=True, .png/.pdf) into `plots_dir`; returns the paths."""
    plots_dir = Path(plots_dir)
    sections = summary_sections(summary, tagger_summary)
    paths = {"html": plots_dir / "summary_table.html", "rst": plots_dir / "summary_table.rst"}
    write_text_atomic(paths["html"], to_html(sections))
    write_text_atomic(paths["rst"], to_rst(sections))
    if figure:
        with style.figure_style():
            paths["png"] = save_figure(table_figure(sections), plots_dir, "summary_table")
    return paths

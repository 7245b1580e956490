"""The headline table: which numbers it picks, how it shows them, and that every format says the same."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image
import pytest
from docutils.core import publish_parts

from colliderflow.evaluate.pf import summary_table
from colliderflow.evaluate.pf.plots import PF_PLOTS

REPORT = Path(__file__).resolve().parents[1] / "workflow" / "report"


def _pf_summary() -> dict:
    """The parts of an evaluate summary the table reads; one empty pT bin, MLPF better in the first bin."""

    def algo(res: list, err: list, incl: float) -> dict:
        return {"resolution": res, "resolution_err": err, "inclusive": {"resolution": incl, "resolution_err": 0.01}}

    jets = {
        "ttbar": {
            "baseline": algo([0.20, 0.10, None], [0.02, 0.01, None], 0.15),
            "mlpf": algo([0.10, 0.12, None], [0.01, 0.01, None], 0.11),
            "resolution_ratio_mlpf_over_baseline": [0.5, 1.2, None],
            "inclusive_resolution_ratio_mlpf_over_baseline": 0.11 / 0.15,
        }
    }
    jets["all"] = jets["ttbar"]
    met = {
        "ttbar": {
            "baseline": {"resolution": 0.4},
            "mlpf": {"resolution": 0.3},
            "resolution_ratio_mlpf_over_baseline": 0.75,
        }
    }
    return {
        "jet_pt_bins": [10.0, 20.0, 40.0, 60.0],
        "jets": jets,
        "met": met,
        "classification": {"baseline": {"accuracy": 0.9}, "mlpf": {"accuracy": 0.95}},
    }


def _tagger_summary() -> dict:
    def entry(auc: float | None, eb: dict, rej: dict, n: float) -> dict:
        return {"auc": auc, "background_efficiency": eb, "rejection": rej, "n_signal": n}

    return {
        "working_points": [0.5, 0.3],
        "vs_qcd": {
            "X_bb": {
                "tagger": entry(0.97, {"0.5": 0.0, "0.3": 0.0}, {"0.5": None, "0.3": None}, 100.0),
                "baseline": entry(0.9, {"0.5": 0.05, "0.3": 0.02}, {"0.5": 20.0, "0.3": 50.0}, 100.0),
                "sculpting": {"jsd": 0.12},
            },
            "X_qq": {
                "tagger": entry(None, {"0.5": None, "0.3": None}, {"0.5": None, "0.3": None}, 0.0),
                "baseline": entry(None, {"0.5": None, "0.3": None}, {"0.5": None, "0.3": None}, 0.0),
                "sculpting": {"jsd": None},
            },
        },
    }


def test_sections_pick_the_headline_numbers() -> None:
    jets, met, cls = summary_table.summary_sections(_pf_summary())
    assert jets.header[1:] == ("Gen-jet $p_T$ [GeV]", "Baseline PF", "MLPF", "MLPF / baseline")
    # Per sample: inclusive, then the two filled bins; the empty 40–60 bin is left out.
    assert [r[1] for r in jets.rows] == ["inclusive", "10–20", "20–40"] * 2
    assert jets.rows[1][2:] == ("0.200 ± 0.020", "0.100 ± 0.010", "0.50")
    assert jets.rows[0][4] == "0.73"
    assert jets.shade[(1, 4)] == summary_table._BETTER and jets.shade[(2, 4)] == summary_table._WORSE
    assert jets.rows[-1][0] == "all samples"
    assert met.rows == [(r"$e^+e^- \to t\bar{t}$", "0.400", "0.300", "0.75")]
    assert cls.rows == [("Accuracy", "90.0 %", "95.0 %", "1.06")] and cls.shade == {(0, 3): summary_table._BETTER}


def test_resolutions_from_too_few_entries_read_as_a_dash() -> None:
    """A summary whose MET resolution of one event is 0.0 (as metrics wrote before it nulled such bins)
    must not show a perfect resolution: the counts decide, below MIN_ENTRIES the cell is missing."""
    few = summary_table.MIN_ENTRIES - 1
    summary = _pf_summary()
    summary["met"] = {
        "ttbar": {
            "baseline": {"resolution": 0.4, "count": 33},
            "mlpf": {"resolution": 0.3, "count": 33},
            "resolution_ratio_mlpf_over_baseline": 0.75,
        },
        "ww": {
            "baseline": {"resolution": 0.0, "count": 1},
            "mlpf": {"resolution": 0.0, "count": 1},
            "resolution_ratio_mlpf_over_baseline": None,
        },
        "qq": {
            "baseline": {"resolution": 0.65, "count": few},
            "mlpf": {"resolution": 0.74, "count": summary_table.MIN_ENTRIES},
            "resolution_ratio_mlpf_over_baseline": 0.74 / 0.65,
        },
    }
    ttbar = summary["jets"]["ttbar"]
    ttbar["baseline"]["count"] = [40, few, 0]
    ttbar["mlpf"]["count"] = [40, 30, 0]
    ttbar["baseline"]["inclusive"]["count"] = 70
    ttbar["mlpf"]["inclusive"]["count"] = 70
    jets, met, _ = summary_table.summary_sections(summary)
    assert met.rows == [
        (r"$e^+e^- \to t\bar{t}$", "0.400", "0.300", "0.75"),
        (r"$e^+e^- \to q\bar{q}$", "–", "0.740", "–"),
        (r"$e^+e^- \to W^+W^-$", "–", "–", "–"),
    ]
    assert met.shade == {(0, 3): summary_table._BETTER}
    assert met.note.startswith("–: fewer than 5 events")
    # Jets: the 20–40 GeV baseline value stood on too few jets, so its cell and the ratio are missing.
    assert jets.rows[2][1:] == ("20–40", "–", "0.120 ± 0.010", "–")
    assert (2, 4) not in jets.shade
    no_counts = summary_table.summary_sections(_pf_summary())[1]
    assert no_counts.note == ""  # without counts the numbers are taken as they are


def test_tagger_section_shows_infinite_and_missing_rejections() -> None:
    sections = summary_table.summary_sections(_pf_summary(), _tagger_summary())
    tagger = sections[-1]
    assert tagger.rows[0] == ("X_bb", "0.970", "∞", "∞", "0.900", "20", "50", "0.120")
    assert tagger.rows[1] == ("X_qq", "–", "–", "–", "–", "–", "–", "–")
    assert tagger.shade == {(0, 1): summary_table._BETTER}


def test_an_empty_summary_still_gives_a_figure(tmp_path: Path) -> None:
    assert summary_table.summary_sections({}) == []
    paths = summary_table.write_summary_table({}, tmp_path)
    assert matplotlib.image.imread(paths["png"]).shape[0] > 100


def test_text_tables_are_valid_and_agree_with_the_figure(tmp_path: Path) -> None:
    paths = summary_table.write_summary_table(_pf_summary(), tmp_path, _tagger_summary())
    assert set(paths) == {"html", "rst", "png"} and (tmp_path / "summary_table.pdf").is_file()
    image = matplotlib.image.imread(paths["png"])
    assert image.shape[0] > 600 and image.shape[1] > 800
    rst = paths["rst"].read_text()
    # halt_level 2: any docutils warning (a malformed table) fails here rather than in the report.
    body = publish_parts(rst, writer="html", settings_overrides={"halt_level": 2})["body"]
    html = paths["html"].read_text()
    for text in ("0.200 ± 0.020", "e+e− → tt̄", "90.0 %", "∞", "1/eff_B"):
        assert text in body and text in html, text
    assert "$" not in rst and "$" not in html
    assert f'style="background:{summary_table._BETTER}"' in html


def test_summary_table_is_a_declared_figure_with_a_caption() -> None:
    assert "summary_table" in PF_PLOTS
    for name in PF_PLOTS:
        assert (REPORT / f"{name}.rst").is_file(), name
    caption = (REPORT / "summary_table.rst").read_text()
    assert ".. include::" in caption and "snakemake.output.summary_table" in caption


@pytest.mark.parametrize("value", [None, float("nan"), "x"])
def test_missing_numbers_read_as_a_dash(value: object) -> None:
    assert summary_table._fmt(value) == "–"
    assert summary_table._ratio_cell(value, lower_is_better=True) == ("–", None)
    assert math.isnan(summary_table._num(value))

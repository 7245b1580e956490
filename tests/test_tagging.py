"""Tagging metrics against hand-computed and analytic values; the tagger evaluation end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colliderflow.evaluate.tagging import metrics as tagging
from colliderflow.evaluate.tagging import run as tagging_run
from colliderflow.evaluate.pf.plots import plot_loss_curves
from colliderflow.evaluate.tagging.plots import TAGGER_PLOTS
from colliderflow.jetclass2 import JETCLASS2_LABELS

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "jetclass2" / "JetClassII_example.parquet"
REPORT = Path(__file__).resolve().parents[1] / "workflow" / "report"


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# --------------------------------------------------------------------------------------------------
# ROC, AUC, rejection
# --------------------------------------------------------------------------------------------------
def test_roc_points_by_hand() -> None:
    roc = tagging.roc_curve([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0])
    assert roc.eff_sig.tolist() == [0, 0.5, 0.5, 1, 1]
    assert roc.eff_bkg.tolist() == [0, 0, 0.5, 0.5, 1]
    assert roc.thresholds.tolist() == [np.inf, 0.9, 0.8, 0.7, 0.6]
    # Of the 4 signal–background pairs, 3 are ordered right.
    assert tagging.auc(roc.eff_bkg, roc.eff_sig) == pytest.approx(0.75)


def test_ties_count_one_half() -> None:
    assert tagging.roc_auc([1, 1, 1, 1], [1, 0, 1, 0]) == pytest.approx(0.5)
    # Pairs: s=1 vs b=0 wins, s=1 vs b=1 ties (½), s=2 beats both: 3.5 / 4.
    assert tagging.roc_auc([0, 1, 1, 2], [0, 0, 1, 1]) == pytest.approx(0.875)
    # Ties are one ROC point, whatever the order of the jets in the input.
    roc = tagging.roc_curve([1, 1, 1, 0], [0, 1, 0, 1])
    assert roc.eff_sig.tolist() == [0, 0.5, 1] and roc.eff_bkg.tolist() == [0, 1, 1]


def test_perfect_inverted_and_random_classifiers() -> None:
    y = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    s = np.r_[np.linspace(0.6, 1, 50), np.linspace(0, 0.4, 50)]
    perfect = tagging.summarise_roc(tagging.roc_curve(s, y))
    assert perfect["auc"] == 1.0
    assert perfect["background_efficiency"] == {"0.5": 0.0, "0.3": 0.0}
    assert perfect["rejection"]["0.5"] == math.inf
    assert tagging.roc_auc(-s, y) == 0.0
    rng = np.random.default_rng(3)
    assert tagging.roc_auc(rng.random(40_000), rng.random(40_000) < 0.3) == pytest.approx(0.5, abs=0.01)


def test_gaussian_scores_match_the_analytic_auc_and_rejection() -> None:
    rng = np.random.default_rng(5)
    delta, n = 1.0, 40_000
    scores = np.r_[rng.normal(delta, 1, n), rng.normal(0, 1, n)]
    y = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    summary = tagging.summarise_roc(tagging.roc_curve(scores, y))
    assert summary["auc"] == pytest.approx(_phi(delta / math.sqrt(2)), abs=0.006)  # σ(AUC) ≈ 0.002 here
    # At ε_S = 50 % the cut sits at the signal mean: ε_B = 1 − Φ(Δ); at 30 % at Δ + z(0.7).
    assert summary["rejection"]["0.5"] == pytest.approx(1 / (1 - _phi(delta)), rel=0.05)
    assert summary["rejection"]["0.3"] == pytest.approx(1 / (1 - _phi(delta + 0.5244)), rel=0.08)


def test_rejection_interpolates_between_roc_points() -> None:
    eff_sig = np.array([0.0, 0.4, 0.8, 1.0])
    eff_bkg = np.array([0.0, 0.1, 0.3, 1.0])
    eb = tagging.background_efficiency_at(eff_bkg, eff_sig, [0.5, 0.4, 0.0, 1.0])
    np.testing.assert_allclose(eb, [0.15, 0.1, 0.0, 1.0])
    np.testing.assert_allclose(tagging.rejection_at(eff_bkg, eff_sig, [0.5, 0.0]), [1 / 0.15, np.inf])
    # A flat stretch of the curve (background only) is crossed at its lowest ε_B.
    eb = tagging.background_efficiency_at([0, 0.2, 0.6, 1], [0, 0.5, 0.5, 1], [0.5])
    assert eb.tolist() == [0.2]


def test_no_signal_or_no_background_gives_nan() -> None:
    for labels in ([0, 0, 0], [1, 1, 1], []):
        roc = tagging.roc_curve(np.arange(len(labels), dtype=float), labels)
        assert not roc.defined
        summary = tagging.summarise_roc(roc)
        assert math.isnan(summary["auc"]) and math.isnan(summary["rejection"]["0.5"])
    assert math.isnan(tagging.threshold_at_signal_efficiency([], 0.5))


def test_threshold_keeps_the_requested_signal_fraction() -> None:
    assert tagging.threshold_at_signal_efficiency([4, 1, 3, 2], 0.5) == 3
    assert tagging.threshold_at_signal_efficiency([4, 1, 3, 2], 0.3) == 3  # ⌈0.3 · 4⌉ = 2 jets kept: at least 30 %
    assert tagging.threshold_at_signal_efficiency([4, 1, 3, 2], 1.0) == 1


# --------------------------------------------------------------------------------------------------
# Multi-class scores
# --------------------------------------------------------------------------------------------------
def test_one_vs_rest_and_signal_vs_qcd_by_hand() -> None:
    # Classes: 0 = signal A, 1 = signal B, 2 = QCD.
    scores = np.array([[0.7, 0.2, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.5, 0.0, 0.5]])
    labels = np.array([0, 2, 1, 2])
    rocs = tagging.one_vs_rest(scores, labels)
    assert set(rocs) == {0, 1, 2}
    assert tagging.auc(rocs[0].eff_bkg, rocs[0].eff_sig) == 1.0
    disc = tagging.signal_vs_qcd_discriminant(scores, 0, [2])
    np.testing.assert_allclose(disc, [0.7 / 0.8, 0.25, 0.5, 0.5])
    roc, disc, mask = tagging.signal_vs_qcd(scores, labels, 0, [2])
    assert mask.tolist() == [True, True, False, True]  # the B jet is neither signal nor QCD
    assert (roc.n_sig, roc.n_bkg) == (1, 2)
    assert tagging.signal_vs_qcd_discriminant(np.zeros((1, 3)), 0, [2]).tolist() == [0.0]
    with pytest.raises(ValueError, match="QCD"):
        tagging.signal_vs_qcd_discriminant(scores, 0, [])


def test_class_indices_from_names_or_indices() -> None:
    names = ["label_X_bb", "X_qq", "label_QCD_bb", "QCD_light"]
    assert tagging.class_indices(names, None, "QCD") == [2, 3]
    assert tagging.class_indices(names, ["QCD_bb", 3], "QCD") == [2, 3]
    assert tagging.class_indices(names, ["label_X_qq"], "") == [1]
    with pytest.raises(ValueError, match="X_cc"):
        tagging.class_indices(names, ["X_cc"], "")
    with pytest.raises(ValueError, match="outside"):
        tagging.class_indices(names, [7], "")


# --------------------------------------------------------------------------------------------------
# Mass sculpting
# --------------------------------------------------------------------------------------------------
def test_jensen_shannon_by_hand() -> None:
    assert tagging.jensen_shannon([1, 2, 3], [2, 4, 6]) == 0.0
    assert tagging.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    # p = (1, 0), q = (½, ½), m = (¾, ¼): ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2(2)).
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert tagging.jensen_shannon([1, 0], [1, 1]) == pytest.approx(expected)
    assert math.isnan(tagging.jensen_shannon([0, 0], [1, 1]))


def test_mass_sculpting_of_a_mass_cut_and_of_no_cut() -> None:
    mass = np.array([10, 20, 30, 40, 50, 60, 70, 80], dtype=float)
    none = tagging.mass_sculpting(mass, np.ones(8, bool), [0, 40, 80, 120])
    assert none["jsd"] == 0.0 and none["background_efficiency"] == 1.0
    np.testing.assert_allclose(none["density_before"], [3 / 8 / 40, 4 / 8 / 40, 1 / 8 / 40])
    window = tagging.mass_sculpting(mass, mass >= 40, [0, 40, 80, 120])
    assert window["count_after"].tolist() == [0, 4, 1]
    assert window["background_efficiency"] == 0.625 and window["jsd"] > 0.2
    empty = tagging.mass_sculpting(mass, np.zeros(8, bool), [0, 40, 80, 120])
    assert math.isnan(empty["jsd"]) and np.isnan(empty["density_after"]).all()


# --------------------------------------------------------------------------------------------------
# Cut-based baseline
# --------------------------------------------------------------------------------------------------
def test_cut_scan_and_envelope_by_hand() -> None:
    t32 = np.array([0.3, 0.5, 0.4, 0.8])
    mass = np.array([170.0, 175.0, 50.0, 172.0])
    y = np.array([True, True, False, False])
    scan = tagging.cut_scan(t32, mass, y, [0.45, 0.9], [(150, 200), (0, 300)])
    # Window 150–200: signal passes τ32 < 0.45 once, < 0.9 twice; background (0.8, in window) only < 0.9.
    np.testing.assert_allclose(scan["eff_sig"], [[0.5, 1.0], [0.5, 1.0]])
    np.testing.assert_allclose(scan["eff_bkg"], [[0.0, 0.5], [0.5, 1.0]])
    eb, es, idx = tagging.upper_envelope(scan["eff_bkg"], scan["eff_sig"])
    assert eb.tolist() == [0.0, 0.0, 0.5, 1.0] and es.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert idx.tolist() == [-1, 0, 1, -1]
    base = tagging.baseline_roc(t32, mass, y, [0.45, 0.9], [(150, 200), (0, 300)])
    assert base["cuts"][1] == {"tau32_max": 0.45, "mass_window": [150.0, 200.0]}
    # Trapezoids: (0, 0)→(0, ½) none, (0, ½)→(½, 1) ½·¾, (½, 1)→(1, 1) ½·1.
    assert tagging.auc(base["eff_bkg"], base["eff_sig"]) == pytest.approx(0.875)


def test_envelope_keeps_only_undominated_points() -> None:
    eb, es, _ = tagging.upper_envelope(np.array([0.1, 0.2, 0.3, 0.3]), np.array([0.5, 0.4, 0.9, 0.7]))
    assert eb.tolist() == [0.0, 0.1, 0.3, 1.0] and es.tolist() == [0.0, 0.5, 0.9, 1.0]


def test_tau32_and_baseline_without_background() -> None:
    assert np.isnan(tagging.tau32([0.0, 0.5], [0.1, 0.25])).tolist() == [True, False]
    base = tagging.baseline_roc([0.3, 0.4], [170.0, 80.0], [True, True], [0.5], [(0, 300)])
    assert math.isnan(tagging.summarise_curve(base["eff_bkg"], base["eff_sig"])["auc"])


@pytest.mark.skipif(not EXAMPLE.is_file(), reason=f"real JetClass-II example not found at {EXAMPLE}")
def test_baseline_on_the_real_jetclass2_example() -> None:
    table = pq.read_table(EXAMPLE, columns=["jet_label", "jet_sdmass", "jet_tau2", "jet_tau3"])
    labels = table.column("jet_label").to_numpy()
    is_qcd = np.isin(labels, tagging.class_indices(JETCLASS2_LABELS, None, "QCD"))
    t32 = tagging.tau32(table.column("jet_tau2").to_numpy(), table.column("jet_tau3").to_numpy())
    base = tagging.baseline_roc(
        t32,
        table.column("jet_sdmass").to_numpy(),
        ~is_qcd,
        tagging_run.DEFAULT_TAU32_CUTS,
        tagging_run.DEFAULT_MASS_WINDOWS,
    )
    summary = tagging.summarise_curve(base["eff_bkg"], base["eff_sig"])
    assert 0.0 <= summary["auc"] <= 1.0
    assert summary["auc"] > 0.5  # resonance jets are heavier and more multi-pronged than QCD jets
    assert np.all(np.diff(base["eff_bkg"]) >= 0) and np.all(np.diff(base["eff_sig"]) >= 0)


# --------------------------------------------------------------------------------------------------
# evaluate_tagger end to end
# --------------------------------------------------------------------------------------------------
CLASSES = ("X_bb", "X_YY_qqqq", "QCD_bb", "QCD_light")


def make_tagger_predictions(path: Path, *, n: int = 1500, seed: int = 1, separation: float = 1.5) -> Path:
    """Softmax scores with a known separation, signal masses at 125 / 170 GeV, QCD falling, τ32 lower for 4q."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(CLASSES), n, p=[0.2, 0.2, 0.2, 0.4])
    logits = rng.normal(0, 1, (n, len(CLASSES)))
    logits[np.arange(n), labels] += separation
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    mass = np.where(
        labels == 0, rng.normal(125, 10, n), np.where(labels == 1, rng.normal(170, 15, n), rng.exponential(50, n) + 10)
    )
    tau2 = rng.uniform(0.05, 0.3, n)
    t32 = np.clip(np.where(labels == 1, rng.normal(0.45, 0.1, n), rng.normal(0.7, 0.1, n)), 0.05, 1.0)
    columns = {
        "jet_label": pa.array(labels.astype(np.int32)),
        **{f"score_{c}": pa.array(probs[:, i].astype(np.float32)) for i, c in enumerate(CLASSES)},
        "jet_pt": pa.array(rng.uniform(200, 1000, n).astype(np.float32)),
        "jet_eta": pa.array(rng.uniform(-2, 2, n).astype(np.float32)),
        "jet_sdmass": pa.array(mass.astype(np.float32)),
        "jet_tau2": pa.array(tau2.astype(np.float32)),
        "jet_tau3": pa.array((tau2 * t32).astype(np.float32)),
        "sample": pa.array(["hbb" if i % 2 else "qcd" for i in range(n)]),
    }
    pq.write_table(pa.table(columns), path)
    return path


def _training_log(path: Path) -> Path:
    lines = [
        {"step": s, "split": "train", "loss": 2 / (1 + s / 50), "lr": 1e-3, "samples_per_s": 900.0 + s}
        for s in range(0, 200, 10)
    ]
    lines += [{"step": s, "split": "val", "loss": 2.2 / (1 + s / 50), "samples_per_s": 3000.0} for s in (0, 100)]
    lines += [{"step": 120, "split": "event", "event": "preempted", "signal": 15, "checkpoint": "c.pt"},
              {"step": 120, "split": "event", "event": "resumed", "checkpoint": "c.pt"}]  # after a retry
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_evaluate_tagger_writes_every_figure_and_the_summary(tmp_path: Path) -> None:
    preds = make_tagger_predictions(tmp_path / "tagger.parquet")
    result = tagging_run.evaluate_tagger(
        predictions=preds,
        metrics_log=_training_log(tmp_path / "metrics.jsonl"),
        params={},
        summary=tmp_path / "summary.json",
        plots_dir=tmp_path / "plots",
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == result
    assert result["qcd_classes"] == ["QCD_bb", "QCD_light"] and result["signal_classes"] == ["X_bb", "X_YY_qqqq"]
    assert set(result["vs_qcd"]) == {"X_bb", "X_YY_qqqq"}
    for name in CLASSES:
        assert 0.8 < result["one_vs_rest"][name]["auc"] < 1.0
    fourq = result["vs_qcd"]["X_YY_qqqq"]
    assert fourq["baseline"]["auc"] > 0.9  # 170 GeV and τ32 ≈ 0.45 stand out of QCD
    assert fourq["baseline"]["working_point_cuts"]["0.5"]["eff_sig"] >= 0.5
    assert 0.0 <= fourq["sculpting"]["jsd"] <= 1.0 and fourq["sculpting"]["signal_efficiency"] == 0.5
    assert result["plots"] == list(TAGGER_PLOTS)
    for name in TAGGER_PLOTS:
        png = tmp_path / "plots" / f"{name}.png"
        assert matplotlib.image.imread(png).shape[0] > 400, name
        assert (tmp_path / "plots" / f"{name}.pdf").read_bytes()[:4] == b"%PDF", name


@pytest.fixture
def no_tagger_figures(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(tagging_run, "make_tagger_plots", lambda inputs, plots_dir: calls.append(dict(inputs)) or {})
    return calls


def test_perfect_tagger_and_unlabelled_jets(tmp_path: Path, no_tagger_figures: list[dict]) -> None:
    preds = make_tagger_predictions(tmp_path / "p.parquet", separation=100.0)
    table = pq.read_table(preds)
    labels = table.column("jet_label").to_numpy().copy()
    labels[:7] = -1
    table = table.set_column(0, "jet_label", pa.array(labels))
    pq.write_table(table, tmp_path / "q.parquet")
    result = tagging_run.evaluate_tagger(
        predictions=tmp_path / "q.parquet",
        metrics_log=None,
        params={"qcd_classes": [2, "QCD_light"]},
        summary=tmp_path / "s.json",
        plots_dir=tmp_path / "plots",
    )
    assert result["n_jets_unlabelled"] == 7 and result["n_jets"] == 1500 - 7
    tagger = result["vs_qcd"]["X_bb"]["tagger"]
    assert tagger["auc"] == 1.0
    assert tagger["background_efficiency"]["0.5"] == 0.0 and tagger["rejection"]["0.5"] is None  # inf in JSON
    assert sorted(no_tagger_figures[0]["plot_classes"]) == [0, 1]


def test_a_signal_class_without_jets_gives_nulls(tmp_path: Path, no_tagger_figures: list[dict]) -> None:
    preds = make_tagger_predictions(tmp_path / "p.parquet", n=300)
    table = pq.read_table(preds)
    labels = table.column("jet_label").to_numpy().copy()
    labels[labels == 0] = 3  # no X_bb jets left
    pq.write_table(table.set_column(0, "jet_label", pa.array(labels)), tmp_path / "q.parquet")
    result = tagging_run.evaluate_tagger(
        predictions=tmp_path / "q.parquet",
        metrics_log=None,
        params={},
        summary=tmp_path / "s.json",
        plots_dir=tmp_path / "plots",
    )
    xbb = result["vs_qcd"]["X_bb"]
    assert xbb["tagger"]["auc"] is None and xbb["baseline"]["auc"] is None and xbb["sculpting"]["jsd"] is None
    assert result["one_vs_rest"]["X_bb"]["auc"] is None
    assert no_tagger_figures[0]["plot_classes"] == [1]  # a class without jets is not drawn


def test_contract_violations_are_named(tmp_path: Path) -> None:
    preds = make_tagger_predictions(tmp_path / "p.parquet", n=50)
    table = pq.read_table(preds)
    kwargs = {"metrics_log": None, "params": {}, "summary": tmp_path / "s.json", "plots_dir": tmp_path}
    pq.write_table(table.drop_columns(["jet_sdmass"]), tmp_path / "nomass.parquet")
    with pytest.raises(ValueError, match=r"nomass\.parquet.*jet_sdmass"):
        tagging_run.evaluate_tagger(predictions=tmp_path / "nomass.parquet", **kwargs)
    pq.write_table(table.drop_columns([f"score_{c}" for c in CLASSES[1:]]), tmp_path / "onescore.parquet")
    with pytest.raises(ValueError, match="at least two classes"):
        tagging_run.evaluate_tagger(predictions=tmp_path / "onescore.parquet", **kwargs)
    with pytest.raises(ValueError, match="no QCD class"):
        tagging_run.evaluate_tagger(predictions=preds, **{**kwargs, "params": {"qcd_classes": []}})
    with pytest.raises(ValueError, match="does not exist"):
        tagging_run.evaluate_tagger(predictions=tmp_path / "absent.parquet", **kwargs)
    assert not (tmp_path / "s.json").exists()


def test_every_tagger_figure_has_a_caption() -> None:
    for name in TAGGER_PLOTS:
        assert (REPORT / f"tagging_{name}.rst").read_text().strip(), name


# --------------------------------------------------------------------------------------------------
# Training figure (shared by the particle-flow and tagger evaluations)
# --------------------------------------------------------------------------------------------------
def test_loss_curves_show_loss_learning_rate_and_throughput(tmp_path: Path) -> None:
    from colliderflow.evaluate.records import read_training_log

    fig = plot_loss_curves({"training_log": read_training_log(_training_log(tmp_path / "m.jsonl"))})
    loss_ax, lr_ax, rate_ax = fig.axes
    assert rate_ax.get_ylabel().startswith("Throughput") and "samples/s" in rate_ax.get_ylabel()
    # Throughput: one line per split (train, val: the resume's "event" lines are none); training values as logged.
    assert len(rate_ax.get_lines()) == 2
    assert rate_ax.get_lines()[0].get_ydata()[0] == 900.0
    assert len(loss_ax.get_lines()) == 2 and len(lr_ax.get_lines()) == 1

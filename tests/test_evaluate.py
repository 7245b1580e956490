"""The evaluate stage end to end on a small synthetic predictions file built here."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import matplotlib.image
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import colliderflow.evaluate.pf.run as run_module
from colliderflow.evaluate.pf import summary_table
from colliderflow.evaluate.pf.plots import PF_PLOTS
from colliderflow.evaluate.pf.run import evaluate
from colliderflow.evaluate.records import read_training_log
from colliderflow.kinematics import cluster_jets, jets_to_block
from colliderflow.schema import CLASS_NAMES, PREDICTION_COLUMNS

PARAMS = {"jet_pt_bins": [10, 20, 40, 60, 80, 100, 200], "jet_match_dr": 0.1}
_N_JETS = {"ttbar": 6, "qq": 2, "ww": 4}
_CLASS_P = np.array([0.0, 0.6, 0.1, 0.25, 0.03, 0.02])


def _event(rng: np.random.Generator, n_jets: int) -> tuple[np.ndarray, np.ndarray]:
    """Target particles (one per element, some elements empty) and 'lost' particles reaching no element.

    Particles are sprayed around a few jet axes so that jets form; the lost ones make gen jets differ
    from target jets, as undetected neutrals do.
    """
    rows, lost = [], []
    for _ in range(n_jets):
        eta0, phi0, e_jet = rng.uniform(-2, 2), rng.uniform(-np.pi, np.pi), rng.uniform(15, 120)
        n = int(rng.integers(5, 15))
        pt = e_jet / np.cosh(eta0) * rng.dirichlet(np.ones(n))
        eta = eta0 + rng.normal(0, 0.05, n)
        phi = phi0 + rng.normal(0, 0.05, n)
        cls = rng.choice(len(_CLASS_P), size=n, p=_CLASS_P)
        charge = np.where((cls == 1) | (cls >= 4), rng.choice([-1.0, 1.0], n), 0.0)
        block = np.stack([cls, charge, pt, eta, np.sin(phi), np.cos(phi), pt * np.cosh(eta), np.zeros(n)], axis=1)
        is_lost = rng.random(n) < 0.05
        rows.append(block[~is_lost])
        lost.append(block[is_lost])
    n_empty = int(rng.integers(3, 10))
    rows.append(np.zeros((n_empty, 8)))
    target = np.concatenate(rows)[rng.permutation(sum(len(r) for r in rows))]
    return target.astype(np.float32), np.concatenate(lost).astype(np.float32)


def _smear(rng: np.random.Generator, block: np.ndarray, sigma: float, p_flip: float) -> np.ndarray:
    """A reconstruction: pT/E scaled by (1 + N(0, sigma)) and a fraction of classes swapped."""
    out = block.copy()
    has = out[:, 0] != 0
    scale = np.clip(1 + rng.normal(0, sigma, len(out)), 0.1, None)
    out[has, 2] *= scale[has]
    out[has, 6] *= scale[has]
    flip = has & (rng.random(len(out)) < p_flip)
    out[flip, 0] = rng.integers(1, len(CLASS_NAMES), int(flip.sum()))
    return out


def make_predictions(path: Path, *, n_per_sample: int = 12, seed: int = 1, exact: bool = False) -> Path:
    """Synthetic predictions Parquet; with exact=True the baseline and MLPF equal the target."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {c: [] for c in PREDICTION_COLUMNS}
    gen_particles = []
    for sample, n_jets in _N_JETS.items():
        for i in range(n_per_sample):
            target, lost = _event(rng, n_jets)
            rows["event_id"].append(i)
            rows["sample"].append(sample)
            rows["ytarget"].append(target)
            rows["ycand"].append(target if exact else _smear(rng, target, 0.15, 0.10))
            rows["ypred"].append(target if exact else _smear(rng, target, 0.07, 0.03))
            gen = np.concatenate([target[target[:, 0] != 0], lost])
            gen_particles.append(gen)
    gen = ak.Array([g.tolist() for g in gen_particles])
    particles = ak.zip(
        {"pt": gen[:, :, 2], "eta": gen[:, :, 3], "phi": np.arctan2(gen[:, :, 4], gen[:, :, 5]), "energy": gen[:, :, 6]}
    )
    rows["genjets"] = ak.to_list(jets_to_block(cluster_jets(particles)))
    px = ak.sum(particles.pt * np.cos(particles.phi), axis=1)
    py = ak.sum(particles.pt * np.sin(particles.phi), axis=1)
    rows["genmet"] = np.hypot(ak.to_numpy(px), ak.to_numpy(py)).astype(np.float32)
    for c in ("ytarget", "ycand", "ypred"):
        rows[c] = [r.tolist() for r in rows[c]]
    ak.to_parquet(ak.Array(rows), path)
    return path


def _write_log(path: Path) -> Path:
    lines = []
    for step in range(0, 300, 10):
        lines.append(
            {
                "step": step,
                "split": "train",
                "loss": 3 * np.exp(-step / 100) + 0.5,
                "loss_cls": 1.0,
                "loss_charge": 0.2,
                "loss_reg": 0.8,
                "lr": 1e-3 * min(1, step / 50),
                "elapsed_s": step,
            }
        )
        if step % 100 == 0:
            lines.append({"step": step, "split": "val", "loss": 3 * np.exp(-step / 100) + 0.7, "loss_cls": 1.1})
        if step == 150:  # what training writes when it is pre-empted and when the retry resumes
            lines.append({"step": step, "split": "event", "event": "preempted", "signal": 15, "checkpoint": "c.pt"})
            lines.append({"step": step, "split": "event", "event": "resumed", "checkpoint": "c.pt"})
    path.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"step": 30')  # truncated last line
    return path


def _assert_pngs(plots_dir: Path) -> None:
    for name in PF_PLOTS:
        png = plots_dir / f"{name}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert len(data) > 20_000, (name, len(data))
        image = matplotlib.image.imread(png)
        assert image.shape[0] > 400 and image.shape[1] > 600, (name, image.shape)
        assert (plots_dir / f"{name}.pdf").read_bytes()[:4] == b"%PDF", name


@pytest.fixture(scope="module")
def exact_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    tmp = tmp_path_factory.mktemp("exact")
    preds = make_predictions(tmp / "predictions.parquet", exact=True)
    out = evaluate(
        predictions=preds,
        metrics_log=_write_log(tmp / "metrics.jsonl"),
        params=PARAMS,
        summary=tmp / "summary.json",
        plots_dir=tmp / "plots",
    )
    return out, tmp / "summary.json", tmp / "plots"


def test_every_figure_is_a_real_png(exact_run: tuple[dict, Path, Path]) -> None:
    _assert_pngs(exact_run[2])


def test_summary_of_perfect_reconstruction(exact_run: tuple[dict, Path, Path]) -> None:
    result, summary_path, _ = exact_run
    assert json.loads(summary_path.read_text()) == result
    assert result["n_events"] == 36
    assert result["n_events_per_sample"] == {"ttbar": 12, "qq": 12, "ww": 12}
    assert set(result["jets"]) == {"ttbar", "qq", "ww", "all"}
    for sample in ("ttbar", "qq", "ww", "all"):
        jets = result["jets"][sample]
        # Baseline and MLPF are the target: same jets, same responses, resolution ratio 1.
        assert jets["mlpf"]["response"] == jets["target"]["response"] == jets["baseline"]["response"]
        filled = [r for r in jets["resolution_ratio_mlpf_over_baseline"] if r is not None]
        assert filled and all(r == pytest.approx(1.0) for r in filled)
        assert len(jets["mlpf"]["response"]) == len(PARAMS["jet_pt_bins"]) - 1
    # Target jets lose ~5% of the particles: a response just below 1.
    assert 0.85 < result["jets"]["all"]["target"]["inclusive"]["response"] <= 1.0
    for algo in ("baseline", "mlpf"):
        cls = result["classification"][algo]
        assert cls["accuracy"] == 1.0
        for name in CLASS_NAMES[1:4]:
            assert cls["per_class"][name]["efficiency"] == 1.0
            assert cls["per_class"][name]["fake_rate"] == 0.0
            assert cls["per_class"][name]["pt_response"] == 1.0
            assert cls["per_class"][name]["pt_resolution"] == 0.0
        assert result["met"]["all"][algo]["delta_median_gev"] == pytest.approx(
            result["met"]["all"]["target"]["delta_median_gev"]
        )
    norm = np.array(result["confusion_matrix"]["mlpf"]["normalised"], dtype=float)
    assert np.allclose(np.diag(norm), 1.0)


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Skip drawing (seconds per figure) in tests about numbers; record what would have been drawn."""
    calls: list[dict] = []
    monkeypatch.setattr(run_module, "make_plots", lambda inputs, plots_dir: calls.append(dict(inputs)) or {})
    return calls


def test_smeared_reconstruction(tmp_path: Path, no_figures: list[dict]) -> None:
    preds = make_predictions(tmp_path / "p.parquet", n_per_sample=15, seed=3)
    result = evaluate(
        predictions=preds, metrics_log=None, params=PARAMS, summary=tmp_path / "s.json", plots_dir=tmp_path / "plots"
    )
    assert len(no_figures) == 1 and no_figures[0]["training_log"] is None
    assert set(no_figures[0]["jets"]) == {"ttbar", "qq", "ww"}
    jets = result["jets"]["all"]
    assert 0.85 < jets["mlpf"]["inclusive"]["response"] < 1.1
    # Baseline is smeared twice as much per particle as MLPF: its jets are worse.
    assert jets["mlpf"]["inclusive"]["resolution"] < jets["baseline"]["inclusive"]["resolution"]
    assert jets["inclusive_resolution_ratio_mlpf_over_baseline"] < 1.0
    assert 0.9 < result["classification"]["mlpf"]["accuracy"] < 1.0
    assert result["classification"]["baseline"]["accuracy"] < result["classification"]["mlpf"]["accuracy"]
    pt_res = result["classification"]["mlpf"]["per_class"]["charged_hadron"]["pt_resolution"]
    assert pt_res == pytest.approx(2 * 0.6745 * 0.07, rel=0.25)  # IQR of N(1, 0.07)


def test_fixed_size_list_columns_are_read(tmp_path: Path, no_figures: list[dict]) -> None:
    """A writer may store rows as fixed-size lists of 8 floats rather than variable lists."""
    src = pq.read_table(make_predictions(tmp_path / "var.parquet", n_per_sample=3, exact=True))
    columns = {}
    for name in src.column_names:
        col = src.column(name).combine_chunks()
        if name in ("ytarget", "ycand", "ypred", "genjets"):
            width = 8 if name != "genjets" else 4
            inner = pa.FixedSizeListArray.from_arrays(pa.array(col.values.values.to_numpy(), pa.float32()), width)
            col = pa.ListArray.from_arrays(col.offsets, inner)
        columns[name] = col
    pq.write_table(pa.table(columns), tmp_path / "fixed.parquet")
    result = evaluate(
        predictions=tmp_path / "fixed.parquet",
        metrics_log=None,
        params=PARAMS,
        summary=tmp_path / "s.json",
        plots_dir=tmp_path / "plots",
    )
    assert result["n_events"] == 9
    assert result["classification"]["mlpf"]["accuracy"] == 1.0


def test_met_of_a_sample_with_too_few_events_in_range_reads_missing(tmp_path: Path, no_figures: list[dict]) -> None:
    """A fully hadronic sample has almost no genuine MET: one event inside the MET bins must not give a
    resolution of 0 (the IQR of one value) in the summary, the table or the figure inputs."""
    table = pq.read_table(make_predictions(tmp_path / "p.parquet", n_per_sample=12, seed=4))
    samples = table.column("sample").to_pylist()
    genmet = table.column("genmet").to_numpy().copy()
    ww = np.flatnonzero(np.array(samples) == "ww")
    genmet[ww] = 0.2  # below the first MET edge (1 GeV)
    genmet[ww[0]] = 7.0  # the one event inside
    table = table.set_column(table.schema.get_field_index("genmet"), "genmet", pa.array(genmet.astype(np.float32)))
    pq.write_table(table, tmp_path / "ww.parquet")
    result = evaluate(
        predictions=tmp_path / "ww.parquet",
        metrics_log=None,
        params=PARAMS,
        summary=tmp_path / "s.json",
        plots_dir=tmp_path / "plots",
    )
    met = result["met"]
    for algo in ("target", "baseline", "mlpf"):
        assert met["ww"][algo]["count"] == 1
        assert met["ww"][algo]["resolution"] is None and met["ww"][algo]["response"] is None
        assert sum(met["ww"][algo]["vs_genmet"]["count"]) == 1
        assert all(v is None for v in met["ww"][algo]["vs_genmet"]["resolution"])
        assert met["ttbar"][algo]["count"] >= 5 and met["ttbar"][algo]["resolution"] > 0
    assert met["ww"]["resolution_ratio_mlpf_over_baseline"] is None
    rows = {row[0]: row for row in summary_table.summary_sections(result)[1].rows}
    assert rows[r"$e^+e^- \to W^+W^-$"][1:] == ("–", "–", "–")
    assert rows[r"$e^+e^- \to t\bar{t}$"][1] != "–"


def test_a_model_that_predicts_nothing_still_gets_every_figure(tmp_path: Path) -> None:
    table = pq.read_table(make_predictions(tmp_path / "p.parquet", n_per_sample=4, seed=2))
    ypred = [[[0.0] * 8 for _ in event] for event in table.column("ypred").to_pylist()]
    table = table.set_column(table.schema.get_field_index("ypred"), "ypred", pa.array(ypred))
    pq.write_table(table, tmp_path / "nothing.parquet")
    result = evaluate(
        predictions=tmp_path / "nothing.parquet",
        metrics_log=tmp_path / "absent.jsonl",
        params=PARAMS,
        summary=tmp_path / "s.json",
        plots_dir=tmp_path / "plots",
    )
    _assert_pngs(tmp_path / "plots")
    mlpf = result["jets"]["all"]["mlpf"]
    assert mlpf["n_matched"] == 0 and all(r is None for r in mlpf["response"])
    assert result["jets"]["all"]["resolution_ratio_mlpf_over_baseline"] == [None] * 6
    assert all(m == 0.0 for m in result["met"]["all"]["mlpf"]["vs_genmet"]["response"] if m is not None)
    cls = result["classification"]["mlpf"]
    assert cls["per_class"]["charged_hadron"]["efficiency"] == 0.0
    assert cls["per_class"]["charged_hadron"]["fake_rate"] is None  # nothing predicted: undefined, not 0


def test_missing_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "nope.parquet"
    with pytest.raises(ValueError, match="nope.parquet"):
        evaluate(predictions=bad, metrics_log=None, params=PARAMS, summary=tmp_path / "s.json", plots_dir=tmp_path)
    assert not (tmp_path / "s.json").exists()


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="corrupt.parquet"):
        evaluate(predictions=bad, metrics_log=None, params=PARAMS, summary=tmp_path / "s.json", plots_dir=tmp_path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    table = pq.read_table(make_predictions(tmp_path / "full.parquet", n_per_sample=2, exact=True))
    pq.write_table(table.drop_columns(["ypred"]), tmp_path / "nopred.parquet")
    with pytest.raises(ValueError, match=r"nopred\.parquet.*ypred"):
        evaluate(
            predictions=tmp_path / "nopred.parquet",
            metrics_log=None,
            params=PARAMS,
            summary=tmp_path / "s.json",
            plots_dir=tmp_path,
        )


def test_training_log_is_read_tolerantly(tmp_path: Path) -> None:
    log = read_training_log(_write_log(tmp_path / "metrics.jsonl"))
    assert log is not None and set(log) == {"train", "val"}  # the "event" lines are not a split
    assert log["train"]["step"].tolist() == list(range(0, 300, 10))
    assert log["val"]["step"].tolist() == [0, 100, 200]
    assert np.isnan(log["val"]["loss_reg"]).all()  # key absent in val lines
    assert read_training_log(tmp_path / "absent.jsonl") is None
    assert read_training_log(None) is None

"""No NaN passes evaluation silently: the CLI fails naming the column and the count, or drops explicitly.

Probes: NaN predicted momenta (once moved the jet response from 0.99 to 0.80 with exit 0), NaN genmet
(once dropped events from the MET bins without a word), NaN tagger scores (once left 25 % of the jets out of
the ROC while n_jets still counted them), NaN class ids (once reported as "outside [0, 6)").
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from event_tables import make_events
from test_evaluate import make_predictions
from test_tagging import make_tagger_predictions

from colliderflow.cli import main as cli_main
from colliderflow.io.parquet import read_table, write_parquet_atomic
from colliderflow.schema import PF

N_EVENTS = 3 * 4  # make_predictions: three samples × n_per_sample


def _spoil_block(src: Path, dst: Path, column: str, feature: str, events: list[int]) -> Path:
    """A copy of a predictions file with `feature` of the first element of `events` set to NaN."""
    rows = pq.read_table(src).to_pylist()
    for i in events:
        rows[i][column][0][PF[feature]] = float("nan")
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(src)), dst)
    return dst


def _evaluate(tmp_path: Path, predictions: Path, *extra: str) -> int:
    return cli_main(["evaluate", "--predictions", str(predictions), "--summary", str(tmp_path / "out" / "s.json"),
                     "--plots-dir", str(tmp_path / "out" / "plots"),
                     "--params", json.dumps({"jet_pt_bins": [10, 20, 40, 80, 200], "jet_match_dr": 0.1}), *extra])


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_predictions(tmp_path_factory.mktemp("pred") / "predictions.parquet", n_per_sample=4)


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_nan_momenta_fail_naming_column_and_count(tmp_path, predictions, caplog):
    bad = _spoil_block(predictions, tmp_path / "nan_pt.parquet", "ypred", "pt", [0, 5, 7])
    assert _evaluate(tmp_path, bad) == 2
    (line,) = _error_lines(caplog)
    assert line.startswith(f"{bad}: non-finite values (NaN/inf/null) in 3 of {N_EVENTS} events: ypred.pt 3;"), line
    assert "--allow-nonfinite" in line
    assert not (tmp_path / "out").exists()


def test_nan_genmet_fails(tmp_path, predictions, caplog):
    table = pq.read_table(predictions)
    genmet = table.column("genmet").to_numpy().copy()
    genmet[[1, 2]] = np.nan
    bad = tmp_path / "nan_met.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("genmet"), "genmet", pa.array(genmet)), bad)
    assert _evaluate(tmp_path, bad) == 2
    assert "in 2 of 12 events: genmet 2;" in _error_lines(caplog)[0]


def test_nan_class_ids_are_called_nan(tmp_path, predictions, caplog):
    bad = _spoil_block(predictions, tmp_path / "nan_cls.parquet", "ypred", "cls_id", [3])
    assert _evaluate(tmp_path, bad) == 2
    (line,) = _error_lines(caplog)
    assert "ypred.cls_id 1" in line and "outside" not in line, line


def test_allow_nonfinite_drops_the_events_and_says_so(tmp_path, predictions, monkeypatch):
    import colliderflow.evaluate.pf.run as run_module

    monkeypatch.setattr(run_module, "make_plots", lambda inputs, plots_dir: None)  # the figures are not the point
    bad = _spoil_block(predictions, tmp_path / "nan_pt.parquet", "ypred", "pt", [0, 5, 7])
    assert _evaluate(tmp_path, bad, "--allow-nonfinite") == 0
    summary = json.loads((tmp_path / "out" / "s.json").read_text())
    assert summary["dropped_nonfinite"] == {"events": 3, "values": {"ypred.pt": 3}}
    assert summary["n_events"] == N_EVENTS - 3
    clean = run_module.evaluate(predictions=predictions, metrics_log=None, summary=tmp_path / "clean.json",
                                plots_dir=tmp_path / "clean", params={"jet_pt_bins": [10, 20, 40, 80, 200]})
    assert clean["dropped_nonfinite"] == {"events": 0, "values": {}}


def _evaluate_tagger(tmp_path: Path, predictions: Path, *extra: str) -> int:
    return cli_main(["evaluate-tagger", "--predictions", str(predictions), "--summary", str(tmp_path / "t" / "s.json"),
                     "--plots-dir", str(tmp_path / "t" / "plots"), *extra])


def test_nan_tagger_scores_fail_or_are_dropped_and_counted(tmp_path, caplog, monkeypatch):
    import colliderflow.evaluate.tagging.run as tagging_run

    monkeypatch.setattr(tagging_run, "make_tagger_plots", lambda inputs, plots_dir: None)
    good = make_tagger_predictions(tmp_path / "p.parquet", n=400)
    table = pq.read_table(good)
    score = table.column("score_X_bb").to_numpy().copy()
    score[:100] = np.nan  # a quarter of the jets, as in the probe
    bad = tmp_path / "nan_scores.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("score_X_bb"), "score_X_bb", pa.array(score)), bad)
    assert _evaluate_tagger(tmp_path, bad) == 2
    (line,) = _error_lines(caplog)
    assert line.startswith(f"{bad}: non-finite values (NaN/inf/null) in 100 of 400 jets: score_X_bb 100;"), line
    assert not (tmp_path / "t").exists()

    assert _evaluate_tagger(tmp_path, bad, "--allow-nonfinite") == 0
    summary = json.loads((tmp_path / "t" / "s.json").read_text())
    assert summary["n_jets"] == 300
    assert summary["dropped_nonfinite"] == {"jets": 100, "values": {"score_X_bb": 100}}


def test_null_tagger_labels_are_named(tmp_path, caplog):
    good = make_tagger_predictions(tmp_path / "p.parquet", n=200)
    table = pq.read_table(good)
    labels = table.column("jet_label").to_pylist()
    labels[4] = None
    bad = tmp_path / "null_label.parquet"
    pq.write_table(table.set_column(0, "jet_label", pa.array(labels, pa.int32())), bad)
    assert _evaluate_tagger(tmp_path, bad) == 2
    assert "in 1 of 200 jets: jet_label 1;" in _error_lines(caplog)[0]


def test_weights_refuse_a_nan_reweighting_variable(tmp_path, caplog):
    """A NaN genmet would silently get weight 0; the weights stage names the column and the count."""
    shard = tmp_path / "s.parquet"
    write_parquet_atomic(make_events(40, sample="qq", seed=1), shard)
    table = read_table(shard)
    genmet = table.column("genmet").to_numpy().copy()
    train = np.flatnonzero(np.asarray(table.column("split").to_pylist()) == "train")
    genmet[train[:2]] = np.nan
    bad = tmp_path / "bad.parquet"
    write_parquet_atomic(table.set_column(table.schema.get_field_index("genmet"), "genmet", pa.array(genmet)), bad)
    params = {"method": "flat", "class_column": "sample", "vars": {"n_elements": [0, 50, 100], "genmet": [0, 50, 400]},
              "class_weights": {"qq": 1.0}, "threshold": 0.1, "discard_under_overflow": False}
    code = cli_main(["weights", str(bad), "--params", json.dumps(params), "-o", str(tmp_path / "w" / "w.parquet"),
                     "--histograms", str(tmp_path / "w" / "h.json"), "--plot", str(tmp_path / "w" / "p.png")])
    assert code == 2
    assert "events: genmet 2" in _error_lines(caplog)[0]
    assert not (tmp_path / "w").exists()

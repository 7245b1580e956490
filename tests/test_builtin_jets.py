"""Jets from the builtin simulation of pp → tt̄ (hadronic), the ntuplize-jets command and the weaver config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from colliderflow.cli import main
from colliderflow.generate.detector import detector_rng, simulate_detector
from colliderflow.generate.geometry import detector_config
from colliderflow.generate.pythia import PythiaGenerator
from colliderflow.generate.rootio import SimTreeWriter
from colliderflow.generate.run import collections, event_columns
from colliderflow.jetschema import COLUMNS_BY_NAME, schema_differences
from colliderflow.ntuplize.builtin_jets import ntuplize_builtin_jets
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.weights.weaver_config import weaver_data_config, write_weaver_config

N_EVENTS = 16
TOP_PARAMS = {"min_pt": 200, "res_x_pdgids": [6], "res_y_pdgids": [24]}


def write_sim(path: Path, *, with_hard: bool) -> Path:
    """A small pp → tt̄ builtin file, written as the generate stage does, plus the hard_* record if asked."""
    gen, hard = PythiaGenerator("pp_ttbar_had", sqrt_s=14000.0, seed=7, options={"mpi": False}).generate_with_hard(
        N_EVENTS
    )
    response = simulate_detector(gen, detector_config("clic_like"), detector_rng(7))
    batch = [*collections(gen, response), *([hard] if with_hard else [])]
    with SimTreeWriter(path, identity={"test": str(path)}) as writer:
        writer.append(event_columns(gen, first_event=0), batch)
    return path


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sim(tmp_path_factory.mktemp("pp") / "ttbar.root", with_hard=True)


def test_top_jets_have_the_top_mass(sim: Path, tmp_path: Path) -> None:
    out = tmp_path / "jets.parquet"
    stats = ntuplize_builtin_jets([sim], output=out, params=TOP_PARAMS, provenance=tmp_path / "prov.json")
    table = pq.read_table(out)
    assert schema_differences(table.schema) == []
    assert stats["events"] == N_EVENTS and stats["jets_written"] == table.num_rows > 0
    assert stats["files_with_label_truth"] == [str(sim)]
    pt = table.column("jet_pt").to_numpy()
    assert np.all(pt >= 200) and np.all(np.abs(table.column("jet_eta").to_numpy()) <= 2.5)
    names = np.array(JETCLASS2_LABELS)[table.column("jet_label").to_numpy()]
    top = np.char.startswith(names.astype(str), "label_X_YY_")
    assert top.sum() >= 5  # boosted hadronic tops: t → b W(→ q q')
    assert 130 < np.median(table.column("jet_sdmass").to_numpy()[top]) < 210
    charged = np.concatenate(table.column("part_charge").to_numpy(zero_copy_only=False))
    assert np.any(charged != 0) and np.any(charged == 0)
    assert json.loads((tmp_path / "prov.json").read_text())["stats"]["jets_written"] == table.num_rows


def test_without_hard_record_no_label_is_invented(tmp_path: Path) -> None:
    sim = write_sim(tmp_path / "plain.root", with_hard=False)
    out = tmp_path / "jets.parquet"
    stats = ntuplize_builtin_jets([sim], output=out, params=TOP_PARAMS, provenance=None)
    table = pq.read_table(out)
    assert stats["files_without_label_truth"] == [str(sim)] and table.num_rows > 0
    assert np.all(table.column("jet_label").to_numpy() == -1)
    assert np.any(table.column("genjet_nparticles").to_numpy() > 0)


def test_cli_detects_builtin_input_and_rejects_bad_files(sim: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.parquet"
    assert main(["ntuplize-jets", str(sim), "-o", str(out), "--params", json.dumps(TOP_PARAMS)]) == 0
    assert schema_differences(pq.read_schema(out)) == []
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"not root")
    assert main(["ntuplize-jets", str(bad), "-o", str(tmp_path / "x.parquet")]) == 2
    assert not (tmp_path / "x.parquet").exists()


def test_bad_params_name_the_problem(sim: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        ntuplize_builtin_jets([sim], output=tmp_path / "j.parquet", params={"min_ptt": 1}, provenance=None)
    with pytest.raises(ValueError, match="bfield_tesla"):
        ntuplize_builtin_jets([sim], output=tmp_path / "j.parquet", params={"bfield_tesla": 0}, provenance=None)


WEIGHTS = {
    "method": "flat",
    "class_column": "jet_label",
    "vars": {"jet_pt": [200, 300, 500, 1000], "jet_sdmass": [0, 50, 100, 200, 300]},
    "class_weights": {"X_YY_qqb": 1.0, "X_bb": 2.0, "QCD_light": 0.5},
    "threshold": 0.15,
    "discard_under_overflow": True,
}


def test_weaver_config_names_only_jetclass2_variables(tmp_path: Path) -> None:
    path = tmp_path / "data.yaml"
    write_weaver_config(path, params={**WEIGHTS, "labels": ["X_bb", "X_YY_qqb", "QCD_light"]})
    config = yaml.safe_load(path.read_text())
    new = config["new_variables"]
    named = [v[0] for block in config["inputs"].values() for v in block["vars"]]
    named += config["observers"] + config["labels"]["value"] + list(config["weights"]["reweight_vars"])
    assert all(n in COLUMNS_BY_NAME or n in new for n in named)
    # Every formula reads only JetClass-II columns, other new variables and np/ak.
    for formula in new.values():
        words = {w for w in __import__("re").findall(r"[A-Za-z_][A-Za-z0-9_]*", formula)}
        assert words <= set(COLUMNS_BY_NAME) | set(new) | {"np", "ak", "log", "hypot", "tanh", "ones_like"}
    assert config["labels"] == {"type": "simple", "value": ["label_X_bb", "label_X_YY_qqb", "label_QCD_light"]}
    assert new["label_X_bb"] == f"jet_label == {JETCLASS2_LABELS.index('label_X_bb')}"
    assert config["preprocess"]["method"] == "manual"
    assert all(config["inputs"][k]["length"] == 128 for k in ("pf_points", "pf_features", "pf_vectors", "pf_mask"))
    w = config["weights"]
    assert w["use_precomputed_weights"] is False and w["reweight_hists"] is None
    assert w["reweight_method"] == "flat"
    assert w["reweight_vars"] == {k: [float(e) for e in v] for k, v in WEIGHTS["vars"].items()}
    assert w["reweight_classes"] == ["label_X_YY_qqb", "label_X_bb", "label_QCD_light"]
    assert w["class_weights"] == [1.0, 2.0, 0.5]
    assert w["reweight_threshold"] == pytest.approx(15.0) and w["reweight_discard_under_overflow"] is True
    bare = {k: v for k, v in WEIGHTS.items() if k not in ("threshold", "discard_under_overflow")}
    defaults = weaver_data_config(bare)["weights"]
    assert defaults["reweight_threshold"] == pytest.approx(10.0)  # the weights stages' defaults, weaver's too
    assert defaults["reweight_discard_under_overflow"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vars": {"part_px": [0, 1], "jet_pt": [0, 1]}}, "not a per-jet JetClass-II column"),
        ({"vars": {"jet_pt": [0, 1]}}, "exactly 2"),
        ({"class_weights": {"X_tt": 1.0}}, "not in the JetClass-II label table"),
        ({"method": "flatter"}, "method"),
        ({"labels": ["X_bb"]}, "must be among the labels"),
    ],
)
def test_weaver_config_rejects_bad_params(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_weaver_config(tmp_path / "d.yaml", params={**WEIGHTS, **change})
    assert not (tmp_path / "d.yaml").exists()

"""The whole DAG with real Delphes: config/ci_delphes.yaml (profiles/ci_delphes) run as a user runs it.

e+e- samples through the CLIC card, pp samples through JetClass-II's card with pile-up from the workflow's own
minimum-bias file: simulation, ntuples, validation, TFDS, weights, training, evaluation, jets, taggers and
the report, which names each sample's detector. Skipped, with the reason, where Delphes is not built
(`make delphes`) or ../shared (JetClass-II's card) is not beside the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import uproot
import yaml
from workflow_api import ROOT, copy_project, run_snakemake

from colliderflow.generate.backends.delphes_install import DELPHES_EXECUTABLE, PILEUP_EXECUTABLE, find_tool

CONFIG = yaml.safe_load((ROOT / "config/ci_delphes.yaml").read_text())
RUN = CONFIG["run"]
SHARED = ROOT.parent / "shared"
JETCLASS2_CARD = "../shared/data/delphes-cards/delphes_card_CMS_JetClassII.tcl"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_tool(DELPHES_EXECUTABLE) is None or find_tool(PILEUP_EXECUTABLE) is None,
        reason="Delphes is not built here (make delphes)",
    ),
    pytest.mark.skipif(not (SHARED / JETCLASS2_CARD[len("../shared/"):]).is_file(),
                       reason=f"{SHARED} with JetClass-II's Delphes card is not beside the repository"),
]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow copied to a fresh folder (the card path made absolute) and run with the ci_delphes profile."""
    workdir = copy_project(tmp_path_factory.mktemp("delphes_dag") / "wf")
    config = yaml.safe_load((workdir / "config/ci_delphes.yaml").read_text())
    for sample in config["samples"].values():
        if sample["delphes"]["card"] == JETCLASS2_CARD:
            sample["delphes"]["card"] = str((ROOT / JETCLASS2_CARD).resolve())
    (workdir / "config/ci_delphes.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_snakemake(workdir, "--profile", "profiles/ci_delphes", timeout=2400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    report = run_snakemake(workdir, "--profile", "profiles/ci_delphes", "--report", f"results/{RUN}/report.html",
                           timeout=600)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    return workdir


def test_every_sample_was_simulated_by_delphes(pipeline: Path) -> None:
    results = pipeline / "results" / RUN
    for sample, cfg in CONFIG["samples"].items():
        record = json.loads((results / "sim" / sample / "0" / "provenance.json").read_text())
        shard = record["shards"][0]
        assert shard["backend"] == "delphes" and Path(shard["delphes"]["card"]).name == Path(cfg["delphes"]["card"]).name
        assert f"set RandomSeed {shard['seeds']['generate'] % (2**31 - 2) + 1}" in shard["delphes"]["wrapper_card"]
        with uproot.open(results / "sim" / sample / "0" / "0.root") as fh:
            assert fh["Delphes"].num_entries == cfg["events_per_shard"]


def test_pp_samples_share_one_pileup_file_with_the_configured_mean(pipeline: Path) -> None:
    results = pipeline / "results" / RUN
    files = sorted((results / "pileup").glob("*.pileup"))
    assert len(files) == 1 and files[0].stat().st_size > 0
    for sample, cfg in CONFIG["samples"].items():
        shard = json.loads((results / "sim" / sample / "0" / "provenance.json").read_text())["shards"][0]
        if "pileup" in cfg["delphes"]:
            assert shard["delphes"]["pileup_file"] == str(files[0].resolve())
            assert shard["delphes"]["mean_pileup"] == cfg["delphes"]["pileup"]["mean"]
        else:
            assert "pileup_file" not in shard["delphes"]


def test_every_stage_produced_its_outputs(pipeline: Path) -> None:
    results = pipeline / "results" / RUN
    for model in [CONFIG["train"]["model"], *CONFIG["tagger"]["models"]]:
        assert (results / "eval" / model / "summary.json").is_file(), model
    for sample, cfg in CONFIG["samples"].items():
        if cfg.get("dataset", "pf") == "pf":
            assert json.loads((results / "ntuples" / sample / "validation.json").read_text())["passed"] is True
            assert (results / "tfds" / sample).is_dir()
    assert (results / "tfds_jets").is_dir() and (results / "jetset" / "weaver_data_config.yaml").is_file()


def test_the_report_names_each_samples_detector(pipeline: Path) -> None:
    html = (pipeline / "results" / RUN / "report.html").read_text(errors="replace")
    for sample, cfg in CONFIG["samples"].items():
        card = Path(cfg["delphes"]["card"]).name
        assert re.search(re.escape(sample) + r".{0,400}" + re.escape(card), html, re.DOTALL), (sample, card)

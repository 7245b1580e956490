"""Delphes cards and pile-up: reading what a card runs, the per-shard wrapper card, the pile-up step and its DAG.

These need no Delphes: cards are small Tcl files written here, and hepmc2pileup is a fake that checks its
arguments. The real tools run in tests/test_delphes_real.py and tests/test_delphes_dag.py.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
import yaml
from workflow_api import ROOT, copy_project, dry_run, run_snakemake

from colliderflow.cli import main
from colliderflow.generate.backends import delphes_install
from colliderflow.generate.backends.delphes_cards import (
    PileupOptions,
    check_pileup_config,
    delphes_seed,
    pileup_mergers,
    read_card,
    write_wrapper_card,
)
from colliderflow.generate.backends.options import DelphesOptions
from colliderflow.params import stage_params


def delphes_options(options: dict | None) -> DelphesOptions:
    """A sample's `delphes:` options as the generate job and the dry run build them."""
    return stage_params(DelphesOptions, options, where="samples.s.delphes")

MERGER = "module PileUpMerger PileUpMerger {\n  set PileUpFile MinBias.pileup\n  set MeanPileUp 50\n}\n"


def write_cards(folder: Path, *, merge: bool, in_path: bool = True) -> Path:
    """A top card that sources sub/pu.tcl (relative to the top card's folder, as Delphes does)."""
    (folder / "sub").mkdir(parents=True)
    path = "PileUpMerger Calo" if in_path else "Calo"
    (folder / "top.tcl").write_text(
        f"# a comment: module PileUpMerger Commented\nset ExecutionPath {{\n  {path}\n}}\n"
        "source sub/pu.tcl\nmodule Calorimeter Calo {\n  set X 1\n}\n"
    )
    (folder / "sub" / "pu.tcl").write_text(MERGER if merge else "# nothing here\n")
    return folder / "top.tcl"


def test_a_merger_in_a_sourced_file_is_found_and_only_when_it_runs(tmp_path: Path) -> None:
    card = write_cards(tmp_path / "a", merge=True)
    content = read_card(card)
    assert content.files == (card, tmp_path / "a" / "sub" / "pu.tcl")
    assert content.modules == {"PileUpMerger": "PileUpMerger", "Calo": "Calorimeter"}  # the comment is no module
    assert pileup_mergers(card) == ["PileUpMerger"]
    assert pileup_mergers(write_cards(tmp_path / "b", merge=True, in_path=False)) == []  # defined, not run
    assert pileup_mergers(write_cards(tmp_path / "c", merge=False)) == []


def test_a_missing_sourced_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "top.tcl").write_text("source nope/x.tcl\n")
    with pytest.raises(ValueError, match=r"card '.*nope/x.tcl' not found \(sourced by .*top.tcl\)"):
        read_card(tmp_path / "top.tcl")


def test_pileup_options_are_checked_key_by_key() -> None:
    assert delphes_options({"pileup": {"mean": 5}}).pileup == PileupOptions(mean=5.0, minbias_events=1000)
    assert delphes_options({"card": "c.tcl"}).pileup is None
    for bad, match in (({"mean": -1}, r"^samples\.s\.delphes\.pileup\.mean: must be a number"),
                       ({"minbias_events": 0}, r"^samples\.s\.delphes\.pileup\.minbias_events: must be an integer"),
                       ({"mu": 5}, r"^samples\.s\.delphes\.pileup: unknown keys \['mu'\]"),
                       ("5", r"^samples\.s\.delphes\.pileup: expected a mapping")):
        with pytest.raises(ValueError, match=match):
            delphes_options({"pileup": bad})


def test_pileup_config_for_a_card_without_merger_is_refused(tmp_path: Path) -> None:
    card = write_cards(tmp_path, merge=False)
    assert check_pileup_config(card, None, what="samples.x") == []
    with pytest.raises(ValueError, match="samples.x: delphes.pileup is set, but the card .* runs no PileUpMerger"):
        check_pileup_config(card, PileupOptions(mean=5.0), what="samples.x")


def test_wrapper_card_sources_the_card_unchanged_and_overrides_the_merger(tmp_path: Path) -> None:
    card = write_cards(tmp_path / "cards", merge=True)
    before = {p: p.read_bytes() for p in (tmp_path / "cards").rglob("*.tcl")}
    pileup = tmp_path / "mb.pileup"
    wrapper, text = write_wrapper_card(card, tmp_path / "w", seed=41, pileup_file=pileup, mean_pileup=5.0)
    assert wrapper.read_text() == text
    assert text.splitlines()[1:] == ["source {top.tcl}", "set RandomSeed 42", "namespace eval PileUpMerger {",
                                     f"  set PileUpFile {{{pileup}}}", "  set MeanPileUp 5.0", "}"]
    # The card's folder is mirrored by links, so that `source sub/pu.tcl` resolves beside the wrapper.
    assert (tmp_path / "w" / "sub" / "pu.tcl").read_text() == MERGER
    assert {p: p.read_bytes() for p in (tmp_path / "cards").rglob("*.tcl")} == before  # the card is not edited
    _, text = write_wrapper_card(card, tmp_path / "w2", seed=1, pileup_file=pileup)
    assert "MeanPileUp" not in text  # no mean given: the card's own


def test_wrapper_card_refuses_a_missing_or_unneeded_pileup_file(tmp_path: Path) -> None:
    merging, plain = write_cards(tmp_path / "m", merge=True), write_cards(tmp_path / "p", merge=False)
    with pytest.raises(ValueError, match="merges pile-up \\(PileUpMerger\\) but no pile-up file was given.*make delphes"):
        write_wrapper_card(merging, tmp_path / "w1", seed=1)
    with pytest.raises(ValueError, match="runs no PileUpMerger"):
        write_wrapper_card(plain, tmp_path / "w2", seed=1, pileup_file=tmp_path / "x.pileup")
    assert not (tmp_path / "w1").exists() and not (tmp_path / "w2").exists()  # refused before anything is written


def test_delphes_seed_is_never_zero() -> None:
    assert delphes_seed(0) == 1 and delphes_seed(2**31 - 2) == 1 and delphes_seed(900_000_000) == 900_000_001


# ---------------------------------------------------------------- the pile-up step

FAKE_HEPMC2PILEUP = """
import sys
out, hepmc = sys.argv[1:3]
events = sum(1 for line in open(hepmc) if line.startswith("E "))
open(out, "w").write(f"pile-up of {events} events\\n")
"""


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake hepmc2pileup where `make delphes` installs it (the venv build), PATH left alone."""
    prefix = tmp_path / "venv-delphes"
    (prefix / "bin").mkdir(parents=True)
    tool = prefix / "bin" / "hepmc2pileup"
    tool.write_text(f"#!{sys.executable}\n{FAKE_HEPMC2PILEUP}")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(delphes_install, "venv_prefix", lambda: prefix)
    return prefix


def test_cli_pileup_makes_the_file_and_its_record(tmp_path: Path, fake_tools: Path) -> None:
    out, prov = tmp_path / "pu" / "mb.pileup", tmp_path / "pu" / "mb.json"
    argv = ["pileup", "--sqrt-s", "14000", "--n-events", "3", "--seed", "5", "-o", str(out), "--provenance", str(prov)]
    assert main(argv) == 0
    assert out.read_text() == "pile-up of 3 events\n"
    record = json.loads(prov.read_text())
    assert record["stage"] == "pileup" and record["process"] == "pp_minbias" and record["seeds"] == {"pileup": 5}
    assert "SoftQCD:nonDiffractive = on" in record["generator"]["settings"]
    assert "Beams:eCM = 14000.0" in record["generator"]["settings"]
    assert record["commands"][0][0] == str(fake_tools / "bin" / "hepmc2pileup")
    assert sorted(p.name for p in out.parent.iterdir()) == ["mb.json", "mb.pileup"]  # no scratch left


def test_cli_pileup_without_the_tool_is_exit_2_naming_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(delphes_install, "venv_prefix", lambda: tmp_path / "none")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    out = tmp_path / "mb.pileup"
    assert main(["pileup", "--sqrt-s", "14000", "--n-events", "2", "--seed", "1", "-o", str(out)]) == 2
    assert "'hepmc2pileup', which is not in" in caplog.text and "make delphes" in caplog.text
    assert not out.exists()


# ---------------------------------------------------------------- the DAG


def _pp_delphes(card: Path, **pileup: object) -> dict:
    sample = {"process": "pp_qcd", "dataset": "jets", "backend": "delphes", "sqrt_s": 14000.0, "n_shards": 1,
              "events_per_shard": 5, "delphes": {"card": str(card)}}
    if pileup:
        sample["delphes"]["pileup"] = pileup
    return sample


def _jets_config(tmp_path: Path, samples: dict) -> Path:
    config = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    config["samples"] = {k: v for k, v in config["samples"].items() if v.get("dataset") != "jets"} | samples
    path = tmp_path / "pu.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_every_generate_job_whose_card_merges_pileup_gets_the_one_pileup_file(tmp_path: Path) -> None:
    merging, plain = write_cards(tmp_path / "m", merge=True), write_cards(tmp_path / "p", merge=False)
    samples = {"pp_qcd": _pp_delphes(merging, mean=5, minbias_events=50),
               "pp_ttbar": {**_pp_delphes(merging, mean=8, minbias_events=50), "process": "pp_ttbar_had"},
               "pp_wz": {**_pp_delphes(plain), "process": "pp_wz_qq"}}
    workdir = copy_project(tmp_path / "wf")
    with dry_run(workdir, [_jets_config(tmp_path, samples)]) as dag:
        pileup_jobs = [j for j in dag.jobs if j.rule.name == "delphes_pileup"]
        generate = {j.wildcards.sample: j for j in dag.jobs if j.rule.name == "generate"}
        assert len(pileup_jobs) == 1  # same sqrt_s, events and seed: one file for both samples
        pileup = str(pileup_jobs[0].output.pileup)
        assert pileup.startswith("results/ci/pileup/minbias_14000GeV_50ev_seed") and pileup.endswith(".pileup")
        for sample in ("pp_qcd", "pp_ttbar"):
            assert list(generate[sample].input.pileup) == [pileup]
            assert generate[sample].params.pileup == f"--pileup-file {pileup}"
        assert list(generate["pp_wz"].input.pileup) == [] and generate["pp_wz"].params.pileup == ""
        assert "--sqrt-s 14000 --n-events 50 --seed" in pileup_jobs[0].format_wildcards(pileup_jobs[0].shellcmd)


def test_pileup_config_for_a_card_that_merges_none_stops_the_dag_naming_the_sample(tmp_path: Path) -> None:
    plain = write_cards(tmp_path / "p", merge=False)
    workdir = copy_project(tmp_path / "wf")
    config = _jets_config(tmp_path, {"pp_qcd": _pp_delphes(plain, mean=5)})
    result = run_snakemake(workdir, "-n", "--configfile", str(config), timeout=120)
    assert result.returncode != 0
    assert "samples.pp_qcd: delphes.pileup is set, but the card" in result.stdout + result.stderr

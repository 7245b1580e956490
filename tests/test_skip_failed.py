"""Skipping failed generation shards: off by default, explicit with --skip-failed, visible downstream.

A shard is made to fail the way a real one does: its Pythia instance aborts every event, so the
generator's own retry loop gives up ("Pythia keeps failing ..."), or an external backend lacks its
tools. The tests follow the failed shard through ntuplize (zero-row shard), validation (counted),
TFDS and weights (tolerated) and the run summary (listed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

import colliderflow.generate.run as run_module
from colliderflow.cli import main
from colliderflow.generate.pythia import PythiaGenerator
from colliderflow.io.parquet import read_event_parquet
from colliderflow.io.sim_reader import detect_format, read_events, read_sim
from colliderflow.jobs import SKIP_FAILED_ENV, read_job_provenance, write_run_summary
from colliderflow.ntuplize.empty_shard import empty_event_table, skipped_reason
from colliderflow.ntuplize.validate import validate_dataset
from colliderflow.provenance import write_provenance
from colliderflow.schema import EVENT_COLUMNS

GEN_PARAMS = {"sqrt_s": 380.0, "detector": "clic_like"}
NT_PARAMS = {
    "split_fractions": {"train": 0.7, "val": 0.1, "test": 0.2},
    "jets": {"algorithm": "ee_genkt", "radius": 0.4, "p": -1.0, "min_pt": 5.0},
}
N_EVENTS = 6
SHARDS = (4, 5, 6)
SEEDS = (101, 102, 103)
BAD_SEED = 102  # shard 5


class _AbortingPythia:
    """A Pythia whose every event aborts, as a pathological seed or a broken setup makes it."""

    def __init__(self, pythia: Any) -> None:
        self._pythia = pythia

    def nextBatch(self, n_events: int, mode: str) -> list:  # Pythia's own method name
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pythia, name)


def flaky_pythia(bad_seeds: set[int]) -> type[PythiaGenerator]:
    """PythiaGenerator whose instances for `bad_seeds` never produce an event."""

    class FlakyPythia(PythiaGenerator):
        def __init__(self, process: str, *, sqrt_s: float, seed: int, **kwargs: Any) -> None:
            super().__init__(process, sqrt_s=sqrt_s, seed=seed, **kwargs)
            if int(seed) in bad_seeds:
                self._pythia = _AbortingPythia(self._pythia)

    return FlakyPythia


def generate_argv(directory: Path, *, skip: bool, sample: str = "ttbar") -> list[str]:
    argv = ["generate", "--sample", sample, "--process", "ee_ttbar", "--shard", *map(str, SHARDS),
            "--n-events", str(N_EVENTS), "--seed", *map(str, SEEDS), "--params", json.dumps(GEN_PARAMS),
            "-o", *(str(directory / f"{i}.root") for i in range(len(SHARDS))),
            "--provenance", str(directory / "provenance.json")]  # fmt: skip
    return [*argv, "--skip-failed"] if skip else argv


def ntuplize_argv(sim: Path, out: Path, *, record: Path | None, sample: str = "ttbar") -> list[str]:
    argv = ["ntuplize", *(str(sim / f"{i}.root") for i in range(len(SHARDS))),
            "-o", *(str(out / f"{i}.parquet") for i in range(len(SHARDS))), "--sample", sample,
            "--shard", *map(str, SHARDS), "--seed", "7", "--params", json.dumps(NT_PARAMS),
            "--provenance", str(out / "provenance.json")]  # fmt: skip
    return [*argv, "--generation-record", str(record)] if record is not None else argv


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A generate job with --skip-failed whose shard 5 fails, and its ntuplize job given the record."""
    root = tmp_path_factory.mktemp("skipped")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(SKIP_FAILED_ENV, raising=False)
        mp.setattr(run_module, "PythiaGenerator", flaky_pythia({BAD_SEED}))
        assert main(generate_argv(root / "sim", skip=True)) == 0
    assert main(ntuplize_argv(root / "sim", root / "ntuples", record=root / "sim" / "provenance.json")) == 0
    yield root


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same job without the flag and without a failure: nothing may be skipped."""
    root = tmp_path_factory.mktemp("clean")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(SKIP_FAILED_ENV, raising=False)
        assert main(generate_argv(root / "sim", skip=False, sample="qq")) == 0
    assert main(ntuplize_argv(root / "sim", root / "ntuples", record=root / "sim" / "provenance.json",
                              sample="qq")) == 0
    return root


# ------------------------------------------------------------------------------------------------
# generate
# ------------------------------------------------------------------------------------------------
def test_without_the_flag_a_failed_shard_fails_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(SKIP_FAILED_ENV, raising=False)
    monkeypatch.setattr(run_module, "PythiaGenerator", flaky_pythia({BAD_SEED}))
    with caplog.at_level(logging.ERROR):
        assert main(generate_argv(tmp_path, skip=False)) == 2
    assert "Pythia keeps failing" in caplog.text
    assert not (tmp_path / "provenance.json").exists()  # no record: Snakemake sees a failed job and retries
    assert not (tmp_path / "1.root").exists()  # and no placeholder for the failed shard


def test_with_the_flag_the_failed_shard_is_recorded_not_faked(skipped_run: Path) -> None:
    record = json.loads((skipped_run / "sim" / "provenance.json").read_text())
    assert record["skip_failed_shards"] is True
    assert record["failed_shards"] == [5]
    assert [s["status"] for s in record["shards"]] == ["ok", "failed", "ok"]
    assert [s["shard"] for s in record["shards"]] == list(SHARDS)
    failed = record["shards"][1]
    assert failed["seeds"] == {"generate": BAD_SEED}
    assert failed["error"]["type"] == "ValueError"
    assert "Pythia keeps failing to generate 'ee_ttbar' events" in failed["error"]["message"]
    assert failed["sample"] == "ttbar" and failed["n_events"] == N_EVENTS and failed["output"].endswith("1.root")
    assert "generator" not in failed  # nothing claims a generator run that made no events
    assert all(s["skip_failed_shards"] is True for s in record["shards"])
    # The failed shard's declared file holds nothing; the others are complete.
    assert (skipped_run / "sim" / "1.root").stat().st_size == 0
    for i in (0, 2):
        assert len(read_sim(skipped_run / "sim" / f"{i}.root")) == N_EVENTS


@pytest.mark.parametrize("reader", [read_sim, read_events, detect_format])
def test_every_reader_refuses_the_placeholder_naming_it(skipped_run: Path, reader: Any) -> None:
    placeholder = skipped_run / "sim" / "1.root"
    with pytest.raises(ValueError, match=r"1\.root: empty file \(0 bytes\), not a ROOT file"):
        reader(placeholder)


def test_the_failure_is_logged_with_shard_seed_and_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(run_module, "PythiaGenerator", flaky_pythia({BAD_SEED}))
    with caplog.at_level(logging.WARNING):
        assert main(generate_argv(tmp_path, skip=True)) == 0
    line = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "shard 5" in line and f"seed {BAD_SEED}" in line and "ValueError: Pythia keeps failing" in line


def test_a_stale_file_of_the_failed_shard_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "1.root").write_bytes(b"events of an earlier run")
    monkeypatch.setattr(run_module, "PythiaGenerator", flaky_pythia({BAD_SEED}))
    assert main(generate_argv(tmp_path, skip=True)) == 0
    assert (tmp_path / "1.root").stat().st_size == 0


def test_any_exception_of_a_shard_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = run_module.simulate_detector
    calls = []

    def crashing_detector(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:  # the third shard's detector simulation
            raise MemoryError("out of memory in the calorimeter")
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "simulate_detector", crashing_detector)
    assert main(generate_argv(tmp_path, skip=True)) == 0
    record = read_job_provenance(tmp_path / "provenance.json", stage="generate")
    assert record["failed_shards"] == [6]
    assert record["shards"][2]["error"] == {"type": "MemoryError", "message": "out of memory in the calorimeter"}


@pytest.mark.parametrize(("env", "flag", "skipped"), [
    ("1", [], True),  # the workflow's way: the config switch arrives through the environment
    ("true", [], True),
    ("0", [], False),
    ("1", ["--no-skip-failed"], False),  # an explicit flag wins over the environment
    ("0", ["--skip-failed"], True),
])
def test_the_setting_may_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str,
                                                   flag: list[str], skipped: bool) -> None:
    monkeypatch.setenv(SKIP_FAILED_ENV, env)
    monkeypatch.setattr(run_module, "PythiaGenerator", flaky_pythia({BAD_SEED}))
    assert main([*generate_argv(tmp_path, skip=False), *flag]) == (0 if skipped else 2)
    if skipped:
        record = read_job_provenance(tmp_path / "provenance.json", stage="generate")
        assert record["skip_failed_shards"] is True and record["failed_shards"] == [5]
    else:
        assert not (tmp_path / "provenance.json").exists()


def test_a_malformed_environment_value_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(SKIP_FAILED_ENV, "sometimes")
    with caplog.at_level(logging.ERROR):
        assert main(generate_argv(tmp_path, skip=False)) == 2
    assert f"{SKIP_FAILED_ENV}='sometimes'" in caplog.text
    assert not list(tmp_path.iterdir())


def test_the_flag_needs_a_record(tmp_path: Path) -> None:
    argv = generate_argv(tmp_path, skip=True)
    at = argv.index("--provenance")
    assert main(argv[:at] + argv[at + 2:]) == 2
    assert not list(tmp_path.iterdir())


def test_when_every_shard_fails_they_are_all_skipped_and_recorded(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    # An external backend that cannot run (here: a card that does not exist; Delphes itself may be built)
    # fails every shard. With one shard per job that is the only way a shard is ever skipped, so the switch
    # must hold here too.
    missing_card = json.dumps({"card": str(tmp_path.parent / f"{tmp_path.name}-missing.tcl")})
    argv = [*generate_argv(tmp_path, skip=True), "--backend", "delphes", "--backend-options", missing_card]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 0
    assert "all 3 shard(s) of the job failed and are skipped" in caplog.text
    record = json.loads(next(tmp_path.rglob("provenance.json")).read_text())
    assert len(record["failed_shards"]) == 3
    assert [s["status"] for s in record["shards"]] == ["failed"] * 3
    assert all("Delphes" in s["error"]["message"] or "delphes" in s["error"]["message"].lower() for s in record["shards"])


def test_without_the_flag_and_without_failures_nothing_is_skipped(clean_run: Path) -> None:
    record = json.loads((clean_run / "sim" / "provenance.json").read_text())
    assert record["skip_failed_shards"] is False and record["failed_shards"] == []
    assert [s["status"] for s in record["shards"]] == ["ok"] * 3
    nt = json.loads((clean_run / "ntuples" / "provenance.json").read_text())
    assert nt["skipped_shards"] == [] and [s["skipped"] for s in nt["shards"]] == [False] * 3
    assert [s["events"] for s in nt["shards"]] == [N_EVENTS] * 3


# ------------------------------------------------------------------------------------------------
# ntuplize
# ------------------------------------------------------------------------------------------------
def test_ntuplize_writes_a_zero_row_shard_with_the_event_schema(skipped_run: Path) -> None:
    out = skipped_run / "ntuples"
    empty, real = out / "1.parquet", out / "0.parquet"
    assert pq.read_metadata(empty).num_rows == 0
    assert pq.read_schema(empty).equals(pq.read_schema(real), check_metadata=False)
    assert pq.read_schema(empty).names == list(EVENT_COLUMNS)
    assert empty_event_table().schema.equals(pq.read_schema(real), check_metadata=False)
    assert len(read_event_parquet([real, empty])) == N_EVENTS  # concatenates with real shards
    assert "Pythia keeps failing" in skipped_reason(empty) and f"seed {BAD_SEED}" in skipped_reason(empty)
    assert skipped_reason(real) is None


def test_ntuplize_record_says_skipped_with_the_reason(skipped_run: Path) -> None:
    record = json.loads((skipped_run / "ntuples" / "provenance.json").read_text())
    assert record["skipped_shards"] == [5]
    shard = record["shards"][1]
    assert shard["skipped"] is True and shard["events"] == 0 and shard["shard"] == 5
    assert "generation of shard 5" in shard["reason"] and "Pythia keeps failing" in shard["reason"]
    assert shard["inputs"] == [str(skipped_run / "sim" / "1.root")]
    assert [s["skipped"] for s in record["shards"]] == [False, True, False]
    assert [s["events"] for s in record["shards"]] == [N_EVENTS, 0, N_EVENTS]


def test_ntuplize_without_the_record_refuses_the_placeholder(skipped_run: Path, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(ntuplize_argv(skipped_run / "sim", tmp_path, record=None)) == 2
    assert "1.root: empty file (0 bytes)" in caplog.text
    assert not (tmp_path / "1.parquet").exists() and not (tmp_path / "provenance.json").exists()


def test_ntuplize_refuses_a_record_of_other_shards(skipped_run: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    argv = ntuplize_argv(skipped_run / "sim", tmp_path, record=skipped_run / "sim" / "provenance.json")
    at = argv.index("--shard")
    argv[at + 1:at + 4] = ["7", "8", "9"]
    with caplog.at_level(logging.ERROR):
        assert main(argv) == 2
    assert "no record of shard(s) [7, 8, 9]" in caplog.text
    other = ntuplize_argv(skipped_run / "sim", tmp_path, record=skipped_run / "sim" / "provenance.json",
                          sample="qq")
    assert main(other) == 2
    assert "belongs to sample 'ttbar', not 'qq'" in caplog.text
    assert not list(tmp_path.iterdir())


def test_ntuplize_refuses_the_record_when_inputs_are_merged(skipped_run: Path, tmp_path: Path) -> None:
    argv = ["ntuplize", str(skipped_run / "sim" / "0.root"), str(skipped_run / "sim" / "2.root"),
            "-o", str(tmp_path / "all.parquet"), "--generation-record", str(skipped_run / "sim" / "provenance.json")]
    assert main(argv) == 2


# ------------------------------------------------------------------------------------------------
# validation, TFDS, weights
# ------------------------------------------------------------------------------------------------
def test_validation_accepts_and_counts_the_skipped_shard(skipped_run: Path, tmp_path: Path) -> None:
    shards = [skipped_run / "ntuples" / f"{i}.parquet" for i in range(3)]
    result = validate_dataset(shards, params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    assert result["passed"] and result["events"] == 2 * N_EVENTS
    assert result["shards"] == 3 and result["n_empty_shards"] == 1 and result["n_skipped_shards"] == 1
    assert result["empty_shards"] == [str(shards[1])]
    assert "Pythia keeps failing" in result["skipped_shards"][str(shards[1])]
    assert json.loads((tmp_path / "s.json").read_text())["n_skipped_shards"] == 1


def test_validation_still_fails_a_sample_below_min_events(skipped_run: Path, tmp_path: Path) -> None:
    shards = [skipped_run / "ntuples" / f"{i}.parquet" for i in range(3)]
    with pytest.raises(ValueError, match=f"min_events: {2 * N_EVENTS} vs threshold {3 * N_EVENTS}"):
        validate_dataset(shards, params={"min_events": 3 * N_EVENTS}, summary=tmp_path / "s.json",
                         plot=tmp_path / "p.png")
    assert json.loads((tmp_path / "s.json").read_text())["n_skipped_shards"] == 1
    with pytest.raises(ValueError, match="min_events: 0 vs threshold 1"):
        validate_dataset([shards[1]], params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")


def test_tfds_build_tolerates_the_zero_row_shard(skipped_run: Path, tmp_path: Path) -> None:
    from colliderflow.io.tfds_reader import split_sizes
    from colliderflow.io.tfds_writer import build_tfds

    shards = [skipped_run / "ntuples" / f"{i}.parquet" for i in range(3)]
    with_empty = build_tfds(shards, name="ttbar", output_dir=tmp_path / "with")
    without = build_tfds([shards[0], shards[2]], name="ttbar", output_dir=tmp_path / "without")
    sizes = split_sizes(tmp_path / "with")
    assert sum(sizes.values()) == 2 * N_EVENTS
    assert sizes == split_sizes(tmp_path / "without")
    assert with_empty.name == without.name


def test_weights_tolerate_the_zero_row_shard(skipped_run: Path, tmp_path: Path) -> None:
    from colliderflow.weights import compute_weights_from_files

    params = {"method": "flat", "class_column": "sample", "vars": {"n_elements": [0, 50, 100, 400],
              "genmet": [0, 10, 50, 500]}, "class_weights": {"ttbar": 1.0}}  # fmt: skip
    shards = [skipped_run / "ntuples" / f"{i}.parquet" for i in range(3)]
    outputs = {}
    for name, inputs in (("with", shards), ("without", [shards[0], shards[2]])):
        out = tmp_path / name
        compute_weights_from_files(inputs, params=params, output=out / "w.parquet", histograms=out / "h.json",
                                   plot=out / "w.png", provenance=None)
        outputs[name] = pq.read_table(out / "w.parquet")
    assert outputs["with"].num_rows > 0
    assert outputs["with"].equals(outputs["without"])
    with pytest.raises(ValueError, match="no training events"):
        compute_weights_from_files([shards[1]], params=params, output=tmp_path / "e.parquet",
                                   histograms=tmp_path / "e.json", plot=tmp_path / "e.png", provenance=None)


# ------------------------------------------------------------------------------------------------
# run summary
# ------------------------------------------------------------------------------------------------
def test_run_summary_lists_the_failed_shard(skipped_run: Path, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "results" / "run" / "run_summary.json"
    with caplog.at_level(logging.WARNING):
        summary = write_run_summary(generation_records=[skipped_run / "sim" / "provenance.json"], output=out)
    assert json.loads(out.read_text()) == summary
    assert summary["skip_failed_shards"] is True
    ttbar = summary["samples"]["ttbar"]
    assert (ttbar["shards_requested"], ttbar["shards_ok"], ttbar["shards_failed"]) == (3, 2, 1)
    assert ttbar["ok_shards"] == [4, 6]
    assert ttbar["events_requested"] == 3 * N_EVENTS and ttbar["events_generated"] == 2 * N_EVENTS
    [failure] = ttbar["failed_shards"]
    assert failure["shard"] == 5 and failure["seed"] == BAD_SEED and failure["error_type"] == "ValueError"
    assert "Pythia keeps failing" in failure["error"]
    assert summary["failed_shards"] == [failure] and failure["sample"] == "ttbar"
    assert summary["totals"]["shards_failed"] == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "ttbar shard 5" in warnings[0] and f"seed {BAD_SEED}" in warnings[0]


def test_run_summary_of_a_clean_run_and_through_the_cli(skipped_run: Path, clean_run: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    clean = clean_run / "sim" / "provenance.json"
    summary = write_run_summary(generation_records=[clean], output=tmp_path / "clean.json")
    assert summary["skip_failed_shards"] is False and summary["failed_shards"] == []
    assert summary["samples"]["qq"]["shards_failed"] == 0 and summary["samples"]["qq"]["shards_ok"] == 3
    # Jobs that ran with and without the flag: the setting is reported as unknown, with a warning.
    both = [skipped_run / "sim" / "provenance.json", clean]
    with caplog.at_level(logging.WARNING):
        assert main(["run-summary", *map(str, both), "-o", str(tmp_path / "both.json")]) == 0
    written = json.loads((tmp_path / "both.json").read_text())
    assert written["skip_failed_shards"] is None and "disagree on skip_failed_shards" in caplog.text
    assert sorted(written["samples"]) == ["qq", "ttbar"] and len(written["failed_shards"]) == 1
    assert written["totals"]["events_generated"] == 5 * N_EVENTS


def test_run_summary_refuses_a_shard_recorded_twice_and_foreign_records(skipped_run: Path, tmp_path: Path) -> None:
    record = skipped_run / "sim" / "provenance.json"
    with pytest.raises(ValueError, match="shard 4 is recorded twice"):
        write_run_summary(generation_records=[record, record], output=tmp_path / "s.json")
    with pytest.raises(ValueError, match="not a generate job record"):
        write_run_summary(generation_records=[skipped_run / "ntuples" / "provenance.json"], output=tmp_path / "s.json")
    assert not (tmp_path / "s.json").exists()


def test_records_from_before_shard_statuses_read_as_ok(tmp_path: Path) -> None:
    old = {"stage": "generate", "shards": [{"sample": "ttbar", "shard": 0, "n_events": 10, "seeds": {"generate": 1}}]}
    write_provenance(tmp_path / "old.json", old)
    summary = write_run_summary(generation_records=[tmp_path / "old.json"], output=tmp_path / "s.json")
    assert summary["skip_failed_shards"] is False
    assert summary["samples"]["ttbar"]["shards_ok"] == 1 and summary["totals"]["events_generated"] == 10
    assert np.array_equal(summary["samples"]["ttbar"]["ok_shards"], [0])

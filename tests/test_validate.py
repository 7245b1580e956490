"""validate_dataset: passes clean shards, fails broken ones, and always leaves its summary and plot."""

from __future__ import annotations

import json
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
from sim_fixture import random_events, write_sim

from colliderflow.io.parquet import read_event_parquet, write_parquet_atomic
from colliderflow.ntuplize.events import ntuplize_files
from colliderflow.ntuplize.validate import ValidationParams, validate_dataset
from colliderflow.params import stage_params

PARAMS = {
    "split_fractions": {"train": 0.7, "val": 0.1, "test": 0.2},
    "jets": {"algorithm": "ee_genkt", "radius": 0.4, "p": -1.0, "min_pt": 5.0},
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("validate")
    out = []
    for shard in range(2):
        sim = write_sim(root / f"{shard}.root", random_events(150, seed=20 + shard))
        parquet = root / f"ttbar_{shard}.parquet"
        ntuplize_files([sim], output=parquet, sample="ttbar", shard=shard, params=PARAMS, seed=1, provenance=None)
        out.append(parquet)
    return out


def rewrite(source: Path, target: Path, **columns: ak.Array) -> Path:
    events = read_event_parquet(source)
    fields = {name: columns.get(name, events[name]) for name in events.fields}
    write_parquet_atomic(ak.zip(fields, depth_limit=1), target)
    return target


def check(summary: dict, name: str) -> dict:
    return next(c for c in summary["checks"] if c["name"] == name)


def test_clean_shards_pass(shards: list[Path], tmp_path: Path) -> None:
    result = validate_dataset(shards, params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    assert result["passed"] and all(c["passed"] for c in result["checks"])
    assert result["events"] == 300
    assert result["samples"] == ["ttbar"]
    written = json.loads((tmp_path / "s.json").read_text())
    assert written == json.loads(json.dumps(result))
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert written["elements"]["min"] <= written["elements"]["mean"] <= written["elements"]["max"]
    fractions = written["class_fractions"]["ytarget"]
    assert sum(fractions.values()) == pytest.approx(1.0)
    assert fractions["charged_hadron"] > 0.2 and fractions["photon"] > 0.1
    assert 0.99 < written["closure"]["mean"] <= 1.0  # the fixture loses only soft particles in the endcap hole
    assert sum(written["splits"].values()) == 300


def test_nan_in_features_fails_and_still_writes_the_summary(shards: list[Path], tmp_path: Path) -> None:
    events = read_event_parquet(shards[0])
    x = ak.to_numpy(ak.flatten(events.X)).copy()
    x[17, 3] = np.nan
    x[40, 1] = np.inf
    broken = rewrite(shards[0], tmp_path / "nan.parquet", X=ak.unflatten(x, ak.num(events.X, axis=1)))
    with pytest.raises(ValueError) as err:
        validate_dataset([broken, shards[1]], params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    assert "max_nan" in str(err.value) and str(broken) in str(err.value) and "s.json" in str(err.value)
    summary = json.loads((tmp_path / "s.json").read_text())
    assert not summary["passed"] and summary["non_finite"]["X"] == 2
    assert not check(summary, "max_nan")["passed"]
    assert check(summary, "min_events")["passed"]
    assert (tmp_path / "p.png").exists()


def test_nan_tolerance_is_configurable(shards: list[Path], tmp_path: Path) -> None:
    events = read_event_parquet(shards[0])
    y = ak.to_numpy(ak.flatten(events.ycand)).copy()
    y[5, 2] = np.nan
    broken = rewrite(shards[0], tmp_path / "nan.parquet", ycand=ak.unflatten(y, ak.num(events.ycand, axis=1)))
    result = validate_dataset([broken], params={"max_nan": 1}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    assert result["non_finite"]["ycand"] == 1 and result["passed"]


def test_lost_energy_fails_the_closure(shards: list[Path], tmp_path: Path) -> None:
    events = read_event_parquet(shards[0])
    lost = np.where(np.arange(len(events)) % 2 == 0, 50.0, 0.0).astype(np.float32)
    broken = rewrite(shards[0], tmp_path / "lost.parquet", gen_unassigned_energy=ak.Array(lost))
    with pytest.raises(ValueError, match="max_closure_outlier_fraction"):
        validate_dataset([broken], params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["closure"]["outlier_fraction"] == pytest.approx(0.5, abs=0.01)
    # Tolerating half the events as outliers lets the same data through.
    validate_dataset([broken], params={"max_closure_outlier_fraction": 0.6}, summary=tmp_path / "s2.json",
                     plot=tmp_path / "p2.png")


def test_duplicate_event_ids_fail(shards: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique_event_ids"):
        validate_dataset([shards[0], shards[0]], params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")


def test_too_few_events_fail(shards: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="min_events: 150 vs threshold 1000"):
        validate_dataset([shards[0]], params={"min_events": 1000}, summary=tmp_path / "s.json",
                         plot=tmp_path / "p.png")


def test_bad_class_ids_fail(shards: list[Path], tmp_path: Path) -> None:
    events = read_event_parquet(shards[0])
    y = ak.to_numpy(ak.flatten(events.ytarget)).copy()
    y[3, 0] = 7.0
    broken = rewrite(shards[0], tmp_path / "cls.parquet", ytarget=ak.unflatten(y, ak.num(events.ytarget, axis=1)))
    with pytest.raises(ValueError, match="valid_class_ids"):
        validate_dataset([broken], params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")


def test_unreadable_shard_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match=r"bad\.parquet"):
        validate_dataset([bad], params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")


def test_unknown_threshold_key() -> None:
    with pytest.raises(ValueError, match=r"ntuplize.validation: unknown keys \['max_nans'\]"):
        stage_params(ValidationParams, {"max_nans": 0}, where="ntuplize.validation")
    with pytest.raises(ValueError, match=r"ntuplize.validation.min_events: must be a whole number, got '5'"):
        stage_params(ValidationParams, {"min_events": "5"}, where="ntuplize.validation")
    assert stage_params(ValidationParams, {"min_events": 5}, where="ntuplize.validation").min_events == 5


def test_thresholds_may_come_inside_the_ntuplize_section(shards: list[Path], tmp_path: Path) -> None:
    section = {**PARAMS, "validation": {"min_events": 1000}}
    with pytest.raises(ValueError, match="min_events: 150 vs threshold 1000"):
        validate_dataset([shards[0]], params=section, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    result = validate_dataset([shards[0]], params=PARAMS, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    assert result["params"] == json.loads(json.dumps(ValidationParams().__dict__))


def test_a_shard_without_events_is_accepted_and_counted(shards: list[Path], tmp_path: Path) -> None:
    from colliderflow.ntuplize.empty_shard import empty_event_table

    empty = tmp_path / "empty.parquet"
    write_parquet_atomic(empty_event_table(), empty)  # empty, but not a skipped generation shard
    result = validate_dataset([shards[0], empty, shards[1]], params={}, summary=tmp_path / "s.json",
                              plot=tmp_path / "p.png")
    assert result["passed"] and result["events"] == 300 and result["events_per_file"][str(empty)] == 0
    assert result["n_empty_shards"] == 1 and result["empty_shards"] == [str(empty)]
    assert result["n_skipped_shards"] == 0 and result["skipped_shards"] == {}
    with pytest.raises(ValueError, match="min_events: 0 vs threshold 1"):
        validate_dataset([empty], params={}, summary=tmp_path / "s.json", plot=tmp_path / "p.png")
    assert (tmp_path / "p.png").exists()

"""Sampling weights: checked against a slow, loop-by-loop re-derivation of weaver's rules."""

from __future__ import annotations

import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest

from colliderflow.cli import main as cli_main
from colliderflow.io.parquet import write_parquet_atomic
from colliderflow.weights import (
    compute_reweight_maps,
    compute_weights_from_files,
    event_weights,
    histogram,
    reweight_events,
)
from colliderflow.weights.histogram import LINEAR_SEARCH_MAX_EDGES

X_EDGES = [0.0, 1.0, 2.0, 4.0]
Y_EDGES = [0.0, 10.0, 20.0]


# ------------------------------------------------------------------------------------------------
# An independent reference: explicit loops over events and bins, written from the rules alone.
# ------------------------------------------------------------------------------------------------
def ref_bin(value: float, edges: list[float], discard: bool) -> int | None:
    if math.isnan(value):
        return None
    if value < edges[0] or value > edges[-1]:
        if discard:
            return None
        return 0 if value < edges[0] else len(edges) - 2
    for i in range(len(edges) - 1):
        if edges[i] <= value < edges[i + 1]:
            return i
    return len(edges) - 2  # value == last edge


def ref_weights(x, y, labels, classes, cw, method, threshold, discard):
    nx, ny = len(X_EDGES) - 1, len(Y_EDGES) - 1
    hists = {c: [[0.0] * ny for _ in range(nx)] for c in classes}
    for xv, yv, lab in zip(x, y, labels):
        i, j = ref_bin(xv, X_EDGES, discard), ref_bin(yv, Y_EDGES, discard)
        if lab in hists and i is not None and j is not None:
            hists[lab][i][j] += 1
    shapes = {}
    for c in classes:
        h = hists[c]
        cells = [h[i][j] for i in range(nx) for j in range(ny)]
        if method == "flat":
            populated = sorted(v for v in cells if v > 0)
            median = float(np.median(populated))
            plateau = float(np.percentile([v for v in cells if v > 0.01 * median], 100 * threshold))
            shapes[c] = [[min(1.0, plateau / h[i][j]) if h[i][j] > 0 else 0.0 for j in range(ny)] for i in range(nx)]
        else:
            href = hists[classes[0]]
            ratio = [[href[i][j] / h[i][j] if h[i][j] > 0 else 0.0 for j in range(ny)] for i in range(nx)]
            upper = float(np.percentile([r for row in ratio for r in row if r > 0], 100 * (1 - threshold)))
            shapes[c] = [[min(1.0, ratio[i][j] / upper) for j in range(ny)] for i in range(nx)]
    n = {c: sum(hists[c][i][j] * shapes[c][i][j] for i in range(nx) for j in range(ny)) / cw[c] for c in classes}
    factor = {c: 0.9 * min(n.values()) / n[c] for c in classes}
    out = []
    for xv, yv, lab in zip(x, y, labels):
        i, j = ref_bin(xv, X_EDGES, discard), ref_bin(yv, Y_EDGES, discard)
        out.append(0.0 if lab not in hists or i is None or j is None else shapes[lab][i][j] * factor[lab])
    return np.array(out)


def small_table(seed: int = 0, n: int = 400):
    rng = np.random.default_rng(seed)
    x = rng.exponential(1.2, n) - 0.2  # some below 0, some above 4
    y = rng.normal(9.0, 6.0, n)
    x[:3] = [0.0, 4.0, 2.0]  # exactly on edges, including the closed last edge
    y[:3] = [20.0, 10.0, 0.0]
    x[5] = np.nan
    labels = rng.choice(["a", "b", "c", "other"], n, p=[0.4, 0.3, 0.25, 0.05])
    return {"x": x, "y": y}, labels


@pytest.mark.parametrize("method", ["flat", "ref"])
@pytest.mark.parametrize("discard", [False, True])
@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.5])
def test_matches_independent_computation(method: str, discard: bool, threshold: float) -> None:
    table, labels = small_table()
    classes = ["a", "b", "c"]
    cw = {"a": 1.0, "b": 2.0, "c": 0.5}
    result = compute_reweight_maps(table, class_labels=labels, classes=classes, vars={"x": X_EDGES, "y": Y_EDGES},
                                   method=method, class_weights=cw, threshold=threshold, discard_under_overflow=discard)
    got = event_weights(result, table, labels)
    want = ref_weights(table["x"], table["y"], labels, classes, cw, method, threshold, discard)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    _, together = reweight_events(table, class_labels=labels, classes=classes, vars={"x": X_EDGES, "y": Y_EDGES},
                                  method=method, class_weights=cw, threshold=threshold, discard_under_overflow=discard)
    np.testing.assert_array_equal(together, got)
    for c, name in enumerate(classes):
        x, y = table["x"][labels == name], table["y"][labels == name]
        if not discard:  # numpy drops out-of-range (and NaN) values, so clip first to count them at the edges
            x, y = np.clip(x, 0, 4), np.clip(y, 0, 20)
        np.testing.assert_array_equal(result.raw_hists[c], np.histogram2d(x, y, bins=[X_EDGES, Y_EDGES])[0])


def test_flat_map_by_hand() -> None:
    """Counts chosen so every rule shows: 2 events is under 1 % of the median (400) and leaves the
    plateau estimate, 50 is kept and, at threshold 0, is the plateau."""
    counts = np.array([[1000, 800], [300, 2], [500, 50]])
    centres_x, centres_y = [0.5, 1.5, 3.0], [5.0, 15.0]
    x = np.concatenate([np.full(counts[i, j], centres_x[i]) for i in range(3) for j in range(2)])
    y = np.concatenate([np.full(counts[i, j], centres_y[j]) for i in range(3) for j in range(2)])
    labels = np.full(x.size, "a")
    result = compute_reweight_maps({"x": x, "y": y}, class_labels=labels, classes=["a"],
                                   vars={"x": X_EDGES, "y": Y_EDGES}, method="flat", threshold=0.0)
    np.testing.assert_array_equal(result.raw_hists[0], counts)
    assert result.reference_values[0] == 50
    expected = 0.9 * np.array([[50 / 1000, 50 / 800], [50 / 300, 1.0], [50 / 500, 1.0]])
    np.testing.assert_allclose(result.weight_maps[0], expected, rtol=1e-12)
    half = compute_reweight_maps({"x": x, "y": y}, class_labels=labels, classes=["a"],
                                 vars={"x": X_EDGES, "y": Y_EDGES}, method="flat", threshold=0.5)
    assert half.reference_values[0] == np.percentile([1000, 800, 300, 500, 50], 50) == 500


def test_flat_is_flat_on_plateau_and_classes_follow_class_weights() -> None:
    table, labels = small_table(seed=1, n=3000)
    cw = {"a": 1.0, "b": 3.0, "c": 2.0}
    result = compute_reweight_maps(table, class_labels=labels, classes=list(cw), vars={"x": X_EDGES, "y": Y_EDGES},
                                   method="flat", class_weights=cw, threshold=0.2, discard_under_overflow=False)
    weights = event_weights(result, table, labels)
    for c, name in enumerate(cw):
        raw = result.raw_hists[c]
        weighted = np.histogram2d(np.clip(table["x"][labels == name], 0, 4), np.clip(table["y"][labels == name], 0, 20),
                                  bins=[X_EDGES, Y_EDGES], weights=weights[labels == name])[0]
        on_plateau = raw >= result.reference_values[c]
        assert on_plateau.sum() >= 2
        np.testing.assert_allclose(weighted[on_plateau], weighted[on_plateau][0], rtol=1e-9)
        assert np.all(weighted[~on_plateau] < weighted[on_plateau][0] * (1 + 1e-9))
    sums = np.array([weights[labels == name].sum() for name in cw])
    np.testing.assert_allclose(sums / np.array(list(cw.values())), sums[0] / cw["a"], rtol=1e-9)
    assert weights.max() <= 0.9 + 1e-12


def test_discard_under_overflow_and_unknown_class_get_zero() -> None:
    table = {"x": np.array([-1.0, 0.5, 5.0, 0.5, 0.5, 1.5, 3.0]), "y": np.array([5.0, 5.0, 5.0, 25.0, 5.0, 15.0, 15.0])}
    labels = np.array(["a", "a", "a", "a", "zzz", "a", "a"])
    kwargs = {"class_labels": labels, "classes": ["a"], "vars": {"x": X_EDGES, "y": Y_EDGES}, "method": "flat",
              "threshold": 0.5}
    discarded = compute_reweight_maps(table, discard_under_overflow=True, **kwargs)
    w = event_weights(discarded, table, labels)
    assert w[0] == w[2] == w[3] == 0.0  # outside the x or y range
    assert w[4] == 0.0  # not a class
    assert np.all(w[[1, 5, 6]] > 0)
    assert discarded.raw_hists.sum() == 3
    clipped = compute_reweight_maps(table, discard_under_overflow=False, **kwargs)
    wc = event_weights(clipped, table, labels)
    assert wc[4] == 0.0
    assert wc[0] == wc[1] > 0  # x = -1 is clipped into the first x bin, beside x = 0.5
    assert wc[2] > 0 and wc[3] > 0  # x = 5 and y = 25 land in the last bins
    assert clipped.raw_hists[0, 0, 0] == 2 and clipped.raw_hists[0, 0, 1] == 1 and clipped.raw_hists[0, 2, 0] == 1
    assert clipped.raw_hists.sum() == 6


def test_integer_labels_and_dataframe() -> None:
    pd = pytest.importorskip("pandas")
    table, labels = small_table(seed=2)
    codes = np.select([labels == "a", labels == "b"], [0, 1], default=7)
    frame = pd.DataFrame(table)
    r_int = compute_reweight_maps(frame, class_labels=codes, classes=[0, 1], vars={"x": X_EDGES, "y": Y_EDGES},
                                  method="ref", class_weights=[1.0, 1.0], threshold=0.1)
    r_str = compute_reweight_maps(table, class_labels=labels, classes=["a", "b"], vars={"x": X_EDGES, "y": Y_EDGES},
                                  method="ref", class_weights={"a": 1.0, "b": 1.0}, threshold=0.1)
    np.testing.assert_array_equal(event_weights(r_int, frame, codes), event_weights(r_str, table, labels))


def test_sampling_with_weights_gives_class_fractions_and_flat_distributions() -> None:
    rng = np.random.default_rng(12345)
    n = 300_000
    labels = rng.choice(np.array(["qq", "tt", "ww"]), n, p=[0.6, 0.3, 0.1])
    scale = np.select([labels == "qq", labels == "tt"], [1.0, 2.0], 3.0)
    table = {"x": rng.gamma(2.0, scale), "y": rng.exponential(8.0 * scale)}
    xe, ye = [0.0, 1, 2, 3, 4, 6, 8, 12], [0.0, 5, 10, 20, 40]
    cw = {"qq": 1.0, "tt": 2.0, "ww": 1.0}
    result = compute_reweight_maps(table, class_labels=labels, classes=list(cw), vars={"x": xe, "y": ye},
                                   method="flat", class_weights=cw, threshold=0.3, discard_under_overflow=False)
    w = event_weights(result, table, labels)
    draws = rng.choice(n, size=200_000, replace=True, p=w / w.sum())
    fractions = np.array([np.mean(labels[draws] == c) for c in cw])
    np.testing.assert_allclose(fractions, [0.25, 0.5, 0.25], atol=0.01)
    for c, name in enumerate(cw):
        picked = draws[labels[draws] == name]
        x, y = np.clip(table["x"][picked], 0, 12), np.clip(table["y"][picked], 0, 40)
        counts = np.histogram2d(x, y, bins=[xe, ye])[0]
        on_plateau = result.raw_hists[c] >= result.reference_values[c]
        observed = counts[on_plateau]
        expected = observed.mean()
        chi2_per_dof = np.sum((observed - expected) ** 2 / expected) / (observed.size - 1)
        assert observed.size >= 5 and chi2_per_dof < 2.0, (name, observed)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vars": {"x": X_EDGES}}, "exactly 2 variables"),
        ({"vars": {"x": X_EDGES, "y": Y_EDGES, "z": [0, 1]}}, "exactly 2 variables"),
        ({"vars": {"x": [0, 2, 1], "y": Y_EDGES}}, "vars\\['x'\\].*strictly increasing"),
        ({"vars": {"x": [0], "y": Y_EDGES}}, "at least 2 bin edges"),
        ({"vars": {"x": X_EDGES, "nope": Y_EDGES}}, "missing column 'nope'"),
        ({"method": "flatten"}, "method"),
        ({"threshold": 10}, "threshold.*percent"),
        ({"class_weights": {"a": 1.0}}, "class_weights.*missing \\['b'\\]"),
        ({"class_weights": {"a": 1.0, "b": 0.0}}, "class_weights.*> 0"),
        ({"classes": ["a", "b", "nobody"], "class_weights": None}, "class 'nobody': no events"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_problem(kwargs: dict, message: str) -> None:
    table, labels = small_table()
    args = {"class_labels": labels, "classes": ["a", "b"], "vars": {"x": X_EDGES, "y": Y_EDGES}, "method": "flat",
            "class_weights": {"a": 1.0, "b": 1.0}, "threshold": 0.1, "discard_under_overflow": False}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        compute_reweight_maps(table, **args)


# ------------------------------------------------------------------------------------------------
# The stage: shards in, weights/histograms/plot/provenance out.
# ------------------------------------------------------------------------------------------------
PARAMS = {
    "method": "flat",
    "class_column": "sample",
    "vars": {"n_elements": [0, 5, 10, 20, 40], "genmet": [0, 5, 10, 20, 40, 400]},
    "class_weights": {"ttbar": 1.0, "qq": 1.0},
    "threshold": 0.1,
    "discard_under_overflow": False,
}


def write_shard(path: Path, sample: str, shard: int, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_el = rng.integers(0, 50 if sample == "ttbar" else 25, n).astype(np.int32)
    events = {
        "event_id": shard * 2**32 + np.arange(n, dtype=np.int64),
        "sample": [sample] * n,
        "split": rng.choice(["train", "val", "test"], n, p=[0.7, 0.1, 0.2]).tolist(),
        "X": ak.unflatten(np.zeros((int(n_el.sum()), 17), np.float32), n_el),
        "n_elements": n_el,
        "genmet": rng.exponential(15.0, n).astype(np.float32),
    }
    write_parquet_atomic(ak.zip(events, depth_limit=1), path)
    return {k: np.asarray(v) if not isinstance(v, ak.Array) else v for k, v in events.items()}


@pytest.fixture()
def shards(tmp_path: Path) -> tuple[list[Path], dict[str, np.ndarray]]:
    paths, parts = [], []
    for i, (sample, shard) in enumerate([("ttbar", 0), ("ttbar", 1), ("qq", 0)]):
        path = tmp_path / f"{sample}_{shard}.parquet"
        parts.append(write_shard(path, sample, shard, 300, seed=i))
        paths.append(path)
    merged = {k: np.concatenate([p[k] for p in parts]) for k in ("event_id", "sample", "split", "n_elements", "genmet")}
    return paths, merged


def test_stage_outputs(tmp_path: Path, shards) -> None:
    paths, events = shards
    out = tmp_path / "out"
    compute_weights_from_files(paths, params=PARAMS, output=out / "w.parquet", histograms=out / "h.json",
                               plot=out / "w.png", provenance=out / "prov.json")
    table = pq.read_table(out / "w.parquet")
    assert table.column_names == ["sample", "event_id", "weight"]
    assert str(table.schema.field("weight").type) == "float"
    train = events["split"] == "train"
    assert table.num_rows == train.sum()
    keys = list(zip(table.column("sample").to_pylist(), table.column("event_id").to_pylist()))
    assert keys == sorted(zip(events["sample"][train].tolist(), events["event_id"][train].tolist()))

    sub = {k: v[train] for k, v in events.items()}
    result = compute_reweight_maps(sub, class_labels=sub["sample"], classes=["ttbar", "qq"], vars=PARAMS["vars"],
                                   method="flat", class_weights=PARAMS["class_weights"], threshold=0.1,
                                   discard_under_overflow=False)
    sub_keys = zip(sub["sample"].tolist(), sub["event_id"].tolist(), strict=True)
    expected = dict(zip(sub_keys, event_weights(result, sub, sub["sample"]), strict=True))
    np.testing.assert_allclose(table.column("weight").to_numpy(), [expected[k] for k in keys], rtol=1e-6)

    doc = json.loads((out / "h.json").read_text())
    assert doc["classes"] == ["ttbar", "qq"]
    assert doc["vars"] == {k: [float(e) for e in v] for k, v in PARAMS["vars"].items()}
    assert np.array(doc["weight_maps"]["qq"]).shape == (4, 5)
    assert np.array(doc["raw_histograms"]["ttbar"]).sum() == (sub["sample"] == "ttbar").sum()
    assert doc["stats"]["events"] == train.sum()
    ttbar, qq = doc["stats"]["per_class"]["ttbar"], doc["stats"]["per_class"]["qq"]
    assert ttbar["sum_of_weights"] == pytest.approx(qq["sum_of_weights"], rel=1e-9)
    assert 0 <= doc["stats"]["zero_weight_fraction"] < 1
    assert (out / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    prov = json.loads((out / "prov.json").read_text())
    assert prov["stage"] == "weights" and prov["config"] == PARAMS
    assert sorted(p.name for p in out.iterdir()) == ["h.json", "prov.json", "w.parquet", "w.png"]


def test_stage_through_cli(tmp_path: Path, shards) -> None:
    paths, _ = shards
    out = tmp_path / "cli"
    code = cli_main(["weights", *map(str, paths), "--params", json.dumps({**PARAMS, "method": "ref"}),
                     "-o", str(out / "w.parquet"), "--histograms", str(out / "h.json"), "--plot", str(out / "p.png")])
    assert code == 0
    assert pq.read_table(out / "w.parquet").num_rows > 0


def test_stage_errors_name_file_and_problem(tmp_path: Path, shards) -> None:
    paths, _ = shards
    out = {"output": tmp_path / "w.parquet", "histograms": tmp_path / "h.json", "plot": tmp_path / "p.png",
           "provenance": None}
    no_genmet = tmp_path / "no_genmet.parquet"
    write_parquet_atomic(ak.zip({"event_id": np.arange(3), "sample": ["qq"] * 3, "split": ["train"] * 3,
                                 "n_elements": np.arange(3, dtype=np.int32)}), no_genmet)
    with pytest.raises(ValueError, match="no_genmet.parquet: missing required column.*genmet"):
        compute_weights_from_files([*paths, no_genmet], params=PARAMS, **out)
    with pytest.raises(ValueError, match="exactly 2 variables"):
        compute_weights_from_files(paths, params={**PARAMS, "vars": {"genmet": [0, 1]}}, **out)
    with pytest.raises(ValueError, match="unknown key.*reweight_threshold"):
        compute_weights_from_files(paths, params={**PARAMS, "reweight_threshold": 10}, **out)
    with pytest.raises(ValueError, match=r"training split of 3 file.*weights.class_weights names \[.ww.\], which have no events in column .sample."):
        compute_weights_from_files(paths, params={**PARAMS, "class_weights": {"ttbar": 1, "qq": 1, "ww": 1}}, **out)
    with pytest.raises(ValueError, match="appears more than once"):
        compute_weights_from_files([paths[0], paths[0]], params=PARAMS, **out)
    assert not any(tmp_path.glob("w.parquet")) and not any(tmp_path.glob("h.json"))


@pytest.mark.parametrize("discard", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
@pytest.mark.parametrize("n_edges", [5, LINEAR_SEARCH_MAX_EDGES + 7])  # the counting and the binary search
def test_compiled_binning_matches_the_numpy_statement(discard: bool, dtype: type, n_edges: int) -> None:
    """The fused kernel gives each row the cell that bin_indices and the class test say, edges and NaN included."""
    rng = np.random.default_rng(n_edges)
    xe = np.sort(rng.uniform(-50.0, 50.0, n_edges))
    ye = np.linspace(0.0, 10.0, 4)
    n = 20_000
    x = rng.uniform(-80.0, 80.0, n)
    x[:n_edges] = xe  # every edge exactly, the closed last one included
    y = rng.uniform(-2.0, 12.0, n)
    y[n_edges:n_edges + 4] = ye
    if np.issubdtype(dtype, np.floating):
        x[rng.random(n) < 0.02] = np.nan
        y[rng.random(n) < 0.02] = np.nan
    x = x.astype(dtype) if np.issubdtype(dtype, np.floating) else np.round(x).astype(dtype)
    codes = rng.integers(-1, 3, n).astype(np.int32)
    cells, hists = histogram._locate((xe, ye), ("x", "y"), {"x": x, "y": y}, codes, discard, 3)

    ix, okx = histogram.bin_indices(x.astype(np.float64), xe, discard)
    iy, oky = histogram.bin_indices(y.astype(np.float64), ye, discard)
    ok = okx & oky & (codes >= 0)
    expected = np.where(ok, codes * (xe.size - 1) * (ye.size - 1) + ix * (ye.size - 1) + iy, -1)
    np.testing.assert_array_equal(cells, expected)
    counted = np.bincount(expected[ok], minlength=3 * (xe.size - 1) * (ye.size - 1))
    np.testing.assert_array_equal(hists.reshape(-1), counted)


def test_integer_labels_take_the_table_path_and_agree_with_hashing() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(-5, 200, 10_000).astype(np.int16)
    classes = [7, 150, 3, 199]
    table_path = histogram.class_indices(labels, classes)
    hashed = histogram.class_indices(labels.astype(str), [str(c) for c in classes])  # the generic path
    np.testing.assert_array_equal(table_path, hashed)
    assert set(np.unique(table_path)) == {-1, 0, 1, 2, 3}
    wide = histogram.class_indices(np.array([0, 2**40, 5]), [2**40, 0])  # span too wide for a table
    np.testing.assert_array_equal(wide, [1, 0, -1])

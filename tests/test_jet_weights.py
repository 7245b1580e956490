"""Jet sampling weights: against a hand computation, through the trainer's reader and sampler, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from colliderflow.train.sampling import EpochBatchSampler, read_sampling_weights
from colliderflow.train.jet_data import JetDataset, split_train_val, synthetic_jet_table
from colliderflow.jetschema import JETCLASS2_SCHEMA
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.weights.jet_files import compute_jet_weights_from_files
from colliderflow.weights.weaver_config import weaver_data_config

LABEL = {name: i for i, name in enumerate(JETCLASS2_LABELS)}
BB, CC, LIGHT = LABEL["label_X_bb"], LABEL["label_X_cc"], LABEL["label_QCD_light"]
PT_EDGES = [200.0, 300.0, 450.0, 600.0, 1000.0]
MASS_EDGES = [0.0, 50.0, 120.0, 300.0]
PARAMS = {
    "method": "flat",
    "vars": {"jet_pt": PT_EDGES, "jet_sdmass": MASS_EDGES},
    "class_weights": {"X_bb": 1.0, "label_QCD_light": 2.5},  # both spellings of a label name
    "threshold": 0.1,
    "discard_under_overflow": False,
}


def jet_table(pt: np.ndarray, mass: np.ndarray, label: np.ndarray, seed: int = 0) -> pa.Table:
    """A JetClass-II table whose reweighting columns hold the given values."""
    table = synthetic_jet_table(len(pt), seed=seed, min_particles=1, max_particles=3)
    for name, values in (("jet_pt", pt), ("jet_sdmass", mass), ("jet_label", label)):
        field = JETCLASS2_SCHEMA.field(name)
        array = pa.array(np.asarray(values).astype(field.type.to_pandas_dtype()), field.type)
        table = table.set_column(table.schema.get_field_index(name), field, array)
    return table


def outputs(directory: Path) -> dict[str, Path]:
    return {"output": directory / "w.parquet", "histograms": directory / "h.json", "plot": directory / "w.png",
            "provenance": directory / "provenance.json"}


# ------------------------------------------------------------------------------------------------
# An independent computation: loops for the binning, numpy for the maps, written from the rules.
# ------------------------------------------------------------------------------------------------
def hand_bin(value: float, edges: list[float], discard: bool) -> int | None:
    if value < edges[0] or value > edges[-1]:
        if discard:
            return None
        value = min(max(value, edges[0]), edges[-1])
    for i in range(len(edges) - 2):
        if edges[i] <= value < edges[i + 1]:
            return i
    return len(edges) - 2


def hand_weights(pt, mass, label, classes: list[int], cw: list[float], method: str, threshold: float,
                 discard: bool) -> tuple[np.ndarray, np.ndarray]:
    bins = [(hand_bin(p, PT_EDGES, discard), hand_bin(m, MASS_EDGES, discard)) for p, m in zip(pt, mass)]
    hists = np.zeros((len(classes), len(PT_EDGES) - 1, len(MASS_EDGES) - 1))
    for (i, j), lab in zip(bins, label):
        if lab in classes and i is not None and j is not None:
            hists[classes.index(lab), i, j] += 1
    shapes = np.zeros_like(hists)
    for c, h in enumerate(hists):
        if method == "flat":
            populated = h[h > 0]
            plateau = np.percentile(populated[populated > 0.01 * np.median(populated)], 100 * threshold)
            shapes[c][h > 0] = np.minimum(1.0, plateau / h[h > 0])
        else:
            ratio = np.zeros_like(h)
            ratio[h > 0] = hists[0][h > 0] / h[h > 0]
            shapes[c] = np.minimum(1.0, ratio / np.percentile(ratio[ratio > 0], 100 * (1 - threshold)))
    n = (hists * shapes).sum(axis=(1, 2)) / np.array(cw)
    maps = shapes * (0.9 * n.min() / n)[:, None, None]
    out = np.array([0.0 if lab not in classes or i is None or j is None else maps[classes.index(lab), i, j]
                    for (i, j), lab in zip(bins, label)])
    return out, hists


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[str, np.ndarray]]:
    """Three files (stems out of path order) with edge values, other classes and out-of-table labels."""
    rng = np.random.default_rng(4)
    n = 500
    label = rng.choice([BB, LIGHT, CC, -1, 5000], n, p=[0.45, 0.4, 0.1, 0.03, 0.02])
    pt = np.where(label == BB, rng.gamma(3.0, 150.0, n), rng.uniform(150.0, 1100.0, n))
    mass = np.where(label == BB, rng.normal(125.0, 40.0, n), rng.exponential(60.0, n))
    pt[:4], mass[:4] = [200.0, 1000.0, 450.0, 100.0], [300.0, 0.0, 50.0, 120.0]  # edges; 100 is underflow
    root = tmp_path_factory.mktemp("jets")
    cuts = [0, 150, 320, n]
    paths = [root / "b" / "val_0003.parquet", root / "a" / "train_0001.parquet", root / "train_0000.parquet"]
    for path, a, b in zip(paths, cuts, cuts[1:]):
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(jet_table(pt[a:b], mass[a:b], label[a:b], seed=a), path)
    return paths, {"pt": pt, "mass": mass, "label": label, "cuts": np.array(cuts)}


def in_key_order(paths: list[Path], values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    parts = {p.stem: values[a:b] for p, a, b in zip(paths, cuts, cuts[1:])}
    return np.concatenate([parts[s] for s in sorted(parts)])


@pytest.mark.parametrize("method", ["flat", "ref"])
@pytest.mark.parametrize("discard", [False, True])
def test_matches_hand_computation(small_files, tmp_path: Path, method: str, discard: bool) -> None:
    paths, jets = small_files
    params = {**PARAMS, "method": method, "discard_under_overflow": discard}
    summary = compute_jet_weights_from_files(paths, params=params, label_table=JETCLASS2_LABELS, **outputs(tmp_path))
    want, hists = hand_weights(jets["pt"], jets["mass"], jets["label"], [BB, LIGHT], [1.0, 2.5], method, 0.1,
                               discard)
    table = pq.read_table(tmp_path / "w.parquet")
    assert table.column_names == ["sample", "event_id", "weight"]
    assert table.schema.field("weight").type == pa.float32()
    keys = list(zip(table.column("sample").to_pylist(), table.column("event_id").to_pylist()))
    sizes = np.diff(jets["cuts"])
    stems = {p.stem: int(s) for p, s in zip(paths, sizes)}
    assert keys == [(s, r) for s in sorted(stems) for r in range(stems[s])]  # sorted by (sample, event_id)
    np.testing.assert_allclose(table.column("weight").to_numpy(), in_key_order(paths, want, jets["cuts"]),
                               rtol=1e-6, atol=0)

    doc = json.loads((tmp_path / "h.json").read_text())
    assert doc["classes"] == ["X_bb", "label_QCD_light"]
    assert doc["class_jet_label"] == {"X_bb": BB, "label_QCD_light": LIGHT}
    np.testing.assert_array_equal(doc["raw_histograms"]["X_bb"], hists[0])
    np.testing.assert_array_equal(doc["raw_histograms"]["label_QCD_light"], hists[1])
    not_a_class = int(np.sum(~np.isin(jets["label"], [BB, LIGHT])))
    assert summary["jets"] == 500 and summary["jets_not_in_any_class"] == not_a_class
    assert summary["per_class"]["X_bb"]["jets"] == int(np.sum(jets["label"] == BB))
    sums = [summary["per_class"][c]["sum_of_weights"] for c in ("X_bb", "label_QCD_light")]
    assert sums[1] / sums[0] == pytest.approx(2.5, rel=1e-9)
    record = json.loads((tmp_path / "provenance.json").read_text())
    assert record["stage"] == "jet_weights" and record["config"] == json.loads(json.dumps(params))
    assert (tmp_path / "w.png").read_bytes()[:4] == b"\x89PNG"


def test_loads_with_the_trainers_reader_in_its_key_order(small_files, tmp_path: Path) -> None:
    """read_sampling_weights with TaggingTask's keys (JetSubset.keys) returns each jet's own weight."""
    paths, jets = small_files
    compute_jet_weights_from_files(paths, params=PARAMS, label_table=JETCLASS2_LABELS, **outputs(tmp_path))
    want, _ = hand_weights(jets["pt"], jets["mass"], jets["label"], [BB, LIGHT], [1.0, 2.5], "flat", 0.1, False)
    dataset = JetDataset(paths, labels=[BB, LIGHT, CC])
    train_set, _ = split_train_val(dataset, 0.2)
    keys = train_set.keys()
    weights = read_sampling_weights(tmp_path / "w.parquet", keys).numpy()
    offset = {p.stem: int(a) for p, a in zip(paths, jets["cuts"])}
    expected = np.array([want[offset[stem] + row] for stem, row in keys])
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    assert np.all(weights[dataset.classes[train_set.indices] == 2] == 0)  # X_cc: trained on, not reweighted
    by_arrays = read_sampling_weights(tmp_path / "w.parquet", train_set.key_arrays()).numpy()
    np.testing.assert_array_equal(by_arrays, weights)  # the same join without tuples


@pytest.mark.parametrize("layout", ["as_written", "sorted_small_groups", "shuffled"])
def test_item_weights_joined_a_range_at_a_time_are_the_same(small_files, tmp_path: Path, layout: str) -> None:
    """read_item_weights on the training set itself (keys derived a range at a time, the file's row groups
    picked by their statistics) spills exactly the weights of the whole join, whatever the range size or
    the file's order."""
    from colliderflow.train.sampling import read_item_weights

    paths, _ = small_files
    compute_jet_weights_from_files(paths, params=PARAMS, label_table=JETCLASS2_LABELS, **outputs(tmp_path))
    path = tmp_path / "w.parquet"
    table = pq.read_table(path)
    if layout == "sorted_small_groups":
        pq.write_table(table.sort_by([("sample", "ascending"), ("event_id", "ascending")]), path, row_group_size=23)
    elif layout == "shuffled":
        pq.write_table(table.take(np.random.default_rng(5).permutation(table.num_rows)), path, row_group_size=23)
    dataset = JetDataset(paths, labels=[BB, LIGHT, CC])
    train_set, val_set = split_train_val(dataset, 0.2)
    for keys in (train_set, val_set, dataset):
        whole = read_sampling_weights(path, keys.key_arrays()).numpy()
        for chunk in (1, 37, 160, len(keys) + 5):
            spilled = read_item_weights(path, keys, chunk_items=chunk)
            assert not spilled.in_memory
            np.testing.assert_array_equal(spilled.read(0, len(keys)), whole)
            spilled.close()
        a, e = len(keys) // 4, 3 * len(keys) // 4
        sliced = keys.key_slice(a, e)
        want = keys.key_arrays()
        np.testing.assert_array_equal(np.asarray(sliced.samples), np.asarray(want.samples)[a:e])
        np.testing.assert_array_equal(sliced.event_ids, want.event_ids[a:e])


def test_directory_input_and_weaver_config_share_the_section(small_files, tmp_path: Path) -> None:
    paths, _ = small_files
    from_files, from_dir = tmp_path / "files", tmp_path / "dir"
    compute_jet_weights_from_files(paths, params=PARAMS, label_table=JETCLASS2_LABELS, **outputs(from_files))
    compute_jet_weights_from_files([paths[1].parent, paths[0].parent, paths[2]], params=PARAMS,
                                   label_table=JETCLASS2_LABELS, **outputs(from_dir))
    assert pq.read_table(from_files / "w.parquet").equals(pq.read_table(from_dir / "w.parquet"))
    config = weaver_data_config({**PARAMS, "class_column": "jet_label"})
    assert config["weights"]["reweight_classes"] == ["label_X_bb", "label_QCD_light"]


# ------------------------------------------------------------------------------------------------
# Sampling: the weights do what they are for when the trainer's sampler draws with them.
# ------------------------------------------------------------------------------------------------
SAMPLING_PT_EDGES = [200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 1000.0]
SAMPLING_MASS_EDGES = [0.0, 50.0, 100.0, 200.0]


def test_sampling_with_the_trainers_sampler_gives_class_ratio_and_flat_pt(tmp_path: Path) -> None:
    """Two classes with different pT spectra; flat method, threshold 0 so every populated bin is on the
    plateau (each holds the same weighted number of jets), class weights 1 : 3."""
    rng = np.random.default_rng(2024)
    n = 40_000
    label = np.where(rng.uniform(size=n) < 0.5, BB, LIGHT)
    falling = 200.0 + rng.exponential(250.0, n)
    rising = 200.0 + 800.0 * rng.beta(2.0, 1.0, n)
    pt = np.where(label == BB, falling, rising)
    mass = np.where(label == BB, rng.exponential(70.0, n), rng.uniform(20.0, 200.0, n))
    paths = []
    for k, chunk in enumerate(np.array_split(np.arange(n), 4)):
        path = tmp_path / "train" / f"train_{k:04d}.parquet"
        path.parent.mkdir(exist_ok=True)
        pq.write_table(jet_table(pt[chunk], mass[chunk], label[chunk], seed=k), path)
        paths.append(path)
    params = {"method": "flat", "vars": {"jet_pt": SAMPLING_PT_EDGES, "jet_sdmass": SAMPLING_MASS_EDGES},
              "class_weights": {"X_bb": 1.0, "QCD_light": 3.0}, "threshold": 0.0, "discard_under_overflow": False}
    compute_jet_weights_from_files([tmp_path / "train"], params=params, label_table=JETCLASS2_LABELS,
                                   **outputs(tmp_path / "weights"))

    dataset = JetDataset(paths, labels=[BB, LIGHT])
    train_set, _ = split_train_val(dataset, 0.0)
    weights = read_sampling_weights(tmp_path / "weights" / "w.parquet", train_set.keys())
    sampler = EpochBatchSampler(len(train_set), batch_size=500, seed=7, weights=weights)
    draws = np.concatenate([sampler.epoch_order(epoch).numpy() for epoch in range(3)])
    classes = dataset.classes[train_set.indices][draws]
    jet_pt = np.concatenate([pq.read_table(p, columns=["jet_pt"]).column(0).to_numpy() for p in paths])
    drawn_pt = np.clip(jet_pt[train_set.indices][draws], SAMPLING_PT_EDGES[0], SAMPLING_PT_EDGES[-1])

    # (a) class fractions follow class_weights (1 : 3), within 5 standard deviations
    fraction = np.mean(classes == 0)
    assert abs(fraction - 0.25) < 5 * np.sqrt(0.25 * 0.75 / draws.size), fraction

    # (b) within each class, the drawn pT distribution is flat over the bins (all populated here)
    doc = json.loads((tmp_path / "weights" / "h.json").read_text())
    for c, name in enumerate(["X_bb", "QCD_light"]):
        raw = np.array(doc["raw_histograms"][name])
        assert raw.min() > 0.01 * np.median(raw)  # no sparse bin: the plateau is the smallest bin
        unweighted = raw.sum(axis=1)
        assert unweighted.max() > 2 * unweighted.min()  # the spectrum really is not flat before
        counts = np.histogram(drawn_pt[classes == c], bins=SAMPLING_PT_EDGES)[0]
        expected = counts.sum() / counts.size
        chi2_per_dof = np.sum((counts - expected) ** 2 / expected) / (counts.size - 1)
        assert chi2_per_dof < 3.0, (name, counts)
        np.testing.assert_allclose(counts / expected, 1.0, atol=5 / np.sqrt(expected))


# ------------------------------------------------------------------------------------------------
# Errors name the problem, and nothing is written.
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    ({"class_weights": {"X_bb": 1.0, "X_zz": 1.0}}, "jet_weights.class_weights: 'X_zz' is not in the JetClass-II label table"),
    ({"vars": {"jet_pt": PT_EDGES, "part_px": [0, 1]}}, "'part_px' is not a per-jet JetClass-II column"),
    ({"vars": {"jet_pt": PT_EDGES, "jet_label": [0, 1]}}, "'jet_label' is not a per-jet"),
    ({"vars": {"jet_pt": PT_EDGES}}, "exactly 2 variables"),
    ({"class_column": "sample"}, "jet classes live in jet_label"),
    ({"reweight_threshold": 10}, "unknown key.*reweight_threshold"),
    ({"class_weights": {"X_bb": 1.0, "X_ss": 1.0}}, "class 'X_ss': no events"),
    ({"class_weights": {"X_bb": 1.0, "QCD_light": 0}}, "jet_weights.class_weights.QCD_light: must be a positive number"),
])
def test_bad_params(small_files, tmp_path: Path, change: dict, message: str) -> None:
    paths, _ = small_files
    with pytest.raises(ValueError, match=message):
        compute_jet_weights_from_files(paths, params={**PARAMS, **change}, label_table=JETCLASS2_LABELS,
                                       **outputs(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_bad_inputs(small_files, tmp_path: Path) -> None:
    paths, _ = small_files
    out = outputs(tmp_path / "out")
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(pq.read_table(paths[0]).drop_columns(["part_px"]), wrong)
    with pytest.raises(ValueError, match=r"wrong\.parquet: not a JetClass-II jet file.*part_px"):
        compute_jet_weights_from_files([*paths, wrong], params=PARAMS, label_table=JETCLASS2_LABELS, **out)
    twin = tmp_path / "other" / paths[0].name
    twin.parent.mkdir()
    twin.write_bytes(paths[0].read_bytes())
    with pytest.raises(ValueError, match="share the file stem 'val_0003'"):
        compute_jet_weights_from_files([*paths, twin], params=PARAMS, label_table=JETCLASS2_LABELS, **out)
    with pytest.raises(ValueError, match="no input"):
        compute_jet_weights_from_files([], params=PARAMS, label_table=JETCLASS2_LABELS, **out)
    assert not (tmp_path / "out").exists()


def test_plot_counts_jets_not_events(small_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The before/after plot of the jet stage names its rows jets (the event stage's say events)."""
    import matplotlib.pyplot as plt

    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", figures.append)
    paths, _ = small_files
    compute_jet_weights_from_files(paths, params=PARAMS, label_table=JETCLASS2_LABELS, **outputs(tmp_path))
    texts = [ax.get_title() + " " + ax.get_ylabel() for ax in figures[-1].axes]
    assert texts and all(" jets" in t and "events" not in t for t in texts), texts
    for fig in figures:
        close(fig)

"""The streaming jet reader: batched reads across row groups with a small cache equal jet-by-jet reads,
blocks follow the row groups, and PF keys come from the TFDS dataset's keys.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from colliderflow.train.jet_data import JetDataset, collate_jets, split_train_val
from colliderflow.train.jet_data import synthetic_jet_table


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("stream")
    paths = []
    for k in range(3):
        path = root / f"s{k}.parquet"
        pq.write_table(synthetic_jet_table(90, seed=k, labels=(0, 1, 2)), path, row_group_size=25)
        paths.append(path)
    return paths


def test_batched_read_equals_jet_by_jet(shards: list[Path]) -> None:
    ds = JetDataset(shards, labels=[2, 0], cache_bytes=1)  # keeps one row group: every batch evicts
    rng = np.random.default_rng(0)
    for _ in range(5):
        idx = rng.integers(0, len(ds), 40)  # with repeats, across files and row groups, in random order
        batched = collate_jets(ds.__getitems__(idx.tolist()), max_particles=20)
        single = collate_jets([ds[i] for i in idx.tolist()], max_particles=20)
        for name in ("features", "p4", "mask", "label"):
            assert torch.equal(getattr(batched, name), getattr(single, name)), name


def test_keys_and_blocks_follow_the_files(shards: list[Path]) -> None:
    ds = JetDataset(shards, labels=[0, 1, 2])
    assert len(ds) == 270 and ds.block_ends().tolist() == [25, 50, 75, 90, 115, 140, 165, 180, 205, 230, 255, 270]
    labels = np.concatenate([pq.read_table(p, columns=["jet_label"]).column(0).to_numpy() for p in shards])
    np.testing.assert_array_equal(np.asarray(ds.labels)[ds.classes], labels)
    train, _ = split_train_val(ds, 0.2)
    ends = train.block_ends()
    assert ends[-1] == len(train) and (np.diff(ends) > 0).all()
    keys = train.key_arrays()
    assert list(np.asarray(keys.samples)[:2]) == ["s0", "s0"] and keys.event_ids.dtype.kind == "i"


def test_pf_keys_file_matches_the_records(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow_datasets")
    import awkward as ak

    from colliderflow.io.parquet import write_parquet_atomic
    from colliderflow.io.tfds_keys import KEYS_FILE
    from colliderflow.io.tfds_writer import build_tfds
    from colliderflow.train.data import event_index, event_keys, open_splits

    rng = np.random.default_rng(1)
    n = 30
    counts = rng.integers(1, 6, n)

    def block(width: int, c: np.ndarray) -> ak.Array:
        return ak.unflatten(rng.normal(size=(int(c.sum()), width)).astype(np.float32), c)

    table = ak.zip({"event_id": np.arange(n, dtype=np.int64) * 7, "sample": ["qq"] * n,
                    "split": rng.choice(["train", "val"], n).tolist(), "X": block(17, counts),
                    "ytarget": block(8, counts), "ycand": block(8, counts), "n_elements": counts.astype(np.int32),
                    "genmet": np.ones(n, np.float32), "genjets": block(4, counts), "targetjets": block(4, counts),
                    "gen_unassigned_energy": np.zeros(n, np.float32)}, depth_limit=1)
    write_parquet_atomic(table, tmp_path / "qq.parquet")
    version_dir = build_tfds([tmp_path / "qq.parquet"], name="keys", output_dir=tmp_path / "tfds")
    assert (version_dir / KEYS_FILE).is_file()
    train = open_splits([tmp_path / "tfds"], "train")
    samples, ids, lengths = event_index(train)  # from the keys file
    want = event_keys(train)  # by decoding every record
    assert list(zip(np.asarray(samples).tolist(), ids.tolist(), strict=True)) == want
    assert lengths.tolist() == [len(train[i]["X"]) for i in range(len(train))]


def test_training_and_prediction_do_not_import_numba() -> None:
    """numba (~70 MB resident) is for the ntuplizer's label matching; the training and prediction
    processes need only the label table, which lives in colliderflow.jetclass2."""
    import subprocess
    import sys

    script = ("import sys, colliderflow.train.loop, colliderflow.train.tasks, colliderflow.train.jet_data, "
              "colliderflow.evaluate.tagging.predict; print(sorted(m for m in sys.modules if m.startswith('numba')))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_dropped_labels_keep_rows_and_classes_without_per_jet_arrays(shards: list[Path]) -> None:
    """With a label left out, each jet is the file row it should be, with its own class and constituent
    count (read from the files here), and the dataset holds no array with an entry per jet."""
    ds = JetDataset(shards, labels=[2, 0])
    tables = [pq.read_table(p, columns=["jet_label", "jet_nparticles"]) for p in shards]
    label = np.concatenate([t.column("jet_label").to_numpy() for t in tables])
    n_part = np.concatenate([t.column("jet_nparticles").to_numpy() for t in tables])
    file_row = np.concatenate([np.arange(t.num_rows) for t in tables])
    kept = label != 1
    assert len(ds) == int(kept.sum())
    np.testing.assert_array_equal(ds.rows, file_row[kept])
    np.testing.assert_array_equal(np.asarray(ds.labels)[ds.classes], label[kept])
    batch = collate_jets(ds.__getitems__(np.arange(len(ds))[::-1].tolist()), max_particles=1000)
    np.testing.assert_array_equal(batch.label.numpy(), ds.classes[::-1])
    np.testing.assert_array_equal(batch.mask.sum(1).numpy(), n_part[kept][::-1])
    per_jet = [k for k, v in vars(ds).items() if isinstance(v, np.ndarray) and len(v) >= len(ds)]
    assert per_jet == []

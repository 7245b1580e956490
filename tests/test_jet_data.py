"""The JetClass-II adapter (real example file and synthetic shards), bucketing, and tagger training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from colliderflow.train.sampling import EpochBatchSampler
from colliderflow.train.jet_data import (
    N_PARTICLE_FEATURES,
    JetDataset,
    collate_jets,
    split_train_val,
    synthetic_jet_table,
)
from colliderflow.jetschema import schema_differences
from colliderflow.models import load_trained
from colliderflow.train import train

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "jetclass2" / "JetClassII_example.parquet"

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TAGGER_PARAMS = {
    "model": "pelican",
    "pelican": {"embed_channels": 4, "hidden_channels": 8, "num_layers": 1, "readout_hidden": 16},
    "labels": [3, 7],
    "batch_size": 8, "max_steps": 6, "lr": 0.003, "warmup_steps": 1, "checkpoint_every": 3, "eval_every": 3,
    "log_every": 2, "device": "cpu", "val_fraction": 0.2,
}


@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("jets") / "synthetic.parquet"
    pq.write_table(synthetic_jet_table(60, seed=1, labels=(3, 7, 9)), path)
    return path


def test_synthetic_table_has_the_jetclass2_schema(shard: Path) -> None:
    assert schema_differences(pq.read_schema(shard)) == []


def test_labels_map_to_class_indices_and_others_are_dropped(shard: Path) -> None:
    raw = pq.read_table(shard, columns=["jet_label"]).column("jet_label").to_numpy()
    ds = JetDataset([shard], labels=[7, 3])
    assert len(ds) == int(np.isin(raw, [3, 7]).sum()) < len(raw)
    jet = ds[0]
    assert raw[jet["event_id"]] == [7, 3][jet["label"]]
    assert JetDataset([shard]).labels == [3, 7, 9]  # default: every label present, sorted


def test_split_is_disjoint_complete_and_seed_free(shard: Path) -> None:
    ds = JetDataset([shard], labels=[3, 7, 9])
    tr, va = split_train_val(ds, 0.25)
    assert sorted(tr.indices.tolist() + va.indices.tolist()) == list(range(len(ds)))
    assert 0 < len(va) < len(ds) / 2
    assert split_train_val(ds, 0.25)[1].indices.tolist() == va.indices.tolist()


def test_subset_is_a_bit_per_jet_and_maps_positions_like_an_index_array(tmp_path: Path) -> None:
    """JetSubset keeps a packed bit per jet and per-row-group counts (no index per jet); its positions map
    to the jets of the sorted index array of the hash split, in reads, keys and blocks alike."""
    import zlib

    from colliderflow.train.jet_data import JetSubset

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"train_{i}.parquet")
        pq.write_table(synthetic_jet_table(90, seed=20 + i, labels=(3, 7, 9)), paths[-1], row_group_size=11)
    ds = JetDataset(paths, labels=[3, 7])
    crc = np.array([zlib.crc32(s.encode()) for s in ds.stems], dtype=np.uint64)[ds.file_index]
    u = ((ds.rows.astype(np.uint64) * np.uint64(2654435761) + crc) % np.uint64(2**32)).astype(np.float64) / 2**32
    train_set, val_set = split_train_val(ds, 0.3)
    for subset, want in ((train_set, np.flatnonzero(u >= 0.3)), (val_set, np.flatnonzero(u < 0.3))):
        np.testing.assert_array_equal(subset.indices, want)
        from_list = JetSubset(ds, want)
        np.testing.assert_array_equal(from_list.indices, want)
        pos = np.random.default_rng(2).integers(0, len(want), 50)
        np.testing.assert_array_equal(subset.positions_to_jets(pos), want[pos])
        np.testing.assert_array_equal(subset.select(5, 40), want[5:40])
        got = subset.__getitems__(pos)
        np.testing.assert_array_equal(got.labels, ds.__getitems__(want[pos]).labels)
        assert subset[7]["event_id"] == ds[int(want[7])]["event_id"]
        ends = np.flatnonzero(np.diff(ds.group_of(want))) + 1  # where the old index array changed row group
        np.testing.assert_array_equal(subset.block_ends(), np.append(ends, len(want)))
        held = [v for v in vars(subset).values() if isinstance(v, np.ndarray)]
        assert sum(a.nbytes for a in held) <= len(ds) // 8 + 17 * (len(ds._group_start) + 1)
    assert np.array_equal(JetSubset.all(ds).indices, np.arange(len(ds)))
    with pytest.raises(ValueError, match="increasing jet indices"):
        JetSubset(ds, [3, 2])


def test_collate_pads_truncates_and_masks(shard: Path) -> None:
    ds = JetDataset([shard], labels=[3, 7, 9])
    jets = [ds[i] for i in range(5)]
    batch = collate_jets(jets, max_particles=12)
    n = [min(j["n_particles"], 12) for j in jets]
    assert batch.features.shape == (5, max(n), N_PARTICLE_FEATURES) and batch.p4.shape == (5, max(n), 4)
    assert batch.mask.sum(dim=1).tolist() == n
    assert (batch.p4[~batch.mask] == 0).all()
    torch.testing.assert_close(batch.p4[0, : n[0]], torch.from_numpy(jets[0]["p4"][: n[0]]))


@pytest.mark.skipif(not EXAMPLE.exists(), reason=f"{EXAMPLE} absent (the shared data folder is not mounted)")
def test_real_example_file() -> None:
    ds = JetDataset([EXAMPLE])
    assert len(ds) == 100
    table = pq.read_table(EXAMPLE, columns=["part_px", "part_py", "part_energy", "jet_pt", "jet_nparticles"])
    jet = ds[0]
    assert jet["n_particles"] == table.column("jet_nparticles")[0].as_py()
    torch.testing.assert_close(torch.from_numpy(jet["p4"][:, 3]),
                               torch.tensor(table.column("part_energy")[0].as_py(), dtype=torch.float32))
    # The features are the fixed-normalised ParT inputs: mostly O(1), all finite.
    assert np.isfinite(ds.features).all() and np.abs(np.median(ds.features, axis=0)).max() < 5
    # log(pT / jet pT) of the constituents, raw, is ≤ ~0 (each carries part of the jet).
    assert (ds.features[:, 2] / 0.7 - 4.7 < 0.1).all()


def test_length_bucketing_groups_similar_lengths_and_is_a_permutation() -> None:
    lengths = np.random.default_rng(0).integers(1, 100, 64)
    plain = EpochBatchSampler(64, batch_size=8, seed=3, num_steps=8)
    bucketed = EpochBatchSampler(64, batch_size=8, seed=3, num_steps=8, lengths=lengths, bucket_batches=4)
    b_plain, b_bucket = list(plain), list(bucketed)
    assert sorted(i for b in b_bucket for i in b) == list(range(64))  # every event once per epoch
    spread = [np.ptp(lengths[b]) for b in b_bucket]
    assert np.mean(spread) < 0.5 * np.mean([np.ptp(lengths[b]) for b in b_plain])
    assert list(EpochBatchSampler(64, batch_size=8, seed=3, num_steps=8, lengths=lengths, bucket_batches=4)) == b_bucket
    resumed = EpochBatchSampler(64, batch_size=8, seed=3, start_step=5, num_steps=3, lengths=lengths, bucket_batches=4)
    assert list(resumed) == b_bucket[5:]


def test_spilled_lengths_give_the_same_batches(tmp_path: Path) -> None:
    """TaggingTask's lengths, spilled to a scratch file a file's jets at a time and read by the sampler with
    each window, are the subset's n_particles (capped), and bucket exactly as the in-memory array does:
    several windows, weights, two ranks, a resume in the middle of an epoch."""
    from colliderflow.train.item_weights import ItemWeights

    paths = []
    for i in range(3):
        paths.append(tmp_path / f"train_{i}.parquet")
        pq.write_table(synthetic_jet_table(70, seed=10 + i, labels=(3, 7, 9)), paths[-1], row_group_size=9)
    ds = JetDataset(paths, labels=[3, 7])  # drops label 9: kept rows differ from file rows
    train_set, val_set = split_train_val(ds, 0.3)
    for subset in (train_set, val_set):
        np.testing.assert_array_equal(np.concatenate(list(subset.n_particles_pieces())), subset.n_particles)
    lengths = np.minimum(train_set.n_particles, 12).astype(np.int32)
    spilled = ItemWeights.spill_chunks(len(lengths), (np.minimum(p, 12) for p in train_set.n_particles_pieces()),
                                       dtype=np.int32)
    assert not spilled.in_memory
    weights = np.random.default_rng(1).uniform(0.0, 2.0, len(lengths))
    n = len(train_set)
    for rank in (0, 1):
        common = {"batch_size": 8, "seed": 4, "weights": weights, "bucket_batches": 3, "rank": rank,
                  "world_size": 2, "block_ends": train_set.block_ends(), "buffer_items": 30}
        in_memory = list(EpochBatchSampler(n, num_steps=40, lengths=lengths, **common))
        assert list(EpochBatchSampler(n, num_steps=40, lengths=spilled, **common)) == in_memory
        assert list(EpochBatchSampler(n, start_step=17, num_steps=23, lengths=spilled, **common)) == in_memory[17:]
        # Against the items' true lengths: each chunk of 3 batches holds the plain stream's items of those
        # steps, cut into batches of consecutive lengths (a misread length would break the order).
        plain = list(EpochBatchSampler(n, num_steps=40, **{**common, "bucket_batches": 0}))
        steps = EpochBatchSampler(n, lengths=spilled, **common).steps_in_epoch(0)
        for c in range(steps // 3):
            chunk = in_memory[3 * c : 3 * c + 3]
            assert sorted(sum(chunk, [])) == sorted(sum(plain[3 * c : 3 * c + 3], []))
            by_length = sorted(chunk, key=lambda b: (lengths[b].min(), lengths[b].max()))
            assert all(lengths[a].max() <= lengths[b].min() for a, b in zip(by_length, by_length[1:]))


def test_ranks_take_disjoint_slices_of_each_global_batch() -> None:
    whole = list(EpochBatchSampler(40, batch_size=8, seed=1, num_steps=6))
    ranks = [list(EpochBatchSampler(40, batch_size=8, seed=1, num_steps=6, rank=r, world_size=2)) for r in (0, 1)]
    for step, batch in enumerate(whole):
        a, b = ranks[0][step], ranks[1][step]
        assert not set(a) & set(b) and sorted(a + b) == sorted(batch)
    with pytest.raises(ValueError, match="split evenly"):
        EpochBatchSampler(40, batch_size=9, seed=1, world_size=2)


@pytest.mark.parametrize("model", ["pelican", "part"])
def test_tagger_trains_resumes_and_loads(shard: Path, tmp_path: Path, model: str) -> None:
    params = {**TAGGER_PARAMS, "model": model, "bucket_batches": 2,
              "part": {"num_features": N_PARTICLE_FEATURES, "embedding_dim": 16, "embed_hidden": 16, "num_heads": 2,
                       "num_layers": 1, "num_cls_layers": 1, "ff_dim": 16, "pair_hidden": 8, "dropout": 0.0}}
    params = {k: v for k, v in params.items() if k in TrainConfigKeys or k == model}
    full = train(data=[shard], weights=None, params=params, seed=2, output_dir=tmp_path / "full")
    assert full["step"] == 6 and full["final_val_loss"] is not None
    # A run killed after its step-3 checkpoint and restarted gives the same weights.
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    (tmp_path / "full" / "checkpoints" / "ckpt_6.pt").unlink()
    (tmp_path / "full" / "model.pt").unlink()
    train(data=[shard], weights=None, params=params, seed=2, output_dir=tmp_path / "full")
    b = torch.load(tmp_path / "full" / "model.pt", weights_only=True)
    for key in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][key], b["state_dict"][key], rtol=0, atol=0)
    assert a["labels"] == [3, 7] and a["task"] == "tagging" and a["param_count"] == full["param_count"]
    loaded, meta = load_trained(tmp_path / "full")
    assert meta["model_config"]["num_classes"] == 2 and not loaded.training
    prov = json.loads((tmp_path / "full" / "provenance.json").read_text())
    assert json.dumps(prov).count('"world_size": 1') >= 1
    val = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "accuracy"} <= set(val[-1])


TrainConfigKeys = set(TAGGER_PARAMS) | {"bucket_batches"}


def test_tagging_with_sampling_weights(shard: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    ds = JetDataset([shard], labels=[3, 7])
    keys = ds.keys()
    weights = tmp_path / "w.parquet"
    pq.write_table(pa.table({"sample": [k[0] for k in keys], "event_id": [k[1] for k in keys],
                             "weight": [1.0 + (i % 3) for i in range(len(keys))]}), weights)
    out = train(data=[shard], weights=weights, params=TAGGER_PARAMS, seed=2, output_dir=tmp_path / "w")
    assert out["step"] == TAGGER_PARAMS["max_steps"]
    pq.write_table(pa.table({"sample": ["x"], "event_id": [0], "weight": [1.0]}), weights)
    with pytest.raises(ValueError, match="no weight for"):
        train(data=[shard], weights=weights, params=TAGGER_PARAMS, seed=2, output_dir=tmp_path / "w2")


def test_num_classes_must_match_the_labels(shard: Path, tmp_path: Path) -> None:
    params = {**TAGGER_PARAMS, "pelican": {**TAGGER_PARAMS["pelican"], "num_classes": 5}}
    with pytest.raises(ValueError, match="num_classes=5"):
        train(data=[shard], weights=None, params=params, seed=2, output_dir=tmp_path / "x")

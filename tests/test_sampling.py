"""The batch sampler's streaming windows, weighted draws beyond torch.multinomial's 2^24 cap, exact resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from colliderflow.train.sampling import MULTINOMIAL_MAX, EpochBatchSampler, weighted_draws

BLOCKS = np.arange(10, 101, 10)  # 10 blocks of 10 items


def _batches(**kw: object) -> list[list[int]]:
    return list(EpochBatchSampler(100, batch_size=4, seed=3, block_ends=BLOCKS, buffer_items=30, **kw))


def test_windowed_epoch_is_a_permutation_read_window_by_window() -> None:
    sampler = EpochBatchSampler(100, batch_size=4, seed=3, block_ends=BLOCKS, buffer_items=30)
    windows, counts = sampler.windows(0)
    assert [sum(e - a for a, e in w) for w in windows] == [30, 30, 30, 10] == counts.tolist()
    order = sampler.epoch_order(0).numpy()
    assert sorted(order.tolist()) == list(range(100))
    # the stream visits a window's blocks only, then the next window's: blocks never interleave across windows
    block = order // 10
    window_of_block = {a // 10: i for i, w in enumerate(windows) for a, _ in w}
    assert (np.diff([window_of_block[b] for b in block]) >= 0).all()
    assert not np.array_equal(sampler.epoch_order(1).numpy(), order)  # each epoch reshuffles the blocks


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("bucket", [0, 3])
def test_windowed_sampler_resumes_exactly(weighted: bool, bucket: int) -> None:
    weights = torch.linspace(0.1, 2.0, 100, dtype=torch.float64) if weighted else None
    lengths = np.random.default_rng(0).integers(1, 50, 100) if bucket else None
    kw = {"weights": weights, "lengths": lengths, "bucket_batches": bucket}
    full = _batches(num_steps=70, **kw)  # > 2 epochs
    for start in (0, 7, 24, 25, 26, 51):
        assert _batches(start_step=start, num_steps=70 - start, **kw) == full[start:], start


def test_windowed_weighted_draws_follow_the_weights() -> None:
    weights = torch.zeros(100, dtype=torch.float64)
    weights[[3, 47, 95]] = torch.tensor([1.0, 2.0, 5.0], dtype=torch.float64)
    drawn = np.array(_batches(weights=weights, num_steps=2000)).ravel()
    assert set(drawn.tolist()) == {3, 47, 95}
    frac = np.bincount(drawn, minlength=100)[[3, 47, 95]] / drawn.size
    np.testing.assert_allclose(frac, [1 / 8, 2 / 8, 5 / 8], atol=0.01)


def test_windowed_ddp_ranks_read_disjoint_windows() -> None:
    kw = {"batch_size": 4, "seed": 3, "block_ends": BLOCKS, "buffer_items": 20, "num_steps": 10}
    per_rank = [list(EpochBatchSampler(100, rank=r, world_size=2, **kw)) for r in (0, 1)]
    blocks = [{i // 10 for b in batches[:10] for i in b} for batches in per_rank]
    assert all(len(b) == 2 for batches in per_rank for b in batches)
    assert not blocks[0] & blocks[1]  # disjoint shards within the epoch


def test_inverse_cdf_beyond_the_multinomial_cap() -> None:
    n = MULTINOMIAL_MAX + 10
    weights = torch.zeros(n, dtype=torch.float64)
    weights[-10:] = torch.arange(1, 11, dtype=torch.float64)
    weights[5] = 10.0
    draws = weighted_draws(weights, 65_000, torch.Generator().manual_seed(0))
    counts = torch.bincount(draws, minlength=n)
    assert set(torch.nonzero(counts).ravel().tolist()) == {5, *range(n - 10, n)}
    np.testing.assert_allclose(counts[-10:].numpy() / draws.numel(), np.arange(1, 11) / 65, atol=0.01)


def test_sampler_above_two_to_the_24_items_draws_and_resumes() -> None:
    """A float32 weights array of 2^24 + 10 items (64 MB): the old WeightedRandomSampler raised here."""
    n = MULTINOMIAL_MAX + 10
    weights = np.zeros(n, np.float32)
    weights[-10:] = 1.0
    weights[123] = 1.0
    with pytest.raises(RuntimeError, match="2\\^24"):
        torch.multinomial(torch.from_numpy(weights).double(), 1, True)
    kw = {"batch_size": 64, "seed": 9, "weights": torch.from_numpy(weights), "block_ends": np.arange(1 << 16, n + (1 << 16), 1 << 16)}
    full = list(EpochBatchSampler(n, num_steps=6, **kw))
    drawn = set(np.ravel(full).tolist())
    assert drawn <= {123, *range(n - 10, n)} and len(drawn) > 5
    assert list(EpochBatchSampler(n, start_step=4, num_steps=2, **kw)) == full[4:]


def _weights_file(path, samples, ids, weights) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"sample": samples, "event_id": np.asarray(ids, np.int64), "weight": weights}), path,
                   row_group_size=7)


def test_weights_join_dense_streamed_and_sparse_agree(tmp_path) -> None:
    """Keys with dense ids (streamed through a table) and with sparse ids (file read whole) each get the
    weight of their own (sample, event_id) row, wherever the row is in the file; extra rows are ignored."""
    import pandas as pd

    from colliderflow.train.sampling import SampleKeys, read_sampling_weights

    rng = np.random.default_rng(3)
    samples = np.array(["a"] * 40 + ["b"] * 30, dtype=object)
    ids = np.concatenate([np.arange(40), np.arange(30)])
    order = rng.permutation(70)
    w = rng.uniform(0.1, 2.0, 70)
    _weights_file(tmp_path / "dense.parquet", samples[order].tolist(), ids[order], w[order])
    pick = rng.permutation(70)[:50]
    keys = SampleKeys(pd.Categorical(samples[pick]), ids[pick].astype(np.int32))
    np.testing.assert_array_equal(read_sampling_weights(tmp_path / "dense.parquet", keys).numpy(), w[pick])

    sparse_ids = ids * 1_000_003  # far too sparse for a table
    _weights_file(tmp_path / "sparse.parquet", samples[order].tolist(), sparse_ids[order], w[order])
    keys = SampleKeys(samples[pick], sparse_ids[pick])
    np.testing.assert_array_equal(read_sampling_weights(tmp_path / "sparse.parquet", keys).numpy(), w[pick])


@pytest.mark.parametrize("ids", ["dense", "sparse"])
def test_weights_join_errors(tmp_path, ids) -> None:
    from colliderflow.train.sampling import SampleKeys, read_sampling_weights

    scale = 1 if ids == "dense" else 1_000_003
    keys = SampleKeys(np.array(["a"] * 5, dtype=object), np.arange(5) * scale)
    path = tmp_path / "w.parquet"
    _weights_file(path, ["a"] * 4, np.arange(4) * scale, np.ones(4))
    with pytest.raises(ValueError, match=f"{path}: no weight for 1 of 5 training events, e.g. \\('a', {4 * scale}\\)"):
        read_sampling_weights(path, keys)
    _weights_file(path, ["a"] * 6, np.array([0, 1, 2, 3, 4, 2]) * scale, np.ones(6))
    with pytest.raises(ValueError, match="duplicate"):
        read_sampling_weights(path, keys)
    _weights_file(path, ["a"] * 6, np.array([0, 1, 2, 3, 4, -1]) * scale, np.ones(6))
    with pytest.raises(ValueError, match="negative event_id"):
        read_sampling_weights(path, keys)


def test_spilled_weights_draw_what_in_memory_weights_draw() -> None:
    """Weights read a window at a time from the scratch file give the block totals and batches of the
    whole array in memory (what the sampler held before), resumes included."""
    from colliderflow.train.item_weights import ItemWeights

    n = 5000
    w = np.random.default_rng(1).uniform(0.0, 3.0, n)
    blocks = np.cumsum(np.random.default_rng(2).integers(50, 400, 40))
    blocks = np.concatenate([blocks[blocks < n], [n]])
    kw = {"batch_size": 32, "seed": 5, "block_ends": blocks, "buffer_items": 700, "num_steps": 400}
    eager = EpochBatchSampler(n, weights=torch.from_numpy(w), **kw)
    spilled = ItemWeights.spill(w)
    lazy = EpochBatchSampler(n, weights=spilled, **kw)
    np.testing.assert_array_equal(lazy.block_weights, np.add.reduceat(w, lazy.block_starts))
    assert list(lazy) == list(eager)
    resumed = EpochBatchSampler(n, weights=spilled, **{**kw, "start_step": 250, "num_steps": 150})
    assert list(resumed) == list(eager)[250:]
    np.testing.assert_array_equal(spilled.gather([(7, 9), (0, 3)]), np.concatenate([w[7:9], w[:3]]))


class _CountingKeys:
    """A KeySource of n keys ("s", 0 … n - 1) made on demand, like a dataset that derives them."""

    def __init__(self, n: int, sample: str = "s") -> None:
        self.n, self.sample = n, sample

    def __len__(self) -> int:
        return self.n

    def key_slice(self, start: int, end: int):
        from colliderflow.train.sampling import SampleKeys

        return SampleKeys(pd.Categorical.from_codes(np.zeros(end - start, np.int8), categories=[self.sample]),
                          np.arange(start, end))


def test_item_weights_join_in_ranges_errors(tmp_path) -> None:
    """Joined a range at a time: a missing key names its range, a range of zeros is fine but all zeros is
    not, and the values are those of the whole join."""
    from colliderflow.train.sampling import read_item_weights, read_sampling_weights

    path = tmp_path / "w.parquet"
    w = np.concatenate([np.zeros(30), np.linspace(0.5, 1.5, 20)])
    _weights_file(path, ["s"] * 50, np.arange(50), w)
    spilled = read_item_weights(path, _CountingKeys(50), chunk_items=8)
    np.testing.assert_array_equal(spilled.read(0, 50), read_sampling_weights(path, _CountingKeys(50).key_slice(0, 50)))
    with pytest.raises(ValueError, match=f"{path}: no weight for 1 of training events 48 … 50 \\(of 51"):
        read_item_weights(path, _CountingKeys(51), chunk_items=8)
    with pytest.raises(ValueError, match="not all zero"):
        read_item_weights(path, _CountingKeys(30), chunk_items=8)
    with pytest.raises(ValueError, match="no weight for 50 of 50"):
        read_item_weights(path, _CountingKeys(50, "t"), chunk_items=64)


def test_item_weights_join_memory_does_not_grow_with_items(tmp_path) -> None:
    """read_item_weights from a KeySource allocates (tracemalloc: numpy's arrays) about one range's worth,
    whatever the number of items: 10× the items, about the same peak."""
    import tracemalloc

    import pyarrow as pa
    import pyarrow.parquet as pq

    from colliderflow.train.sampling import read_item_weights

    def peak(n: int) -> int:
        path = tmp_path / f"{n}.parquet"
        pq.write_table(pa.table({"sample": ["s"] * n, "event_id": np.arange(n), "weight": np.linspace(0.5, 1.5, n)}),
                       path, row_group_size=50_000)
        tracemalloc.start()
        weights = read_item_weights(path, _CountingKeys(n), chunk_items=20_000)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(weights) == n and not weights.in_memory
        return top

    small, large = peak(40_000), peak(400_000)
    assert large < 1.5 * small, (small, large)
    # One range's arrays (20k items) and one read batch of the file (64k rows): the whole join of 400k items
    # would hold about 8 MB (keys 16 bytes an item, table, weights and found flags 13).
    assert large < 3 << 20, large


def test_sampler_memory_does_not_grow_with_items(tmp_path) -> None:
    """With weights and bucketing lengths spilled to files, no array the sampler holds is per item: 10× the
    items, same sizes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from colliderflow.train.item_weights import ItemWeights
    from colliderflow.train.sampling import SampleKeys, read_item_weights

    def held(n: int) -> list[int]:
        ids = np.arange(n)
        pq.write_table(pa.table({"sample": ["s"] * n, "event_id": ids, "weight": np.linspace(0.5, 1.5, n)}),
                       tmp_path / f"{n}.parquet")
        weights = read_item_weights(tmp_path / f"{n}.parquet", SampleKeys(np.array(["s"] * n, dtype=object), ids))
        assert not weights.in_memory
        blocks = np.arange(n // 20, n + 1, n // 20)  # 20 blocks, whatever n
        lengths = ItemWeights.spill_chunks(n, [np.arange(n, dtype=np.int32) % 100], dtype=np.int32)
        sampler = EpochBatchSampler(n, batch_size=64, seed=1, weights=weights, block_ends=blocks, buffer_items=n // 4,
                                    lengths=lengths, bucket_batches=4)
        next(iter(sampler.epoch_batches(0)))
        state = [*vars(sampler).values(), *vars(weights).values(), *vars(lengths).values()]
        arrays = [v for v in state if isinstance(v, (np.ndarray, torch.Tensor))]
        return sorted(len(a) for a in arrays)

    small, large = held(20_000), held(200_000)
    assert small == large and max(large) <= 20

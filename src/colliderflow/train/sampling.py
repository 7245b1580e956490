"""Which training items make up each batch: the sampling weights' join and the batch sampler.

* `SampleKeys` / `read_sampling_weights` / `read_item_weights` — the per-item weights of a weights file
  (sample, event_id, weight), joined on the items' keys without a Python object per item (as a tensor, or
  spilled to a scratch file for training).
* `EpochBatchSampler` — the order of training items, a pure function of (seed, step), which is what
  makes resuming from a checkpoint exact (with DataLoader workers too: the sampler runs in the main
  process, workers only read the batches it names, and the loader hands them back in order).

Streaming order. Items are stored in blocks (array_record shards, Parquet row groups) and reading is
cheap only block by block, so an epoch is read window by window: the blocks are shuffled (seeded), cut
into windows of at most `buffer_items` items, and each window's items are shuffled — or, with weights,
drawn with replacement — in memory. Only the current window's rows need to be resident. A dataset that
fits in one window is one window in its own order, which is exactly a global shuffle (and the draws of
earlier versions, `WeightedRandomSampler` over the whole set).

Per-item weights and lengths are not held: the sampler keeps each block's total and reads a window's
weights and lengths (item_weights.ItemWeights: a scratch file in item order, or an array for small sets) with
its draws, so its memory is per block; `read_item_weights` joins a weights file a range at a time into one.

Weighted sampling keeps weaver's semantics: item i is drawn with probability w_i / Σw, with replacement,
len(dataset) draws per epoch (class fractions and flat/ref shapes are in the weights). Over several
windows that is a two-level draw: the number of draws of each window ~ Multinomial(n, W_window / Σw),
then within the window by weight. Neither level has torch.multinomial's 2^24 limit on categories: windows
hold at most 2^24 items, and a single block larger than that is drawn by inverse CDF (cumsum + searchsorted).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch

from colliderflow.config import derive_seed
from colliderflow.train.data import _as_str
from colliderflow.train.item_weights import ItemWeights

MULTINOMIAL_MAX = 2**24  # torch.multinomial: "number of categories cannot exceed 2^24"
DEFAULT_BUFFER_ITEMS = 1 << 17  # items of one shuffle window (the in-memory buffer)
DEFAULT_BLOCK_ITEMS = 4096  # block size when the dataset names no storage blocks
_CHUNK = 1 << 20  # keys joined at a time
JOIN_CHUNK_ITEMS = 1 << 20  # items joined per pass over the weights file when spilling (read_item_weights)


class SampleKeys(NamedTuple):
    """(sample, event_id) of many items as two arrays: the key of weights files.

    samples may be an object array of str or a pandas Categorical (few distinct names, one small code per
    item: what a dataset of millions of items should pass).
    """

    samples: Any  # [n] str (object array, or anything pandas can factorize)
    event_ids: np.ndarray  # [n] integer (int64, or int32 where that holds every id: jets' rows)

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, int]]) -> SampleKeys:
        samples = np.array([_as_str(s) for s, _ in pairs], dtype=object)
        return cls(samples, np.array([int(e) for _, e in pairs], dtype=np.int64))


def read_sampling_weights(path: Path, keys: SampleKeys | Sequence[tuple[str, int]]) -> torch.Tensor:
    """Per-item weights [len(keys)] float64 from a Parquet file with columns sample, event_id, weight.

    Every training item must have a weight: a missing one means the weights were computed for other
    data, which would silently bias the sampling, so it is an error naming the file, and so is a training
    item the file has twice. The join works on integer codes (the file's sample column
    dictionary-encoded by Arrow, the keys' samples as codes), no Python object and no string per row.
    When each sample's event ids are dense (jets: the row in the file; PF: event numbers) the keys go into
    a table indexed by (sample base + event_id - the sample's first id) and the file is streamed through
    it batch by batch: about 13 bytes per item at the peak (table, weights, found flags), whatever the
    size of the file. Sparse ids fall back to reading the file whole and a sorted search per sample
    (`_lookup`).
    """
    import pyarrow as pa

    path = Path(path)
    wanted = keys if isinstance(keys, SampleKeys) else SampleKeys.from_pairs(keys)
    if not path.is_file():
        raise ValueError(f"{path}: sampling-weights file does not exist")
    values = _join(path, wanted)
    _check_weights(path, values)
    if values.sum() <= 0:
        raise ValueError(f"{path}: weights must be finite, non-negative and not all zero")
    pa.default_memory_pool().release_unused()
    return torch.from_numpy(values)


class KeySource(Protocol):
    """Keys of many items, handed out a range at a time (a dataset that derives them from its layout)."""

    def __len__(self) -> int: ...

    def key_slice(self, start: int, end: int) -> SampleKeys: ...


class _ArrayKeys:
    """A SampleKeys as a KeySource."""

    def __init__(self, keys: SampleKeys) -> None:
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys.event_ids)

    def key_slice(self, start: int, end: int) -> SampleKeys:
        return SampleKeys(self.keys.samples[start:end], np.asarray(self.keys.event_ids)[start:end])


def read_item_weights(path: Path, keys: SampleKeys | KeySource | Sequence[tuple[str, int]], *,
                      scratch_dir: str | None = None, chunk_items: int = JOIN_CHUNK_ITEMS) -> ItemWeights:
    """The weights of `read_sampling_weights`, joined `chunk_items` items at a time and written in item
    order to a scratch file (item_weights.ItemWeights): neither the join's temporaries nor the keys (when
    `keys` is a KeySource, a dataset that derives them) are ever held for more than one chunk, and what
    training holds for the run is O(1) per item. Each chunk streams only the row groups of the weights
    file whose statistics may hold its keys (a file sorted by sample and event_id, as the weights stage
    writes it, is read about once over all chunks). The values are those of `read_sampling_weights`."""
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: sampling-weights file does not exist")
    if not isinstance(keys, SampleKeys) and not hasattr(keys, "key_slice"):
        keys = SampleKeys.from_pairs(keys)  # type: ignore[arg-type]
    source: KeySource = _ArrayKeys(keys) if isinstance(keys, SampleKeys) else keys  # type: ignore[assignment]
    n = len(source)
    if chunk_items < 1:
        raise ValueError(f"chunk_items={chunk_items}: expected at least 1")

    def chunks() -> Iterator[np.ndarray]:
        total = 0.0
        for a in range(0, n, chunk_items):
            e = min(n, a + chunk_items)
            values = _join(path, source.key_slice(a, e), span=(a, e, n) if n > chunk_items else None)
            _check_weights(path, values)
            total += float(values.sum())
            pa.default_memory_pool().release_unused()  # the range's decoded row groups
            yield values
        if not total > 0:
            raise ValueError(f"{path}: weights must be finite, non-negative and not all zero")

    weights = ItemWeights.spill_chunks(n, chunks(), directory=scratch_dir)
    pa.default_memory_pool().release_unused()
    return weights


def _check_weights(path: Path, values: np.ndarray) -> None:
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{path}: weights must be finite, non-negative and not all zero")


def _join(path: Path, wanted: SampleKeys, span: tuple[int, int, int] | None = None) -> np.ndarray:
    """[len(wanted)] float64: the weight of each key (span: these keys are items a … e - 1 of n)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(wanted.samples, pd.Categorical):  # a code per item already: no hashing of strings
        key_codes, key_samples = wanted.samples.codes, list(wanted.samples.categories)
    else:
        key_codes, key_samples = pd.factorize(wanted.samples)
    event_ids = np.asarray(wanted.event_ids)
    try:
        values = _stream_join(path, np.asarray(key_codes), [_as_str(s) for s in key_samples], event_ids, span)
        if values is None:  # sparse event ids: read the file whole
            values = _join_whole(path, np.asarray(key_codes), key_samples, event_ids, span)
    except (KeyError, OSError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: cannot read columns sample, event_id, weight: {exc}") from exc
    return values


def _missing_error(path: Path, missing: np.ndarray, n: int, samples: list[str], codes: np.ndarray,
                   ids: np.ndarray, span: tuple[int, int, int] | None = None) -> ValueError:
    code = int(codes[missing[0]])
    first = (samples[code] if code >= 0 else "?", int(ids[missing[0]]))
    of = f"{n} training events" if span is None else \
        f"training events {span[0]} … {span[1] - 1} (of {span[2]}, joined a range at a time)"
    return ValueError(f"{path}: no weight for {missing.size} of {of}, e.g. {first}")


def _stream_join(path: Path, key_codes: np.ndarray, key_samples: list[str], key_ids: np.ndarray,
                 span: tuple[int, int, int] | None = None) -> np.ndarray | None:
    """The weight of each key, streaming the file through a dense (sample, event_id) → item table; None
    when the keys' event ids are too sparse for such a table (or repeat). Each sample's slots start at its
    smallest id (a range of items of one file starts anywhere in it), and only the row groups whose
    statistics may hold a key are read."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    n = len(key_codes)
    if n and int(key_ids.min()) < 0:
        return None
    max_id = np.full(len(key_samples), -1, np.int64)
    low = np.full(len(key_samples), np.iinfo(np.int64).max, np.int64)
    for a in range(0, n, _CHUNK):
        codes, ids = key_codes[a : a + _CHUNK], key_ids[a : a + _CHUNK]
        known = codes >= 0
        np.maximum.at(max_id, codes[known], ids[known])
        np.minimum.at(low, codes[known], ids[known])
    present = max_id >= 0
    low[~present] = 0
    slots = np.where(present, max_id - low + 1, 0)
    size = int(slots.sum())
    if size > 4 * n + 1024:
        return None
    base = (np.concatenate([[0], np.cumsum(slots)[:-1]]) - low).astype(np.int64)  # slot = base[code] + id
    table = np.full(size, -1, np.int32 if n < 2**31 else np.int64)  # slot of (sample, id) → item
    for a in range(0, n, _CHUNK):
        codes, ids = key_codes[a : a + _CHUNK], key_ids[a : a + _CHUNK]
        known = codes >= 0
        table[base[codes[known]] + ids[known]] = np.arange(a, min(a + _CHUNK, n))[known]
    if int((table >= 0).sum()) != int((key_codes >= 0).sum()):  # a key twice: not a dense 1:1 table
        return None
    values, found = np.zeros(n, np.float64), np.zeros(n, np.bool_)
    code_of = {name: code for code, name in enumerate(key_samples)}
    pf = pq.ParquetFile(path)
    groups = _row_groups_with(pf, {key_samples[c] for c in np.flatnonzero(present).tolist()},
                              int(low[present].min()) if present.any() else 0, int(max_id.max()))
    for batch in pf.iter_batches(batch_size=1 << 16, columns=["sample", "event_id", "weight"], use_threads=False,
                                 row_groups=groups):
        sample = batch.column(0)
        encoded = sample if pa.types.is_dictionary(sample.type) else pc.dictionary_encode(sample)
        local = np.array([code_of.get(_as_str(v), -1) for v in encoded.dictionary.to_pylist()], dtype=np.int64)
        codes = local[encoded.indices.to_numpy(zero_copy_only=False)] if local.size else np.zeros(0, np.int64)
        ids = batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        if ids.size and ids.min() < 0:
            raise ValueError(f"{path}: negative event_id")
        ok = codes >= 0
        ok[ok] &= (ids[ok] <= max_id[codes[ok]]) & (ids[ok] >= low[codes[ok]])
        items = table[base[codes[ok]] + ids[ok]]
        hit = items >= 0
        items = items[hit]
        if found[items].any() or np.unique(items).size != items.size:
            raise ValueError(f"{path}: duplicate (sample, event_id) rows")
        values[items] = batch.column(2).to_numpy(zero_copy_only=False)[ok][hit]
        found[items] = True
    del table
    missing = np.flatnonzero(~found)
    if missing.size:
        raise _missing_error(path, missing, n, key_samples, key_codes, key_ids, span)
    return values


def _row_groups_with(pf: Any, samples: set[str], low: int, high: int) -> list[int]:
    """Row groups of a weights file whose sample and event_id statistics do not rule out every key
    (samples named in `samples`, ids in [low, high]); a group without statistics is always read."""
    meta = pf.metadata
    paths = [meta.schema.column(j).path for j in range(meta.num_columns)]
    if "sample" not in paths or "event_id" not in paths:
        return list(range(meta.num_row_groups))  # the read names the missing column
    i_sample, i_id = paths.index("sample"), paths.index("event_id")
    names = sorted(samples)
    keep = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        st, si = rg.column(i_sample).statistics, rg.column(i_id).statistics
        if st is not None and st.has_min_max:
            lo, hi = (v.decode() if isinstance(v, bytes) else str(v) for v in (st.min, st.max))
            if not any(lo <= name <= hi for name in names):
                continue
        if si is not None and si.has_min_max and (int(si.max) < low or int(si.min) > high):
            continue
        keep.append(g)
    return keep


def _join_whole(path: Path, key_codes: np.ndarray, key_samples: list[Any], event_ids: np.ndarray,
                span: tuple[int, int, int] | None = None) -> np.ndarray:
    """The weight of each key, the file read whole (any event ids)."""
    import pandas as pd

    file_codes, file_samples, file_ids, values = _read_weights(path)
    if file_ids.size and file_ids.min() < 0:
        raise ValueError(f"{path}: negative event_id")
    known = pd.Index(file_samples).get_indexer([_as_str(s) for s in key_samples]).astype(np.int32)
    key_file = known[key_codes] if known.size else np.full(len(key_codes), -1, np.int32)  # [n] file code
    key_file[key_codes < 0] = -1
    rows = _lookup(file_codes, file_ids, len(file_samples), key_file, event_ids.astype(np.int64), path)
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        raise _missing_error(path, missing, rows.size, [_as_str(s) for s in key_samples], key_codes, event_ids, span)
    return values[rows]


def _read_weights(path: Path) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """(sample code [n] int32, sample names, event_id [n] int64, weight [n] float64) of a weights file,
    read a batch at a time into preallocated arrays (a whole-table read holds twice the data for a while)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    n = pf.metadata.num_rows
    codes, ids, weights = np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.float64)
    names: dict[str, int] = {}
    start = 0
    for batch in pf.iter_batches(batch_size=1 << 16, columns=["sample", "event_id", "weight"], use_threads=False):
        sample = batch.column(0)
        encoded = sample if pa.types.is_dictionary(sample.type) else pc.dictionary_encode(sample)
        local = np.array([names.setdefault(_as_str(v), len(names)) for v in encoded.dictionary.to_pylist()],
                         dtype=np.int32)
        end = start + batch.num_rows
        codes[start:end] = local[encoded.indices.to_numpy(zero_copy_only=False)]
        ids[start:end] = batch.column(1).to_numpy(zero_copy_only=False)
        weights[start:end] = batch.column(2).to_numpy(zero_copy_only=False)
        start = end
    return codes, list(names), ids, weights


def _lookup(file_codes: np.ndarray, file_ids: np.ndarray, n_codes: int, key_codes: np.ndarray,
            key_ids: np.ndarray, path: Path) -> np.ndarray:
    """Row of the weights file of each key (-1: none). Keys are (sample code, event_id); code -1: unknown.

    When each sample's event ids are dense (jets: the row in the file; PF: event numbers), a table
    indexed by (sample base + event_id) does it in a few int arrays; otherwise one sorted int64 key per
    row and a binary search.
    """
    n = len(file_codes)
    max_id = np.full(n_codes, -1, np.int64)
    np.maximum.at(max_id, file_codes, file_ids)
    size = int((max_id + 1).sum())
    if size <= 4 * n + 1024:
        base = np.concatenate([[0], np.cumsum(max_id + 1)]).astype(np.int64)
        table = np.full(size, -1, np.int64 if n >= 2**31 else np.int32)
        for a in range(0, n, _CHUNK):
            table[base[file_codes[a : a + _CHUNK]] + file_ids[a : a + _CHUNK]] = np.arange(a, min(a + _CHUNK, n))
        if int((table >= 0).sum()) != n:
            raise ValueError(f"{path}: duplicate (sample, event_id) rows")
        rows = np.full(len(key_codes), -1, np.int64)
        for a in range(0, len(key_codes), _CHUNK):  # in chunks: the temporaries stay small
            codes, ids = key_codes[a : a + _CHUNK], key_ids[a : a + _CHUNK]
            valid = codes >= 0
            valid[valid] &= ids[valid] <= max_id[codes[valid]]
            rows[a : a + _CHUNK][valid] = table[base[codes[valid]] + ids[valid]]
        return rows
    rows = np.full(len(key_codes), -1, np.int64)
    for code in range(n_codes):  # few samples (PF: one per physics sample): a sorted search per sample
        file_rows = np.flatnonzero(file_codes == code)
        order = np.argsort(file_ids[file_rows], kind="stable")
        ids = file_ids[file_rows][order]
        if ids.size > 1 and (ids[1:] == ids[:-1]).any():
            raise ValueError(f"{path}: duplicate (sample, event_id) rows")
        mine = np.flatnonzero(key_codes == code)
        if not mine.size or not ids.size:
            continue
        pos = np.minimum(np.searchsorted(ids, key_ids[mine]), ids.size - 1)
        hit = ids[pos] == key_ids[mine]
        rows[mine[hit]] = file_rows[order[pos[hit]]]
    return rows


def weighted_draws(weights: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """[n] int64 indices drawn with replacement with probability ∝ weights (float64 [m]).

    torch.multinomial up to 2^24 categories (what earlier versions drew, so small runs keep their bytes);
    beyond, the inverse CDF: cumulative sums in float64 and a binary search of uniform draws.
    """
    if len(weights) <= MULTINOMIAL_MAX:
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    cdf = torch.cumsum(weights, 0)
    u = torch.rand(n, dtype=torch.float64, generator=generator) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(weights) - 1)


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of item indices for steps `start_step, start_step + 1, …`; the order is a function of
    (seed, epoch) only, so a resumed run regenerates the epoch it stopped in and skips to its step.

    Each epoch is read window by window (see the module doc): `block_ends` are the end offsets of the
    storage blocks in item order (None: blocks of DEFAULT_BLOCK_ITEMS), `buffer_items` the most items a
    window holds. `len(dataset) // batch_size` batches per epoch (the tail is dropped, the next epoch
    reshuffles); a dataset smaller than one batch gives one batch of everything.

    Length bucketing (`lengths` and `bucket_batches` k > 1): the stream is cut into chunks of k batches,
    each chunk sorted by length and cut into batches, and the batches of a chunk shuffled (seeded).
    Batches then hold items of similar length, so little of the padded tensor is padding.

    DDP (rank, world_size; batch_size is the global batch, divisible by world_size): with one window,
    every rank builds the same global batch and keeps `batch[rank::world_size]`, exactly the
    single-process batch. With several windows, the windows are dealt to the ranks in turn, so ranks
    read disjoint shards; each takes batch_size / world_size items a step, and an epoch lasts as many
    steps as the rank with the fewest draws can fill.
    """

    def __init__(self, n_events: int, *, batch_size: int, seed: int,
                 weights: torch.Tensor | np.ndarray | ItemWeights | None = None,
                 start_step: int = 0, num_steps: int | None = None,
                 lengths: Sequence[int] | np.ndarray | ItemWeights | None = None,
                 bucket_batches: int = 0, rank: int = 0, world_size: int = 1,
                 block_ends: Sequence[int] | np.ndarray | None = None,
                 buffer_items: int = DEFAULT_BUFFER_ITEMS) -> None:
        if n_events <= 0:
            raise ValueError("cannot sample batches from zero events")
        if weights is not None and len(weights) != n_events:
            raise ValueError(f"{len(weights)} sampling weights for {n_events} events")
        if lengths is not None and len(lengths) != n_events:
            raise ValueError(f"{len(lengths)} lengths for {n_events} events")
        if bucket_batches > 1 and lengths is None:
            raise ValueError("length bucketing needs the event lengths")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if not 1 <= buffer_items <= MULTINOMIAL_MAX:
            raise ValueError(f"shuffle buffer of {buffer_items} items: expected 1 … 2^24")
        self.n_events = n_events
        self.batch_size = min(batch_size, n_events)
        if self.batch_size % world_size:
            raise ValueError(f"train.batch_size: the global batch of {self.batch_size} does not split evenly "
                             f"over {world_size} processes")
        self.seed = seed
        # Per-item weights are read a window at a time (ItemWeights: in memory, or a scratch file); what the
        # sampler itself keeps is per block (block_weights), so it does not grow with the items.
        self.weights = None if weights is None else (
            weights if isinstance(weights, ItemWeights) else ItemWeights.from_array(weights))
        self.start_step = start_step
        self.num_steps = num_steps
        # int32: lengths are particle counts (the order of a stable sort is the same as of int64). Read a
        # window at a time with its draws, like the weights: from a scratch file (ItemWeights of int32,
        # what training passes) the sampler holds nothing per item.
        if lengths is not None and not isinstance(lengths, ItemWeights):
            lengths = ItemWeights.from_array(np.asarray(lengths), dtype=np.int32)
        if lengths is not None and lengths.dtype != np.int32:
            raise ValueError(f"lengths: expected int32 values, got {lengths.dtype}")
        self.lengths = lengths
        self.bucket_batches = bucket_batches
        self.rank, self.world_size = rank, world_size
        self.buffer_items = buffer_items
        if block_ends is None:
            block_ends = np.arange(DEFAULT_BLOCK_ITEMS, n_events + DEFAULT_BLOCK_ITEMS, DEFAULT_BLOCK_ITEMS)
        ends = np.minimum(np.asarray(block_ends, dtype=np.int64), n_events)
        if ends.size == 0 or ends[-1] != n_events or (np.diff(ends) <= 0).any() or ends[0] <= 0:
            raise ValueError("block_ends: expected increasing end offsets ending at the number of items")
        self.block_starts = np.concatenate([[0], ends[:-1]])
        self.block_ends = ends
        self.single_window = n_events <= buffer_items
        if self.weights is not None and not self.single_window:
            self.block_weights = self.weights.block_sums(self.block_starts, self.block_ends)  # [n_blocks] Σw
        # Items per step of this rank's stream: the global batch with one window, a slice with several.
        self.stream_batch = self.batch_size if self.single_window else self.batch_size // world_size
        self.batches_per_epoch = n_events // self.batch_size if self.single_window else None

    # ---- one epoch: windows, their draw counts, their draws

    def windows(self, epoch: int) -> tuple[list[list[tuple[int, int]]], np.ndarray]:
        """The epoch's windows (each a list of [start, end) item ranges) and the draws of each."""
        if self.single_window:
            return [[(0, self.n_events)]], np.array([self.n_events])
        order = np.random.default_rng(derive_seed(self.seed, "train-blocks", epoch)).permutation(len(self.block_ends))
        windows: list[list[tuple[int, int]]] = []
        sizes: list[int] = []
        for b in order.tolist():
            a, e = int(self.block_starts[b]), int(self.block_ends[b])
            if not windows or sizes[-1] + (e - a) > self.buffer_items:
                windows.append([])
                sizes.append(0)
            windows[-1].append((a, e))
            sizes[-1] += e - a
        if self.weights is None:
            return windows, np.asarray(sizes)
        window_of_block = np.repeat(np.arange(len(windows)), [len(w) for w in windows])  # in `order`
        window_weight = np.bincount(window_of_block, self.block_weights[order], minlength=len(windows))
        rng = np.random.default_rng(derive_seed(self.seed, "train-windows", epoch))
        return windows, rng.multinomial(self.n_events, window_weight / window_weight.sum())

    def window_draws(self, epoch: int, index: int, ranges: list[tuple[int, int]], count: int) -> torch.Tensor:
        """[count] int64 item indices of one window, in stream order."""
        return self._window(epoch, index, ranges, count, with_lengths=False)[0]

    def _window(self, epoch: int, index: int, ranges: list[tuple[int, int]], count: int, *,
                with_lengths: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`window_draws`, and the drawn items' lengths when asked (read with the window: int32)."""
        lengths = torch.from_numpy(self.lengths.gather(ranges)) if with_lengths and self.lengths is not None else None
        picked = self._window_positions(epoch, index, ranges, count)
        items = torch.from_numpy(np.concatenate([np.arange(a, e, dtype=np.int64) for a, e in ranges]))
        return items[picked], None if lengths is None else lengths[picked]

    def _window_positions(self, epoch: int, index: int, ranges: list[tuple[int, int]], count: int) -> torch.Tensor:
        """[count] positions within the window's items (its ranges concatenated) of its draws."""
        seed = derive_seed(self.seed, "train-order", epoch) if self.single_window else \
            derive_seed(self.seed, "train-order", epoch, index)
        gen = torch.Generator().manual_seed(seed)
        if count == 0:
            return torch.zeros(0, dtype=torch.int64)
        if self.weights is None:
            return torch.randperm(sum(e - a for a, e in ranges), generator=gen)
        return weighted_draws(torch.from_numpy(self.weights.gather(ranges)), count, gen)

    def _my_windows(self, epoch: int) -> tuple[list[int], list[list[tuple[int, int]]], np.ndarray, int]:
        """This rank's windows of the epoch, their draw counts and the epoch's number of steps."""
        windows, counts = self.windows(epoch)
        if self.single_window:
            return [0], windows, counts, self.batches_per_epoch  # type: ignore[return-value]
        mine = list(range(self.rank, len(windows), self.world_size))
        per_rank = [int(counts[r :: self.world_size].sum()) for r in range(self.world_size)]
        steps = min(per_rank) // self.stream_batch
        if steps == 0:
            raise ValueError(f"a rank has fewer than {self.stream_batch} items in an epoch: lower the batch "
                             "size or raise the shuffle buffer")
        return mine, [windows[i] for i in mine], counts[mine], steps

    def steps_in_epoch(self, epoch: int) -> int:
        return self._my_windows(epoch)[3]

    def _stream(self, epoch: int, skip_items: int, *, with_lengths: bool = False
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """This rank's item stream of the epoch from item `skip_items` on, window by window (with the
        items' lengths when asked)."""
        ids, windows, counts, _ = self._my_windows(epoch)
        for index, ranges, count in zip(ids, windows, counts.tolist(), strict=True):
            if skip_items >= count:
                skip_items -= count
                continue
            items, lengths = self._window(epoch, index, ranges, count, with_lengths=with_lengths)
            yield items[skip_items:], None if lengths is None else lengths[skip_items:]
            skip_items = 0

    def epoch_batches(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        """This rank's stream batches [stream_batch] of the epoch, from batch `start` on."""
        b, k = self.stream_batch, max(1, self.bucket_batches)
        n_steps = self.steps_in_epoch(epoch)
        first_chunk = start // k
        bucket_gen = None
        if self.bucket_batches > 1:
            bucket_gen = torch.Generator().manual_seed(
                derive_seed(self.seed, "train-buckets", epoch) if self.single_window else
                derive_seed(self.seed, "train-buckets", epoch, self.rank))
            for c in range(first_chunk):  # replay the shuffles of the chunks before
                torch.randperm(min(k, n_steps - c * k), generator=bucket_gen)
        bucketing = bucket_gen is not None and self.lengths is not None
        # The current window's draws (and their lengths when bucketing), read up to pos.
        buffer, lengths, pos = torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int32), 0
        chunk = first_chunk
        stream = self._stream(epoch, first_chunk * k * b, with_lengths=bucketing)
        while chunk * k < n_steps:
            n_batches = min(k, n_steps - chunk * k)
            want = n_batches * b
            if len(buffer) - pos < want:  # (a copy of the window's tail only when a chunk spans windows)
                parts, length_parts = [buffer[pos:]], [lengths[pos:]]
                have = len(parts[0])
                while have < want:
                    items, item_lengths = next(stream)
                    parts.append(items)
                    if item_lengths is not None:
                        length_parts.append(item_lengths)
                    have += len(items)
                buffer, pos = torch.cat(parts), 0
                lengths = torch.cat(length_parts) if bucketing else lengths
            flat = buffer[pos : pos + want]
            flat_lengths = lengths[pos : pos + want]
            pos += want
            if bucketing:
                flat = flat[torch.argsort(flat_lengths, stable=True)]
                batches = flat.view(n_batches, b)[torch.randperm(n_batches, generator=bucket_gen)]
            else:
                batches = flat.view(n_batches, b)
            for j in range(n_batches):
                if chunk * k + j >= start:
                    yield batches[j]
            chunk += 1

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """[n] int64: this rank's whole item stream of one epoch (before bucketing; for tests and checks)."""
        return torch.cat([items for items, _ in self._stream(epoch, 0)])

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        end = math.inf if self.num_steps is None else self.start_step + self.num_steps
        epoch, position = self.locate(step)
        while step < end:
            for batch in self.epoch_batches(epoch, position):
                if step >= end:
                    return
                yield (batch[self.rank :: self.world_size] if self.single_window else batch).tolist()
                step += 1
            epoch, position = epoch + 1, 0

    def locate(self, step: int) -> tuple[int, int]:
        """(epoch, batch within the epoch) of a global step."""
        if self.single_window:
            return divmod(step, self.batches_per_epoch)  # type: ignore[arg-type]
        epoch = 0
        while step >= (n := self.steps_in_epoch(epoch)):
            step -= n
            epoch += 1
        return epoch, step

    def state_dict(self, step: int) -> dict[str, Any]:
        """What a checkpoint records: the order is a pure function of these, so (seed, step) suffice to
        resume; the rest lets a resumed run check it is sampling the same set the same way."""
        epoch, position = self.locate(step)
        return {"seed": self.seed, "step": step, "epoch": epoch, "position": position, "n_items": self.n_events,
                "batch_size": self.batch_size, "buffer_items": self.buffer_items,
                "n_blocks": len(self.block_ends), "weighted": self.weights is not None}

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an endless sampler has no length")
        return self.num_steps

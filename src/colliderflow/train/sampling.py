"""Which training items make up each batch: the sampling weights' join and the batch sampler.

* `SampleKeys` / `read_sampling_weights` — the per-item weights of a weights file (sample, event_id,
  weight), joined on the items' keys.
* `EpochBatchSampler` — the order of training items, a pure function of (seed, step), which is what
  makes resuming from a checkpoint exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from colliderflow.config import derive_seed
from colliderflow.train.data import _as_str


class SampleKeys(NamedTuple):
    """(sample, event_id) of many items as two arrays: the key of weights files."""

    samples: np.ndarray  # [n] str (object array or anything pandas can factorize)
    event_ids: np.ndarray  # [n] int64

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, int]]) -> SampleKeys:
        samples = np.array([_as_str(s) for s, _ in pairs], dtype=object)
        return cls(samples, np.array([int(e) for _, e in pairs], dtype=np.int64))


def read_sampling_weights(path: Path, keys: SampleKeys | Sequence[tuple[str, int]]) -> torch.Tensor:
    """Per-event weights [len(keys)] float64 from a Parquet file with columns sample, event_id, weight.

    Every training event must have a weight: a missing one means the weights were computed for other
    data, which would silently bias the sampling, so it is an error naming the file. The join is an
    index lookup over integer-coded samples (pandas), not a dictionary of Python tuples: at ten
    million jets that is seconds instead of minutes and gigabytes.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(path)
    wanted = keys if isinstance(keys, SampleKeys) else SampleKeys.from_pairs(keys)
    if not path.is_file():
        raise ValueError(f"{path}: sampling-weights file does not exist")
    try:
        table = pq.read_table(path, columns=["sample", "event_id", "weight"])
    except (KeyError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read columns sample, event_id, weight: {exc}") from exc
    file_codes, file_samples = pd.factorize(table.column("sample").to_numpy(zero_copy_only=False))
    file_index = pd.MultiIndex.from_arrays([file_codes, table.column("event_id").to_numpy().astype(np.int64)])
    if not file_index.is_unique:
        raise ValueError(f"{path}: duplicate (sample, event_id) rows")
    key_codes, key_samples = pd.factorize(np.asarray(wanted.samples, dtype=object))
    known = pd.Index(file_samples).get_indexer(key_samples)
    key_codes = np.where(key_codes >= 0, known[key_codes] if known.size else -1, -1)
    rows = file_index.get_indexer(pd.MultiIndex.from_arrays([key_codes, np.asarray(wanted.event_ids, np.int64)]))
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        first = (_as_str(wanted.samples[missing[0]]), int(wanted.event_ids[missing[0]]))
        raise ValueError(f"{path}: no weight for {missing.size} of {rows.size} training events, e.g. {first}")
    values = table.column("weight").to_numpy().astype(np.float64)
    weights = torch.from_numpy(values[rows])
    if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"{path}: weights must be finite, non-negative and not all zero")
    return weights


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of event indices for steps `start_step, start_step + 1, …`; the order is a function of
    (seed, epoch) only.

    Each epoch draws a fresh order from a generator seeded with (seed, epoch): a uniform permutation, or,
    with weights, `WeightedRandomSampler` draws (with replacement, len(dataset) of them). Because nothing
    else feeds the order, a resumed run regenerates the epoch it stopped in and skips to its step: the
    checkpoint needs only the step. `len(dataset) // batch_size` batches per epoch (the tail is dropped,
    the next epoch reshuffles); a dataset smaller than one batch gives one batch of everything.

    Length bucketing (`lengths` and `bucket_batches` k > 1): the epoch order is cut into chunks of k
    batches, each chunk sorted by length and cut into batches, and the batches of a chunk shuffled
    (seeded). Batches then hold events of similar length, so little of the padded tensor is padding,
    while the order stays random at the scale of k batches and a pure function of (seed, epoch).

    DDP: every rank builds the same global batch and keeps `batch[rank::world_size]`, so the ranks see
    disjoint slices of every global batch and together exactly the single-process batch. batch_size is
    the global batch size and must be divisible by world_size.
    """

    def __init__(self, n_events: int, *, batch_size: int, seed: int, weights: torch.Tensor | None = None,
                 start_step: int = 0, num_steps: int | None = None, lengths: Sequence[int] | None = None,
                 bucket_batches: int = 0, rank: int = 0, world_size: int = 1) -> None:
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
        self.n_events = n_events
        self.batch_size = min(batch_size, n_events)
        if self.batch_size % world_size:
            raise ValueError(f"train.batch_size: the global batch of {self.batch_size} does not split evenly "
                             f"over {world_size} processes")
        self.seed = seed
        self.weights = weights
        self.start_step = start_step
        self.num_steps = num_steps
        self.lengths = None if lengths is None else torch.as_tensor(np.asarray(lengths), dtype=torch.int64)
        self.bucket_batches = bucket_batches
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = n_events // self.batch_size

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """[n_events] int64: the event order of one epoch (before bucketing)."""
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "train-order", epoch))
        if self.weights is None:
            return torch.randperm(self.n_events, generator=gen)
        draws = torch.utils.data.WeightedRandomSampler(
            self.weights, num_samples=self.n_events, replacement=True, generator=gen
        )
        return torch.tensor(list(draws), dtype=torch.int64)

    def epoch_batches(self, epoch: int) -> torch.Tensor:
        """[batches_per_epoch, batch_size] int64: the global batches of one epoch, in order."""
        b = self.batch_size
        batches = self.epoch_order(epoch)[: self.batches_per_epoch * b].view(-1, b)
        if self.bucket_batches > 1 and self.lengths is not None:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "train-buckets", epoch))
            chunks = []
            for chunk in batches.split(self.bucket_batches):  # [k, B] each
                flat = chunk.reshape(-1)
                flat = flat[torch.argsort(self.lengths[flat], stable=True)]  # by length
                sorted_batches = flat.view(-1, b)
                chunks.append(sorted_batches[torch.randperm(len(sorted_batches), generator=gen)])
            batches = torch.cat(chunks)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        epoch, position = divmod(step, self.batches_per_epoch)
        end = math.inf if self.num_steps is None else self.start_step + self.num_steps
        while step < end:
            batches = self.epoch_batches(epoch)
            while position < self.batches_per_epoch and step < end:
                yield batches[position, self.rank :: self.world_size].tolist()
                position += 1
                step += 1
            epoch, position = epoch + 1, 0

    def __len__(self) -> int:
        if self.num_steps is None:
            raise TypeError("an endless sampler has no length")
        return self.num_steps

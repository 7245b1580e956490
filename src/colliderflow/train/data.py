"""From a random-access sequence of event dicts to padded training batches.

What a model sees is decided here, in four pieces that each do one job:

* `open_splits` — a split of one or more TFDS directories as one sequence, with errors naming the path;
* `ElementNormaliser` / `fit_normalisation` — the element feature transform that lives inside the model
  (so a saved model takes raw `X` and nothing outside it needs to know the statistics);
* `collate_events` — a list of events → a `Batch` padded to the longest event of the batch;
* `EpochBatchSampler` and `read_sampling_weights` — the order of training events, a pure function of
  (seed, step), which is what makes resuming from a checkpoint exact.

An event is a dict of numpy arrays, as `colliderflow.io.tfds_reader.open_split` returns them: X (n, 17),
ytarget (n, 8), ycand (n, 8), genjets (m, 4), targetjets (m, 4), genmet, event_id, n_elements, sample.
Any sequence with `__len__` and `__getitem__` (and optionally `__getitems__`) of such dicts will do,
which is how tests and benchmarks run without the simulation chain.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from colliderflow.config import derive_seed
from colliderflow.schema import (
    CLUSTER_FEATURES,
    ELEM_TYPE_CLUSTER,
    ELEM_TYPE_TRACK,
    N_ELEM_FEATURES,
    N_PARTICLE_FEATURES,
    TRACK_FEATURES,
)

log = logging.getLogger(__name__)

Event = dict[str, Any]

# --------------------------------------------------------------------------------------------------
# Opening the data
# --------------------------------------------------------------------------------------------------


def open_split(data_dir: Path, split: str) -> Sequence[Event]:
    """The reader of one TFDS directory, imported on first use so that this module works without it."""
    from colliderflow.io.tfds_reader import open_split as _open_split

    return _open_split(data_dir, split)


class ConcatEvents(Sequence[Event]):
    """Several event sequences as one, keeping random access and batched reads (`__getitems__`)."""

    def __init__(self, sources: Sequence[Sequence[Event]]) -> None:
        self.sources = list(sources)
        self._ends = np.cumsum([len(s) for s in self.sources]).tolist()  # end index of each source

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _locate(self, index: int) -> tuple[int, int]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"event index {index} out of range for {len(self)} events")
        source = bisect.bisect_right(self._ends, index)
        start = self._ends[source - 1] if source else 0
        return source, index - start

    def __getitem__(self, index: int) -> Event:  # type: ignore[override]
        source, local = self._locate(int(index))
        return self.sources[source][local]

    def __getitems__(self, indices: list[int]) -> list[Event]:
        """Batched read: one `__getitems__` call per source, results in the order asked for."""
        by_source: dict[int, list[tuple[int, int]]] = {}
        for position, index in enumerate(indices):
            source, local = self._locate(int(index))
            by_source.setdefault(source, []).append((position, local))
        out: list[Event | None] = [None] * len(indices)
        for source, pairs in by_source.items():
            seq = self.sources[source]
            locals_ = [local for _, local in pairs]
            events = seq.__getitems__(locals_) if hasattr(seq, "__getitems__") else [seq[i] for i in locals_]
            for (position, _), event in zip(pairs, events, strict=True):
                out[position] = event
        return out  # type: ignore[return-value]


def open_splits(tfds_dirs: Sequence[Path], split: str, *, allow_empty: bool = False) -> ConcatEvents:
    """The `split` of every TFDS directory, concatenated in the order given.

    Raises ValueError naming the directory when one is missing, has no such split, or (unless
    `allow_empty`) when the split holds no event at all.
    """
    if not tfds_dirs:
        raise ValueError("no TFDS directory given")
    sources = []
    for data_dir in map(Path, tfds_dirs):
        if not data_dir.is_dir():
            problem = "is not a directory" if data_dir.exists() else "TFDS directory does not exist"
            raise ValueError(f"{data_dir}: {problem}")
        try:
            seq = open_split(data_dir, split)
        except (KeyError, FileNotFoundError) as exc:
            raise ValueError(f"{data_dir}: cannot open split {split!r}: {exc}") from exc
        if len(seq) == 0 and not allow_empty:
            raise ValueError(f"{data_dir}: split {split!r} holds no events")
        sources.append(seq)
    return ConcatEvents(sources)


def _as_str(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else str(value)


def event_keys(events: Sequence[Event], *, chunk: int = 1024) -> list[tuple[str, int]]:
    """(sample, event_id) of every event, reading in chunks; what sampling weights are keyed by."""
    getitems = getattr(events, "__getitems__", None)
    keys = []
    for start in range(0, len(events), chunk):
        idx = list(range(start, min(start + chunk, len(events))))
        for ev in getitems(idx) if getitems else [events[i] for i in idx]:
            keys.append((_as_str(ev["sample"]), int(ev["event_id"])))
    return keys


# --------------------------------------------------------------------------------------------------
# Element features → normalised model inputs
# --------------------------------------------------------------------------------------------------

# Energies, momenta, counts and widths span orders of magnitude: log1p makes them roughly Gaussian.
# Angles, positions and signed helix parameters are only centred and scaled.
LOG_FEATURES: dict[int, tuple[str, ...]] = {
    ELEM_TYPE_TRACK: ("pt", "p", "chi2", "ndf", "dEdx", "dEdxError", "radiusOfInnermostHit"),
    ELEM_TYPE_CLUSTER: (
        "et", "energy", "energy_ecal", "energy_hcal", "energy_other", "num_hits", "sigma_x", "sigma_y", "sigma_z",
    ),
}
_N_TYPES = 3  # row 0: padding / unknown type (identity), row 1: tracks, row 2: clusters
CLIP = 10.0  # normalised features are clipped to ±CLIP so that one broken element cannot blow up a batch


def _log_mask() -> torch.Tensor:
    """[3, 17] bool: which column of which element type is log-transformed."""
    mask = torch.zeros(_N_TYPES, N_ELEM_FEATURES, dtype=torch.bool)
    for etype, names in ((ELEM_TYPE_TRACK, TRACK_FEATURES), (ELEM_TYPE_CLUSTER, CLUSTER_FEATURES)):
        for name in LOG_FEATURES[etype]:
            mask[etype, names.index(name)] = True
    return mask


def element_type_index(X: torch.Tensor) -> torch.Tensor:
    """Row of the per-type tables for each element: 1 track, 2 cluster, 0 anything else (padding)."""
    etype = X[..., 0].round().long()  # [...]
    return torch.where((etype == ELEM_TYPE_TRACK) | (etype == ELEM_TYPE_CLUSTER), etype, 0)


def transform_elements(X: torch.Tensor, log_mask: torch.Tensor) -> torch.Tensor:
    """X [..., 17] → log1p of the heavy-tailed columns (negative values clamped to 0).

    NaN becomes 0 and ±inf a large finite value, which the normaliser's clipping then bounds.
    """
    logm = log_mask[element_type_index(X)]  # [..., 17]
    out = torch.where(logm, torch.log1p(X.clamp(min=0.0)), X)
    return torch.nan_to_num(out, nan=0.0, posinf=1e9, neginf=-1e9)


@dataclass
class Normalisation:
    """Per-element-type centre and scale of the transformed features; arrays of shape [3, 17]."""

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def identity(cls) -> Normalisation:
        return cls(np.zeros((_N_TYPES, N_ELEM_FEATURES), np.float32), np.ones((_N_TYPES, N_ELEM_FEATURES), np.float32))

    def to_dict(self) -> dict[str, Any]:
        return {
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "log_features": {str(k): list(v) for k, v in LOG_FEATURES.items()},
        }


def fit_normalisation(events: Sequence[Event], *, max_events: int = 2000) -> Normalisation:
    """Robust centre (median) and scale (IQR / 1.349) of each transformed feature, per element type.

    Medians and quantiles, not mean and std, because a few mis-measured elements (a 1e4 GeV cluster, a
    χ² of 1e6) would otherwise set the scale for everything. Uses up to `max_events` events spread evenly
    over the sequence, so the result is deterministic and costs one partial pass.
    """
    n = len(events)
    if n == 0:
        raise ValueError("cannot fit the feature normalisation on zero events")
    idx = np.unique(np.linspace(0, n - 1, num=min(n, max_events)).round().astype(int)).tolist()
    getitems = getattr(events, "__getitems__", None)
    chosen = getitems(idx) if getitems else [events[i] for i in idx]
    X = torch.from_numpy(np.concatenate([np.asarray(ev["X"], np.float32).reshape(-1, N_ELEM_FEATURES)
                                         for ev in chosen]))  # [n_elements_total, 17]
    Xt = transform_elements(X, _log_mask())
    etype = element_type_index(X)
    norm = Normalisation.identity()
    for t in (ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER):
        rows = Xt[etype == t].double().numpy()  # [n_t, 17]
        if len(rows) < 2:
            continue
        q25, q50, q75 = np.quantile(rows, [0.25, 0.5, 0.75], axis=0)
        scale = (q75 - q25) / 1.349  # = σ for a Gaussian
        std = rows.std(axis=0)
        # Columns that are mostly one value (ndf, energy_other, the pad column): fall back to std, then 1.
        # (An absolute floor, not a relative one: dE/dx is ~1e-7 GeV/mm and must keep its spread.)
        scale = np.where(scale > 1e-12, scale, np.where(std > 1e-12, std, 1.0))
        norm.center[t] = q50
        norm.scale[t] = scale
    norm.center[:, 0], norm.scale[:, 0] = 0.0, 1.0  # the type column itself is not a feature
    return norm


class ElementNormaliser(nn.Module):
    """Raw X [B, N, 17] → normalised features [B, N, 16] (the type column dropped), clipped to ±CLIP.

    The statistics are buffers, so they travel with the model's state_dict and a loaded model takes raw
    elements straight from the dataset.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("log_mask", _log_mask(), persistent=False)
        self.register_buffer("center", torch.zeros(_N_TYPES, N_ELEM_FEATURES))
        self.register_buffer("scale", torch.ones(_N_TYPES, N_ELEM_FEATURES))

    def set_statistics(self, norm: Normalisation) -> None:
        self.center.copy_(torch.as_tensor(norm.center, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(norm.scale, dtype=torch.float32))

    def statistics(self) -> Normalisation:
        return Normalisation(self.center.cpu().numpy().copy(), self.scale.cpu().numpy().copy())

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        etype = element_type_index(X)  # [B, N]
        Xt = transform_elements(X, self.log_mask)  # [B, N, 17]
        z = (Xt - self.center[etype]) / self.scale[etype]
        return z[..., 1:].clamp(-CLIP, CLIP)  # [B, N, 16]


# --------------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------------


@dataclass
class Batch:
    """Events padded to the longest of the batch. Padding rows are all zeros and `mask` is False there."""

    X: torch.Tensor  # [B, N, 17] float32
    ytarget: torch.Tensor  # [B, N, 8] float32
    mask: torch.Tensor  # [B, N] bool, True for real elements
    event_id: torch.Tensor  # [B] int64
    sample: list[str]

    def to(self, device: torch.device | str) -> Batch:
        non_blocking = torch.device(device).type == "cuda"
        return Batch(
            X=self.X.to(device, non_blocking=non_blocking),
            ytarget=self.ytarget.to(device, non_blocking=non_blocking),
            mask=self.mask.to(device, non_blocking=non_blocking),
            event_id=self.event_id,
            sample=self.sample,
        )

    def __len__(self) -> int:
        return self.X.shape[0]


def _check_event(ev: Event) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(ev["X"], dtype=np.float32)
    y = np.asarray(ev["ytarget"], dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != N_ELEM_FEATURES or y.shape != (X.shape[0], N_PARTICLE_FEATURES):
        raise ValueError(
            f"event {_as_str(ev.get('sample', '?'))}/{ev.get('event_id', '?')}: expected X (n, {N_ELEM_FEATURES}) and "
            f"ytarget (n, {N_PARTICLE_FEATURES}), got {X.shape} and {y.shape}"
        )
    return X, y


def collate_events(events: list[Event]) -> Batch:
    """A list of events → one `Batch`, padded to the batch's longest event (at least one row)."""
    arrays = [_check_event(ev) for ev in events]
    n_max = max([1] + [X.shape[0] for X, _ in arrays])
    X = np.zeros((len(events), n_max, N_ELEM_FEATURES), np.float32)
    y = np.zeros((len(events), n_max, N_PARTICLE_FEATURES), np.float32)
    mask = np.zeros((len(events), n_max), bool)
    for i, (Xi, yi) in enumerate(arrays):
        n = Xi.shape[0]
        X[i, :n], y[i, :n], mask[i, :n] = Xi, yi, True
    return Batch(
        X=torch.from_numpy(X),
        ytarget=torch.from_numpy(y),
        mask=torch.from_numpy(mask),
        event_id=torch.tensor([int(ev["event_id"]) for ev in events], dtype=torch.int64),
        sample=[_as_str(ev["sample"]) for ev in events],
    )


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Synthetic events
# --------------------------------------------------------------------------------------------------


def synthetic_events(n_events: int, *, seed: int = 0, min_elements: int = 100, max_elements: int = 200,
                     sample: str = "synthetic", first_event_id: int = 0) -> list[Event]:
    """Events with the real layout and a rule a model can learn, for tests and benchmarks.

    The rule: a track is a charged hadron (a muon when its χ² column is below 0.5) with charge = sign of
    its curvature; a cluster under 0.5 GeV is no particle, otherwise a photon when most of its energy is
    in the ECAL and a neutral hadron when not. Target pT and E are 0.9 and 0.95 of the element's, the
    direction is the element's. Element features follow the schema's column order and units.
    """
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n_events):
        n = int(rng.integers(min_elements, max_elements + 1))
        n_trk = int(rng.binomial(n, 0.4))
        eta = rng.uniform(-2.5, 2.5, n).astype(np.float32)
        phi = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
        pt = rng.lognormal(0.5, 1.0, n).astype(np.float32)
        X = np.zeros((n, N_ELEM_FEATURES), np.float32)
        X[:, 0] = np.where(np.arange(n) < n_trk, ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER)
        X[:, 1], X[:, 2], X[:, 3], X[:, 4] = pt, eta, np.sin(phi), np.cos(phi)
        X[:, 5] = pt * np.cosh(eta)  # p for tracks, energy for clusters
        trk, clu = slice(0, n_trk), slice(n_trk, n)
        # tracks: chi2, ndf, dEdx, dEdxError, radius, tanLambda, D0, omega, Z0, time, pad
        X[trk, 6] = rng.exponential(2.0, n_trk)
        X[trk, 7] = rng.integers(5, 20, n_trk)
        X[trk, 8] = rng.normal(3e-7, 5e-8, n_trk)
        X[trk, 9] = rng.normal(1e-8, 1e-9, n_trk)
        X[trk, 10] = rng.uniform(20, 60, n_trk)
        X[trk, 11] = np.sinh(eta[trk])
        X[trk, 12] = rng.normal(0, 0.05, n_trk)
        X[trk, 13] = rng.choice([-1.0, 1.0], n_trk) * 1.3e-3 / pt[trk]  # signed curvature, 1/mm (4 T)
        X[trk, 14] = rng.normal(0, 0.1, n_trk)
        X[trk, 15] = rng.normal(0, 0.01, n_trk)
        # clusters: position x, y, z, iTheta, energy_ecal, energy_hcal, energy_other, num_hits, sigma x, y, z
        f_ecal = rng.uniform(0, 1, n - n_trk).astype(np.float32)
        energy = X[clu, 5]
        theta = 2 * np.arctan(np.exp(-eta[clu]))
        X[clu, 6], X[clu, 7], X[clu, 8] = 1500 * np.cos(phi[clu]), 1500 * np.sin(phi[clu]), 1500 / np.tan(theta)
        X[clu, 9] = theta
        X[clu, 10], X[clu, 11], X[clu, 12] = f_ecal * energy, (1 - f_ecal) * energy, 0.0
        X[clu, 13] = rng.integers(1, 200, n - n_trk)
        X[clu, 14:17] = rng.uniform(5, 50, (n - n_trk, 3))

        y = np.zeros((n, N_PARTICLE_FEATURES), np.float32)
        cls = np.zeros(n, np.int64)
        cls[trk] = np.where(X[trk, 6] < 0.5, 5, 1)
        cls[clu] = np.where(energy < 0.5, 0, np.where(f_ecal > 0.5, 3, 2))
        y[:, 0] = cls
        y[trk, 1] = np.sign(X[trk, 13])
        y[:, 2], y[:, 6] = 0.9 * X[:, 1], 0.95 * X[:, 5]
        y[:, 3], y[:, 4], y[:, 5] = X[:, 2], X[:, 3], X[:, 4]
        y[cls == 0] = 0.0
        ycand = y.copy()
        flip = rng.uniform(size=n) < 0.1
        ycand[flip, 0] = np.where(ycand[flip, 0] == 2, 3, ycand[flip, 0])
        m = int(rng.integers(1, 6))
        jets = np.stack([rng.uniform(5, 100, m), rng.uniform(-2, 2, m), rng.uniform(-3, 3, m),
                         rng.uniform(10, 150, m)], axis=1).astype(np.float32)
        events.append({
            "X": X, "ytarget": y, "ycand": ycand, "genjets": jets, "targetjets": jets.copy(),
            "genmet": np.float32(rng.exponential(10.0)), "event_id": np.int64(first_event_id + i),
            "n_elements": np.int32(n), "sample": sample,
        })
    return events

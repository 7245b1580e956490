"""From a random-access sequence of event dicts to padded training batches.

What a model sees is decided here and in two neighbours, each doing one job:

* `open_splits` — a split of one or more TFDS directories as one sequence, with errors naming the path;
* `collate_events` — a list of events → a `Batch` padded to the longest event of the batch;
* `synthetic_events` — events with the real layout and a learnable rule, for tests and benchmarks;
* the element feature transform lives inside the model (colliderflow.models.normalise), and the order of
  training events is colliderflow.train.sampling's.

An event is a dict of numpy arrays, as `colliderflow.io.tfds_reader.open_split` returns them: X (n, 17),
ytarget (n, 8), ycand (n, 8), genjets (m, 4), targetjets (m, 4), genmet, event_id, n_elements, sample.
Any sequence with `__len__` and `__getitem__` (and optionally `__getitems__`) of such dicts will do,
which is how tests and benchmarks run without the simulation chain.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colliderflow.schema import N_ELEM_FEATURES, N_PARTICLE_FEATURES
from colliderflow.synthetic import synthetic_events  # noqa: F401  (re-exported: tests and benchmarks use it here)

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


def event_index(events: Sequence[Event]) -> tuple[Any, np.ndarray, np.ndarray]:
    """(sample [n] (a pandas Categorical), event_id [n] int64, n_elements [n] int64) of every event.

    From each TFDS dataset's keys.parquet (io.tfds_keys), written when the dataset was built: nothing is
    decoded. A source without one — an in-memory list (tests), or a dataset built before keys files
    existed — is read through once, with a warning for the latter.
    """
    import pandas as pd

    from colliderflow.io.tfds_keys import KEYS_FILE, read_split_keys

    sources = events.sources if isinstance(events, ConcatEvents) else [events]
    # Per source: its sample names and a small code per event into them (no Python object per event);
    # the codes are mapped to the sorted union of names at the end, the categories pd.Categorical of the
    # names themselves would have.
    names, codes, ids, lengths = [], [], [], []
    for source in sources:
        version_dir = getattr(source, "version_dir", None)
        found = read_split_keys(version_dir, source.split, len(source)) if version_dir is not None else None
        if found is not None:
            sample, event_id, n_elements = found
            names.append([_as_str(v) for v in sample.dictionary.to_pylist()])
            codes.append(sample.indices.to_numpy(zero_copy_only=False).astype(np.int64))
        else:
            if version_dir is not None:
                log.warning("%s: no %s (built by an older version): reading every event once for its key; "
                            "rebuild the dataset to skip this", version_dir, KEYS_FILE)
            pairs = event_keys(source)
            event_id = np.array([e for _, e in pairs], dtype=np.int64)
            local, code = np.unique(np.array([s for s, _ in pairs], dtype=object), return_inverse=True) \
                if pairs else (np.zeros(0, object), np.zeros(0, np.int64))
            names.append([str(v) for v in local.tolist()])
            codes.append(np.asarray(code, np.int64).reshape(-1))
            getitems = getattr(source, "__getitems__", None)
            n_elements = np.array([len(ev["X"]) for start in range(0, len(source), 1024) for ev in (
                getitems(list(range(start, min(start + 1024, len(source))))) if getitems else
                [source[i] for i in range(start, min(start + 1024, len(source)))])], dtype=np.int64)
        ids.append(event_id)
        lengths.append(n_elements)
    categories = sorted({name for group in names for name in group})
    position = {name: i for i, name in enumerate(categories)}
    code_type = np.min_scalar_type(max(len(categories) - 1, 0))
    all_codes = np.concatenate([np.zeros(0, code_type)] + [
        np.asarray([position[n] for n in group], dtype=code_type)[code] if len(code) else np.zeros(0, code_type)
        for group, code in zip(names, codes, strict=True)])
    sample_all = pd.Categorical.from_codes(all_codes, categories=pd.Index(categories, dtype=object))
    return sample_all, np.concatenate(ids) if ids else np.zeros(0, np.int64), \
        np.concatenate(lengths) if lengths else np.zeros(0, np.int64)


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

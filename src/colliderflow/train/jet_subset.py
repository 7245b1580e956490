"""Some jets of a JetDataset (a training or validation split) without an index per jet.

A subset is a bit per jet, packed row group by row group (each group's bits start on a byte), and the
number of members of each row group: an eighth of a byte a jet, where an int32 index per jet cost 340 MB
at JetClass-II's 86M jets. Subset position p is found in its row group by a binary search over the
groups' member counts, and its jet by unpacking that one group's bits; a batch does this once per row
group it touches. The members are always in dataset order (jets by file, then row), so a subset reads row
group by row group like the dataset, and its positions map to the same jets as the sorted index array of
earlier versions: the sampler's draws name the same jets.

`split_train_val` builds the fixed, seed-free train/validation split a file at a time.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from colliderflow.train.sampling import SampleKeys

_PIECE = 1 << 20  # subset positions handled at a time where a per-jet value is produced in pieces


class JetSubset(Sequence[dict[str, Any]]):
    """Some jets of a JetDataset (`dataset`: jet_data.JetDataset), in dataset order; keeps `n_particles`,
    `keys` and blocks for bucketing and weights. `indices` (increasing jet numbers) builds one from a list;
    `all` and `split_train_val` build them a file at a time."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray | None = None, *,
                 _parts: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        self.dataset = dataset
        if _parts is None:
            idx = np.asarray(indices, dtype=np.int64)
            n = len(dataset)
            if idx.size and (idx[0] < 0 or idx[-1] >= n or (np.diff(idx) <= 0).any()):
                raise ValueError(f"JetSubset: expected increasing jet indices in [0, {n})")
            flags = np.zeros(n, np.bool_)
            flags[idx] = True
            starts = dataset._file_start
            _parts = _pack(dataset, lambda k: flags[starts[k] : starts[k + 1]])
        # _bits: packed membership bits; _byte_start [n_groups + 1]: where each row group's bits start;
        # _sub_start [n_groups + 1]: the subset position of each row group's first member.
        self._bits, self._byte_start, self._sub_start = _parts

    @classmethod
    def all(cls, dataset: Any) -> JetSubset:
        """Every jet of the dataset."""
        starts = dataset._file_start
        return cls(dataset, _parts=_pack(dataset, lambda k: np.ones(int(starts[k + 1] - starts[k]), np.bool_)))

    def __len__(self) -> int:
        return int(self._sub_start[-1])

    def _members(self, g: int) -> np.ndarray:
        """[members of row group g] int64 their jet numbers in the dataset."""
        first, end = int(self.dataset._group_start[g]), int(self.dataset._group_start[g + 1])
        bits = np.unpackbits(self._bits[self._byte_start[g] : self._byte_start[g + 1]], count=end - first)
        return first + np.flatnonzero(bits)

    def select(self, start: int, end: int) -> np.ndarray:
        """[end - start] int64: the jet numbers of subset positions start … end - 1."""
        if not 0 <= start <= end <= len(self):
            raise IndexError(f"jets {start}:{end} of a subset of {len(self)}")
        if start == end:
            return np.zeros(0, np.int64)
        g0 = int(np.searchsorted(self._sub_start, start, side="right")) - 1
        g1 = int(np.searchsorted(self._sub_start, end - 1, side="right")) - 1
        members = np.concatenate([self._members(g) for g in range(g0, g1 + 1)])
        offset = start - int(self._sub_start[g0])
        return members[offset : offset + end - start]

    def positions_to_jets(self, positions: np.ndarray) -> np.ndarray:
        """Jet numbers of any subset positions (a batch's draws), in the order given."""
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= len(self)):
            raise IndexError(f"jet positions outside a subset of {len(self)}")
        groups = np.searchsorted(self._sub_start, pos, side="right") - 1
        out = np.empty(len(pos), np.int64)
        for g in np.unique(groups).tolist():  # a few row groups a batch
            mine = groups == g
            out[mine] = self._members(g)[pos[mine] - self._sub_start[g]]
        return out

    @property
    def indices(self) -> np.ndarray:
        """[len] int64 every member's jet number (built on demand: 8 bytes a jet)."""
        return self.select(0, len(self))

    @property
    def n_particles(self) -> np.ndarray:
        return self.dataset.n_particles[self.indices]

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        index = int(index)
        return self.dataset[int(self.select(index, index + 1)[0])]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        return self.dataset.__getitems__(self.positions_to_jets(np.asarray(indices, dtype=np.int64)))

    def block_ends(self) -> np.ndarray:
        """End positions of the runs of members that share a row group (groups without one are skipped)."""
        ends = self._sub_start[1:][np.diff(self._sub_start) > 0].astype(np.int64)
        return ends if ends.size else np.zeros(1, np.int64)

    def keys(self) -> list[tuple[str, int]]:
        keys = self.dataset.keys()
        return [keys[i] for i in self.indices.tolist()]

    def key_arrays(self) -> SampleKeys:
        return self.dataset.keys_of(self.indices)

    def key_slice(self, start: int, end: int) -> SampleKeys:
        return self.dataset.keys_of(self.select(start, end))

    def n_particles_pieces(self) -> Iterator[np.ndarray]:
        """`n_particles` in pieces (JetDataset.n_particles_pieces): never all in memory."""
        for a in range(0, len(self), _PIECE):
            yield from self.dataset.n_particles_pieces(self.select(a, min(len(self), a + _PIECE)))


def _pack(dataset: Any, flags_of_file: Callable[[int], np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(packed bits, byte start of each row group, subset position of each row group) from each file's
    membership flags (one bool per kept jet of file k, in order), a file at a time."""
    group_start, starts = dataset._group_start, dataset._file_start
    group_file = dataset._rg_file
    packed: list[np.ndarray] = []
    sizes, counts = [], []
    g = 0
    for k in range(len(dataset.paths)):
        flags = np.asarray(flags_of_file(k), dtype=np.bool_)
        if len(flags) != starts[k + 1] - starts[k]:
            raise ValueError(f"{dataset.paths[k]}: {len(flags)} subset flags for {starts[k + 1] - starts[k]} jets")
        while g < len(group_file) and group_file[g] == k:
            part = flags[group_start[g] - starts[k] : group_start[g + 1] - starts[k]]
            packed.append(np.packbits(part))
            sizes.append(len(packed[-1]))
            counts.append(int(part.sum()))
            g += 1
    byte_start = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
    sub_start = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
    bits = np.concatenate(packed) if packed else np.zeros(0, np.uint8)
    return bits, byte_start, sub_start


def split_train_val(dataset: Any, val_fraction: float) -> tuple[JetSubset, JetSubset]:
    """A fixed split: jets whose (file, row) hash below val_fraction are validation.

    Hashing (sample, row) rather than permuting with the training seed keeps the validation set the
    same across seeds and when shards are added, so validation losses stay comparable. Computed a file at
    a time: nothing per jet of the whole set is built.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"train.val_fraction: expected a value in [0, 1), got {val_fraction!r}")
    starts = dataset._file_start

    def is_val(k: int) -> np.ndarray:
        rows = dataset._file_rows(k, np.arange(int(starts[k + 1] - starts[k]), dtype=np.int64))
        code = np.uint64(zlib.crc32(dataset.stems[k].encode()))
        h = (rows.astype(np.uint64) * np.uint64(2654435761) + code) % np.uint64(2**32)
        return h.astype(np.float64) / 2**32 < val_fraction

    val = JetSubset(dataset, _parts=_pack(dataset, is_val))
    train = JetSubset(dataset, _parts=_pack(dataset, lambda k: ~is_val(k)))
    return train, val

"""JetClass-II Parquet shards → padded constituent tensors and class labels, for the jet taggers.

* `JetDataset` — one or more shards as a random-access sequence of jets (dicts), read row group by row
  group on demand (features computed vectorised per row group, a bounded cache); a batched read
  (`__getitems__`) returns the jets' constituents concatenated. Jets whose `jet_label` is not in the
  label list are dropped (counted).
* `collate_jets` — jets → a `JetBatch` padded to the batch's longest jet (up to max_particles).
* `split_train_val` / `JetSubset` (jet_subset) — a fixed, seed-independent train/validation split of
  the jets, without an index per jet.
* `synthetic_jet_table` — a table in the exact JetClass-II schema with a learnable rule, for tests and
  benchmarks.

A jet is {"features" (n, 17) float32, "p4" (n, 4) float32, "label" int (class index), "n_particles",
"sample" (file stem), "event_id" (row in its file)}. (sample, event_id) is also what sampling weights are
keyed by, so colliderflow.train.sampling.read_sampling_weights serves both tasks. Four-momenta are (px, py, pz, E)
in GeV; constituents stay in the file's order (descending pT), so truncation keeps the hardest.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from colliderflow.io.dataset_files import jet_files  # noqa: F401  (re-exported)
from colliderflow.synthetic import synthetic_jet_table  # noqa: F401  (re-exported)
from colliderflow.train.jet_subset import JetSubset, split_train_val  # noqa: F401  (re-exported)
from colliderflow.train.sampling import SampleKeys

log = logging.getLogger(__name__)

Jet = dict[str, Any]

# Per-particle inputs of ParT ("kin + pid + trk"), in this order. Centres and scales are the fixed
# ones of the JetClass data configuration: a fixed transform needs no fitting and is the same for every
# shard, so a model trained on one production reads another.
PARTICLE_FEATURES: tuple[str, ...] = (
    "log_pt", "log_energy", "log_pt_rel", "log_energy_rel", "delta_r", "deta", "dphi",
    "charge", "is_charged_hadron", "is_neutral_hadron", "is_photon", "is_electron", "is_muon",
    "tanh_d0", "d0_err", "tanh_dz", "dz_err",
)
N_PARTICLE_FEATURES = len(PARTICLE_FEATURES)
PART_COLUMNS = ("part_px", "part_py", "part_pz", "part_energy", "part_deta", "part_dphi", "part_d0val",
                "part_d0err", "part_dzval", "part_dzerr", "part_charge", "part_isChargedHadron",
                "part_isNeutralHadron", "part_isPhoton", "part_isElectron", "part_isMuon")
JET_COLUMNS = ("jet_pt", "jet_energy", "jet_label")
TINY = 1e-8
OPEN_FILES = 32  # files whose parsed footer a JetDataset keeps, least recently used dropped first
_PIECE = 1 << 20  # jet indices handled at a time where a per-jet value is produced in pieces


def _flat(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A list column → (flat values, counts per jet)."""
    arr = column.combine_chunks()
    counts = pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    return pc.list_flatten(arr).to_numpy(zero_copy_only=False), counts


def particle_features(cols: dict[str, np.ndarray], jet_pt: np.ndarray, jet_energy: np.ndarray) -> np.ndarray:
    """[n_total, 17] float32 from flat constituent columns and each constituent's jet pT and energy."""
    px, py = cols["part_px"], cols["part_py"]
    pt = np.hypot(px, py)
    energy = cols["part_energy"]
    deta, dphi = cols["part_deta"], cols["part_dphi"]
    columns = [
        (np.log(np.maximum(pt, TINY)) - 1.7) * 0.7,
        (np.log(np.maximum(energy, TINY)) - 2.0) * 0.7,
        (np.log(np.maximum(pt / np.maximum(jet_pt, TINY), TINY)) + 4.7) * 0.7,
        (np.log(np.maximum(energy / np.maximum(jet_energy, TINY), TINY)) + 4.7) * 0.7,
        (np.hypot(deta, dphi) - 0.2) * 4.0,
        deta, dphi,
        cols["part_charge"],
        cols["part_isChargedHadron"], cols["part_isNeutralHadron"], cols["part_isPhoton"],
        cols["part_isElectron"], cols["part_isMuon"],
        np.tanh(cols["part_d0val"]), np.clip(cols["part_d0err"], 0.0, 1.0),
        np.tanh(cols["part_dzval"]), np.clip(cols["part_dzerr"], 0.0, 1.0),
    ]
    # Column by column into a column-major array (each value cast to float32 once, as a stack then
    # astype would, without the [n, 17] float64 intermediate), then one transpose copy.
    f = np.empty((len(pt), N_PARTICLE_FEATURES), np.float32, order="F")
    for i, column in enumerate(columns):
        f[:, i] = column
    np.nan_to_num(f, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(f)


def _class_index(jet_label: np.ndarray, labels: list[int]) -> np.ndarray:
    """[n] position of each jet_label in `labels`, -1 when absent (a sorted search: no lookup table, which
    a stray huge label would blow up, and no numba import for the training process)."""
    order = np.argsort(labels)
    values = np.asarray(labels, dtype=np.int64)[order]
    pos = np.minimum(np.searchsorted(values, jet_label), len(values) - 1)
    return np.where(values[pos] == jet_label, order[pos], -1)


def _parquet(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise ValueError(f"{path}: jet Parquet file does not exist")
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: not a JetClass-II jet file: {exc}") from exc


def _read_column(path: Path, name: str) -> np.ndarray:
    try:
        return pq.read_table(path, columns=[name]).column(name).to_numpy()
    except (KeyError, OSError, ValueError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: not a JetClass-II jet file: {exc}") from exc


def _read_labels(path: Path) -> np.ndarray:
    _parquet(path)
    return _read_column(path, "jet_label")


@dataclass
class RowGroup:
    """One decoded Parquet row group: every jet's constituent features, in file order."""

    features: np.ndarray  # [n_particles_total, 17] float32
    p4: np.ndarray  # [n_particles_total, 4] float32
    offsets: np.ndarray  # [n_rows + 1] int64, jet r's constituents are offsets[r]:offsets[r + 1]
    classes: np.ndarray | None = None  # [n_rows] int16 class index of each row (-1: not trained on); set by JetDataset

    @property
    def nbytes(self) -> int:
        labels = 0 if self.classes is None else self.classes.nbytes
        return self.features.nbytes + self.p4.nbytes + self.offsets.nbytes + labels


def decode_row_group(table: pa.Table) -> RowGroup:
    """Constituent columns of some jets → features and four-momenta, vectorised over all constituents."""
    flat = {}
    for name in PART_COLUMNS:
        flat[name], n = _flat(table.column(name))
        flat[name] = flat[name].astype(np.float32)
    jet_of = np.repeat(np.arange(len(n)), n)  # [n_total] jet index of each constituent
    f = particle_features(flat, table.column("jet_pt").to_numpy()[jet_of], table.column("jet_energy").to_numpy()[jet_of])
    p4 = np.stack([flat["part_px"], flat["part_py"], flat["part_pz"], flat["part_energy"]], axis=1)
    return RowGroup(f, p4, np.concatenate([[0], np.cumsum(n)]))


@dataclass
class RaggedJets:
    """Some jets, by reference into the arrays that hold their constituents: what a batched read returns.

    Jets come in segments (one per row group read); segment s holds `features`/`p4` arrays and, for each of
    its jets, the first constituent row `starts` (its constituents are starts … starts + count). collate_jets
    pads them with one gather-scatter per segment, so a constituent is copied once from the decoded row
    group into the batch tensor.
    """

    segments: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (features [N, 17], p4 [N, 4], starts [b_s])
    counts: np.ndarray  # [B] int64 constituents of each jet, segment by segment
    labels: np.ndarray  # [B] int64 class index, segment by segment
    position: np.ndarray  # [B] the batch row of each jet (the order it was asked for)

    def __len__(self) -> int:
        return len(self.counts)

    @classmethod
    def from_jets(cls, jets: list[Jet]) -> RaggedJets:
        counts = np.array([len(j["p4"]) for j in jets], dtype=np.int64)
        features = np.concatenate([j["features"] for j in jets]) if jets else np.zeros((0, N_PARTICLE_FEATURES), np.float32)
        p4 = np.concatenate([j["p4"] for j in jets]) if jets else np.zeros((0, 4), np.float32)
        return cls([(features, p4, np.cumsum(counts) - counts)], counts,
                   np.array([j["label"] for j in jets], dtype=np.int64), np.arange(len(jets)))

    @property
    def features(self) -> np.ndarray:
        """[n_total, 17] the constituents' features, jet after jet in batch order (a copy)."""
        parts, b = [], 0
        for features, _, starts in self.segments:
            n = self.counts[b : b + len(starts)]
            parts.append(features[np.repeat(starts - np.cumsum(n) + n, n) + np.arange(int(n.sum()))])
            b += len(starts)
        stored = np.concatenate(parts) if parts else np.zeros((0, N_PARTICLE_FEATURES), np.float32)
        ends = np.cumsum(self.counts)
        order = np.argsort(self.position, kind="stable")  # stored jets in batch order
        n = self.counts[order]
        return stored[np.repeat((ends - self.counts)[order] - np.cumsum(n) + n, n) + np.arange(int(n.sum()))]


class JetDataset(Sequence[Jet]):
    """The jets of some JetClass-II Parquet shards whose `jet_label` is in `labels`, in file order,
    read row group by row group on demand.

    labels: the jet_label values to train on; class index = position in this list; None: every label
    present in the files, sorted (a run then records the list it found). Opening reads only the
    `jet_label` column and the files' footers; what is kept is per file and per row group (where each
    starts, how many jets it keeps), plus the kept rows of a file only where its labels drop some jets.
    A jet's class is read with its constituents: they are read and their features computed a row group
    at a time, when a jet is asked for, and kept in a per-process cache of at most `cache_bytes` (least
    recently used goes first). A training run asks for jets window by window
    (sampling.EpochBatchSampler, `block_ends`), so each row group is decoded about once an epoch and
    memory does not grow with the dataset. `rows` and `classes` (per jet) are built on demand.
    """

    def __init__(self, paths: Sequence[Path], *, labels: Sequence[int] | None = None,
                 cache_bytes: int = 384 << 20) -> None:
        if not paths:
            raise ValueError("no jet Parquet file given")
        self.paths = [Path(p) for p in paths]
        # Row counts of every row group, per file (the footers only; the metadata objects are not kept).
        self.rg_ends: list[np.ndarray] = []  # per file: end row of each row group
        for p in self.paths:
            meta = _parquet(p).metadata
            self.rg_ends.append(np.cumsum([meta.row_group(g).num_rows for g in range(meta.num_row_groups)],
                                          dtype=np.int64))
        if labels is None:
            found: set[int] = set()
            for p in self.paths:
                found |= set(np.unique(_read_column(p, "jet_label")).tolist())
            labels = sorted(found - {-1})
        if len(set(labels)) != len(labels) or not labels:
            raise ValueError(f"labels: expected a non-empty list of distinct jet_label values, got {list(labels)}")
        self.labels = [int(x) for x in labels]
        # Nothing per jet: jets are in (file, row) order, so a jet's file and row group are found from where
        # each file and row group starts (`_file_start`, `_group_start`), its row from where its file starts
        # — through `_kept_rows` (int32 a kept jet) only in a file whose labels drop some jets — and its
        # class from its row group's jet_label column when the group is decoded.
        self._kept_rows: list[np.ndarray | None] = []  # per file: rows of the kept jets; None: every row
        file_start, group_counts = [0], []
        for path, ends in zip(self.paths, self.rg_ends, strict=True):
            keep = _class_index(_read_column(path, "jet_label").astype(np.int64), self.labels) >= 0
            kept_rows = np.flatnonzero(keep)
            if not keep.all():
                log.info("%s: %d of %d jets have a label outside the label list and are skipped",
                         path, int((~keep).sum()), len(keep))
            row_type = np.int32 if len(keep) < 2**31 else np.int64
            self._kept_rows.append(None if keep.all() else kept_rows.astype(row_type))
            group_counts.append(np.bincount(np.searchsorted(ends, kept_rows, side="right"), minlength=len(ends)))
            file_start.append(file_start[-1] + len(kept_rows))
        self._file_start = np.asarray(file_start, np.int64)  # [n_files + 1] first jet of each file
        self._group_start = np.concatenate([[0], np.cumsum(np.concatenate([np.zeros(0, np.int64), *group_counts]))]
                                           ).astype(np.int64)  # [n_row_groups + 1] first jet of each global row group
        self.stems = [p.stem for p in self.paths]  # [n_files] what a jet's file is called in weights files
        pa.default_memory_pool().release_unused()  # the label columns' buffers
        self._rg_file = np.repeat(np.arange(len(self.paths)), [len(e) for e in self.rg_ends])
        self._rg_local = np.concatenate([np.arange(len(e)) for e in self.rg_ends])
        self._rg_first_row = np.concatenate([np.concatenate([[0], e[:-1]]) for e in self.rg_ends])
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[int, RowGroup] = OrderedDict()
        self._footers: OrderedDict[int, pq.FileMetaData] = OrderedDict()  # of the last OPEN_FILES files read
        self._n_particles: np.ndarray | None = None

    # ---- keys and layout (no constituent is read)

    def __len__(self) -> int:
        return int(self._file_start[-1])

    def _file_rows(self, k: int, local: np.ndarray) -> np.ndarray:
        """Rows in file k of its kept jets number `local` (0 = the file's first kept jet)."""
        kept = self._kept_rows[k]
        return local if kept is None else kept[local]

    @property
    def rows(self) -> np.ndarray:
        """[n_jets] row of each jet in its file (built on demand: 4 bytes a jet)."""
        dtype = np.int32 if all(len(e) == 0 or e[-1] < 2**31 for e in self.rg_ends) else np.int64
        parts = [self._file_rows(k, np.arange(b - a, dtype=dtype)) for k, (a, b)
                 in enumerate(zip(self._file_start[:-1].tolist(), self._file_start[1:].tolist(), strict=True))]
        return np.concatenate([np.zeros(0, dtype), *parts]).astype(dtype, copy=False)

    @property
    def classes(self) -> np.ndarray:
        """[n_jets] int16 class index of each jet (reads every file's jet_label column again)."""
        parts = [_class_index(_read_column(p, "jet_label").astype(np.int64), self.labels) for p in self.paths]
        return np.concatenate([np.zeros(0, np.int16)] + [c[c >= 0].astype(np.int16) for c in parts])

    def file_of(self, index: np.ndarray) -> np.ndarray:
        """File (position in `paths`) of each jet index."""
        return np.searchsorted(self._file_start, index, side="right") - 1

    def group_of(self, index: np.ndarray) -> np.ndarray:
        """Global row group (numbered over all files) of each jet index."""
        return np.searchsorted(self._group_start, index, side="right") - 1

    @property
    def file_index(self) -> np.ndarray:
        """[n_jets] file of each jet (built on demand: 1–2 bytes a jet)."""
        codes = np.arange(len(self.paths), dtype=np.min_scalar_type(max(len(self.paths) - 1, 0)))
        return np.repeat(codes, np.diff(self._file_start))

    @property
    def row_group(self) -> np.ndarray:
        """[n_jets] global row group of each jet (built on demand)."""
        return np.repeat(np.arange(len(self._group_start) - 1, dtype=np.int32), np.diff(self._group_start))

    @property
    def samples(self) -> pd.Categorical:
        """[n_jets] the file stem of each jet, as codes into `stems` (no Python string per jet)."""
        return pd.Categorical.from_codes(self.file_index, categories=pd.Index(self.stems, dtype=object))

    @property
    def n_particles(self) -> np.ndarray:
        """[n_jets] int32 constituents of each jet (the `jet_nparticles` column; read on first use)."""
        if self._n_particles is None:
            counts = [_read_column(p, "jet_nparticles").astype(np.int32) for p in self.paths]
            rows = self.rows
            self._n_particles = np.concatenate(
                [np.zeros(0, np.int32)] + [counts[k][rows[a:b]] for k, (a, b)
                                           in enumerate(zip(self._file_start[:-1], self._file_start[1:], strict=True))])
        return self._n_particles

    def block_ends(self) -> np.ndarray:
        """End offsets (in jet order) of the runs of jets that share a row group: the storage blocks."""
        if not len(self):
            return np.array([0], np.int64)
        return self._group_start[1:][np.diff(self._group_start) > 0].astype(np.int64)

    def keys(self) -> list[tuple[str, int]]:
        """(sample, event_id) of every jet, what sampling weights are keyed by."""
        stems = np.asarray(self.stems, dtype=object)[self.file_index]
        return list(zip(stems.tolist(), self.rows.tolist(), strict=True))

    def key_arrays(self) -> SampleKeys:
        """`keys` as arrays, for joining with a weights file without a Python object per jet."""
        return SampleKeys(self.samples, self.rows)

    def keys_of(self, index: np.ndarray) -> SampleKeys:
        """`key_arrays` of some jets only (found from the layout: one slice per run of jets of one file)."""
        index = np.asarray(index, dtype=np.int64)
        files = self.file_of(index)
        dtype = np.int32 if all(len(e) == 0 or e[-1] < 2**31 for e in self.rg_ends) else np.int64
        rows = np.empty(len(index), dtype)
        bounds = np.flatnonzero(np.diff(files)) + 1
        for a, e in zip([0, *bounds.tolist()], [*bounds.tolist(), len(index)], strict=True):
            if a < e:
                k = int(files[a])
                rows[a:e] = self._file_rows(k, index[a:e] - self._file_start[k])
        codes = files.astype(np.min_scalar_type(max(len(self.paths) - 1, 0)))
        return SampleKeys(pd.Categorical.from_codes(codes, categories=pd.Index(self.stems, dtype=object)), rows)

    def key_slice(self, start: int, end: int) -> SampleKeys:
        """Keys of jets start … end - 1 (sampling.read_item_weights joins a range of items at a time)."""
        return self.keys_of(np.arange(start, end, dtype=np.int64))

    def n_particles_pieces(self, index: np.ndarray) -> Iterator[np.ndarray]:
        """int32 constituents of the jets `index`, in that order, a run of jets of one file (at most a
        slice of _PIECE indices) at a time: `n_particles` of a subset without an array per jet (the file's
        jet_nparticles column is read for its run and dropped; not cached)."""
        held_k, counts = -1, np.zeros(0, np.int32)
        for s in range(0, len(index), _PIECE):
            part = np.asarray(index[s : s + _PIECE], dtype=np.int64)
            files = self.file_of(part)
            bounds = np.flatnonzero(np.diff(files)) + 1
            for a, e in zip([0, *bounds.tolist()], [*bounds.tolist(), len(part)], strict=True):
                k = int(files[a])
                if k != held_k:
                    held_k, counts = k, _read_column(self.paths[k], "jet_nparticles").astype(np.int32)
                yield counts[self._file_rows(k, part[a:e] - self._file_start[k])]
        pa.default_memory_pool().release_unused()  # the columns' buffers

    # ---- reading

    def _file(self, k: int) -> pq.ParquetFile:
        """File k, opened with its footer parsed once while among the OPEN_FILES last used: a window reads
        a few row groups of each of many files, and parsing a footer per row group costs milliseconds. Only
        the footers are kept, not open readers (those hold buffers of what they read: MBs a file)."""
        meta = self._footers.get(k)
        if meta is None:
            meta = self._footers[k] = pq.read_metadata(self.paths[k])
            while len(self._footers) > OPEN_FILES:
                self._footers.popitem(last=False)
        self._footers.move_to_end(k)
        return pq.ParquetFile(self.paths[k], metadata=meta)

    def _row_group(self, g: int, *, keep: frozenset[int] = frozenset()) -> RowGroup:
        """Row group g, decoded (from the cache when there). Least recently used groups are evicted beyond
        cache_bytes, except those in `keep` (the rest of the batch being read): a batch that spans two
        windows would otherwise evict the new window's groups it has just read."""
        cached = self._cache.get(g)
        if cached is not None:
            self._cache.move_to_end(g)
            return cached
        k = int(self._rg_file[g])
        path = self.paths[k]
        try:
            table = self._file(k).read_row_group(int(self._rg_local[g]), columns=[*PART_COLUMNS, *JET_COLUMNS])
        except (KeyError, OSError, ValueError, pa.ArrowInvalid) as exc:
            raise ValueError(f"{path}: not a JetClass-II jet file: {exc}") from exc
        decoded = decode_row_group(table)
        label = table.column("jet_label").to_numpy().astype(np.int64)
        decoded.classes = _class_index(label, self.labels).astype(np.int16)
        self._cache[g] = decoded
        total = sum(r.nbytes for r in self._cache.values())
        for old in [k for k in self._cache if k not in keep and k != g]:  # oldest first
            if total <= self.cache_bytes:
                break
            total -= self._cache.pop(old).nbytes
        return decoded

    def __getitem__(self, index: int) -> Jet:  # type: ignore[override]
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"jet index {index} out of range for {len(self)} jets")
        g = int(self.group_of(index))
        rg = self._row_group(g)
        k = int(self._rg_file[g])
        row = int(self._file_rows(k, np.array([index - self._file_start[k]]))[0])
        r = row - int(self._rg_first_row[g])
        a, b = int(rg.offsets[r]), int(rg.offsets[r + 1])
        return {"features": rg.features[a:b], "p4": rg.p4[a:b], "label": int(rg.classes[r]),  # type: ignore[index]
                "n_particles": b - a, "sample": self.stems[k], "event_id": row}

    def __getitems__(self, indices: Sequence[int]) -> RaggedJets:
        """Many jets in one call, vectorised per row group; returned in the order asked for."""
        idx = np.asarray(indices, dtype=np.int64)
        groups = self.group_of(idx)
        by_group = np.argsort(groups, kind="stable")  # jets grouped by row group, in storage order
        idx, groups = idx[by_group], groups[by_group]
        bounds = np.flatnonzero(np.diff(groups)) + 1
        segments, counts = [], []
        firsts = np.concatenate([[0], bounds]) if len(idx) else np.zeros(0, np.int64)
        needed = frozenset(groups[firsts].tolist())  # (sorted: each group's first jet, no np.unique)
        labels = []
        for a, e in zip(firsts.tolist(), [*bounds.tolist(), len(idx)], strict=True):
            g = int(groups[a])
            rg = self._row_group(g, keep=needed)
            k = int(self._rg_file[g])
            r = self._file_rows(k, idx[a:e] - self._file_start[k]) - self._rg_first_row[g]
            start = rg.offsets[r]
            segments.append((rg.features, rg.p4, start))
            counts.append(rg.offsets[r + 1] - start)
            labels.append(rg.classes[r])  # type: ignore[index]
        counts_all = np.concatenate(counts).astype(np.int64) if counts else np.zeros(0, np.int64)
        labels_all = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
        return RaggedJets(segments, counts_all, labels_all, by_group)

    @property
    def features(self) -> np.ndarray:
        """[n_total, 17] every kept jet's constituent features (reads the whole set: for small files)."""
        return self.__getitems__(np.arange(len(self))).features  # in order: jets are stored by row group

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # a worker process decodes its own row groups
        state["_footers"] = OrderedDict()  # and reads its own footers
        return state


@dataclass
class JetBatch:
    """Jets padded to the longest of the batch (capped at max_particles); padding rows are zero."""

    features: torch.Tensor  # [B, N, 17] float32
    p4: torch.Tensor  # [B, N, 4] float32, (px, py, pz, E)
    mask: torch.Tensor  # [B, N] bool, True for real particles
    label: torch.Tensor  # [B] int64 class index

    def to(self, device: torch.device | str) -> JetBatch:
        nb = torch.device(device).type == "cuda"
        return JetBatch(*(t.to(device, non_blocking=nb) for t in (self.features, self.p4, self.mask, self.label)))

    def __len__(self) -> int:
        return self.label.shape[0]


def collate_jets(jets: list[Jet] | RaggedJets, *, max_particles: int = 128) -> JetBatch:
    """Jets (a list of jet dicts, or a batched read) → one `JetBatch`, padded to min(longest jet,
    max_particles) (at least one row). A batched read is padded with one gather-scatter per row group."""
    if not isinstance(jets, RaggedJets):
        jets = RaggedJets.from_jets(jets)
    counts = jets.counts
    kept = np.minimum(counts, max_particles)  # the hardest constituents: they come first in the file
    n_max = max(1, int(kept.max()) if len(counts) else 1)
    # Kept constituent c (of K, jet after jet) is slot c - first[j] of its jet j, so its source row is
    # starts[j] + slot and its flat row in the padded arrays position[j] * n_max + slot: two repeats.
    first = np.cumsum(kept) - kept  # [B] index of each jet's first kept constituent
    starts = np.concatenate([seg[2] for seg in jets.segments]) if jets.segments else np.zeros(0, np.int64)
    c = np.arange(int(kept.sum()))
    src = c + np.repeat(starts - first, kept)  # [K] its row in its segment's arrays
    dest = c + np.repeat(jets.position * n_max - first, kept)  # [K] its row in the [B * N] padded arrays
    features = np.zeros((len(counts), n_max, N_PARTICLE_FEATURES), np.float32)
    p4 = np.zeros((len(counts), n_max, 4), np.float32)
    mask = np.empty((len(counts), n_max), bool)
    kept_at = np.empty(len(counts), np.int64)
    kept_at[jets.position] = kept  # [B] kept constituents of each batch row
    np.less(np.arange(n_max), kept_at[:, None], out=mask)  # a jet's kept constituents are its first slots
    flat_features, flat_p4 = features.reshape(-1, N_PARTICLE_FEATURES), p4.reshape(-1, 4)
    b = k = 0
    for seg_features, seg_p4, seg_starts in jets.segments:  # one gather-scatter per row group
        k_end = k + int(kept[b : b + len(seg_starts)].sum())
        to, from_ = dest[k:k_end], src[k:k_end]
        flat_features[to], flat_p4[to] = seg_features[from_], seg_p4[from_]
        b, k = b + len(seg_starts), k_end
    label = np.empty(len(counts), np.int64)
    label[jets.position] = jets.labels
    label = torch.from_numpy(label)
    return JetBatch(torch.from_numpy(features), torch.from_numpy(p4), torch.from_numpy(mask), label)

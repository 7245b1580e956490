"""JetClass-II Parquet shards → padded constituent tensors and class labels, for the jet taggers.

* `JetDataset` — one or more shards as a random-access sequence of jets (dicts), the features computed
  once, vectorised, at open time. Jets whose `jet_label` is not in the label list are dropped (counted).
* `collate_jets` — a list of jets → a `JetBatch` padded to the batch's longest jet (up to max_particles).
* `split_train_val` — a fixed, seed-independent train/validation split of the jets.
* `synthetic_jet_table` — a table in the exact JetClass-II schema with a learnable rule, for tests and
  benchmarks.

A jet is {"features" (n, 17) float32, "p4" (n, 4) float32, "label" int (class index), "n_particles",
"sample" (file stem), "event_id" (row in its file)}. (sample, event_id) is also what sampling weights are
keyed by, so colliderflow.train.sampling.read_sampling_weights serves both tasks. Four-momenta are (px, py, pz, E)
in GeV; constituents stay in the file's order (descending pT), so truncation keeps the hardest.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from colliderflow.io.dataset_files import jet_files  # noqa: F401  (re-exported)
from colliderflow.synthetic import synthetic_jet_table  # noqa: F401  (re-exported)
from colliderflow.train.sampling import SampleKeys
from colliderflow.weights.histogram import class_indices

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
    f = np.stack([
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
    ], axis=1).astype(np.float32)
    return np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0)


def _read_labels(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ValueError(f"{path}: jet Parquet file does not exist")
    try:
        return pq.read_table(path, columns=["jet_label"]).column("jet_label").to_numpy()
    except (KeyError, OSError, ValueError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: not a JetClass-II jet file: {exc}") from exc


class JetDataset(Sequence[Jet]):
    """The jets of some JetClass-II Parquet shards whose `jet_label` is in `labels`, in file order.

    labels: the jet_label values to train on; class index = position in this list; None: every label
    present in the files, sorted (a run then records the list it found). Everything is read
    into memory at once (about 0.4 GB per 100k-jet shard): the tagger steps are the bottleneck, not this.
    """

    def __init__(self, paths: Sequence[Path], *, labels: Sequence[int] | None = None) -> None:
        if not paths:
            raise ValueError("no jet Parquet file given")
        if labels is None:
            labels = sorted({int(x) for path in paths for x in _read_labels(Path(path))} - {-1})
        if len(set(labels)) != len(labels) or not labels:
            raise ValueError(f"labels: expected a non-empty list of distinct jet_label values, got {list(labels)}")
        self.labels = [int(x) for x in labels]
        features, p4s, counts, classes, file_index, rows = [], [], [], [], [], []
        stems = [Path(p).stem for p in paths]
        for k, path in enumerate(map(Path, paths)):
            if not path.is_file():
                raise ValueError(f"{path}: jet Parquet file does not exist")
            try:
                table = pq.read_table(path, columns=[*PART_COLUMNS, *JET_COLUMNS])
            except (KeyError, OSError, ValueError, pa.ArrowInvalid) as exc:
                raise ValueError(f"{path}: not a JetClass-II jet file: {exc}") from exc
            flat = {}
            for name in PART_COLUMNS:
                flat[name], n = _flat(table.column(name))
                flat[name] = flat[name].astype(np.float32)
            label = table.column("jet_label").to_numpy().astype(np.int64)
            class_index = class_indices(label, self.labels)
            keep = class_index >= 0
            if not keep.all():
                log.info("%s: %d of %d jets have a label outside the label list and are skipped",
                         path, int((~keep).sum()), len(keep))
            jet_of = np.repeat(np.arange(len(n)), n)  # [n_total] jet index of each constituent
            f = particle_features(flat, table.column("jet_pt").to_numpy()[jet_of],
                                  table.column("jet_energy").to_numpy()[jet_of])
            p4 = np.stack([flat["part_px"], flat["part_py"], flat["part_pz"], flat["part_energy"]], axis=1)
            kept_particle = keep[jet_of]
            features.append(f[kept_particle])
            p4s.append(p4[kept_particle])
            counts.append(n[keep])
            classes.append(class_index[keep].astype(np.int64))
            file_index.append(np.full(int(keep.sum()), k, dtype=np.int32))
            rows.append(np.nonzero(keep)[0])
        self.features = np.concatenate(features)  # [n_total, 17]
        self.p4 = np.concatenate(p4s)  # [n_total, 4]
        self.n_particles = np.concatenate(counts)  # [n_jets]
        self.offsets = np.concatenate([[0], np.cumsum(self.n_particles)])  # [n_jets + 1]
        self.classes = np.concatenate(classes)  # [n_jets]
        self.stems = stems  # [n_files] what a jet's file is called in weights files: its stem
        self.file_index = np.concatenate(file_index)  # [n_jets] file of each jet
        self.samples = np.asarray(stems, dtype=object)[self.file_index]  # [n_jets] str
        self.rows = np.concatenate(rows)  # [n_jets] row of each jet in its file

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, index: int) -> Jet:  # type: ignore[override]
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"jet index {index} out of range for {len(self)} jets")
        a, b = self.offsets[index], self.offsets[index + 1]
        return {"features": self.features[a:b], "p4": self.p4[a:b], "label": int(self.classes[index]),
                "n_particles": int(b - a), "sample": self.samples[index], "event_id": int(self.rows[index])}

    def keys(self) -> list[tuple[str, int]]:
        """(sample, event_id) of every jet, what sampling weights are keyed by."""
        return list(zip(self.samples.tolist(), self.rows.tolist(), strict=True))

    def key_arrays(self) -> SampleKeys:
        """`keys` as two arrays, for joining with a weights file without a Python object per jet."""
        return SampleKeys(self.samples, self.rows.astype(np.int64))


class JetSubset(Sequence[Jet]):
    """Some jets of a JetDataset, by index; keeps `n_particles` and `keys` for bucketing and weights."""

    def __init__(self, dataset: JetDataset, indices: np.ndarray) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.n_particles = dataset.n_particles[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Jet:  # type: ignore[override]
        return self.dataset[int(self.indices[int(index)])]

    def keys(self) -> list[tuple[str, int]]:
        keys = self.dataset.keys()
        return [keys[i] for i in self.indices.tolist()]

    def key_arrays(self) -> SampleKeys:
        keys = self.dataset.key_arrays()
        return SampleKeys(keys.samples[self.indices], keys.event_ids[self.indices])


def split_train_val(dataset: JetDataset, val_fraction: float) -> tuple[JetSubset, JetSubset]:
    """A fixed split: jets whose (file, row) hash below val_fraction are validation.

    Hashing (sample, row) rather than permuting with the training seed keeps the validation set the
    same across seeds and when shards are added, so validation losses stay comparable.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"train.val_fraction: expected a value in [0, 1), got {val_fraction!r}")
    file_codes = np.array([zlib.crc32(s.encode()) for s in dataset.stems], dtype=np.uint64)
    sample_code = file_codes[dataset.file_index]
    h = (dataset.rows.astype(np.uint64) * np.uint64(2654435761) + sample_code) % np.uint64(2**32)
    u = h.astype(np.float64) / 2**32
    is_val = u < val_fraction
    return JetSubset(dataset, np.nonzero(~is_val)[0]), JetSubset(dataset, np.nonzero(is_val)[0])


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


def collate_jets(jets: list[Jet], *, max_particles: int = 128) -> JetBatch:
    """A list of jets → one `JetBatch`, padded to min(longest jet, max_particles) (at least one row)."""
    n_max = max([1] + [min(len(j["p4"]), max_particles) for j in jets])
    features = np.zeros((len(jets), n_max, N_PARTICLE_FEATURES), np.float32)
    p4 = np.zeros((len(jets), n_max, 4), np.float32)
    mask = np.zeros((len(jets), n_max), bool)
    for i, jet in enumerate(jets):
        n = min(len(jet["p4"]), max_particles)
        features[i, :n], p4[i, :n], mask[i, :n] = jet["features"][:n], jet["p4"][:n], True
    label = torch.tensor([j["label"] for j in jets], dtype=torch.int64)
    return JetBatch(torch.from_numpy(features), torch.from_numpy(p4), torch.from_numpy(mask), label)

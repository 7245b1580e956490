"""Tasks: what differs between models (data, batch → inputs, batch → loss), behind one small interface.

Two tasks exist: "pf" (MLPF on the `train` split of TFDS datasets, per-element losses, losses.mlpf_loss)
and "tagging" (ParT or PELICAN on JetClass-II Parquet shards, one cross-entropy over the classes of
params["labels"] per jet). The loop (colliderflow.train.loop) only calls a task's methods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colliderflow.models.mlpf import fit_regression_standardisation
from colliderflow.models.normalise import fit_normalisation
from colliderflow.models.registry import MODEL_INPUTS
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.train.config import TrainConfig, label_values
from colliderflow.train.data import Batch, Event, collate_events, event_index, open_splits
from colliderflow.io.dataset_files import jet_files
from colliderflow.train.jet_data import JetBatch, JetDataset, JetSubset, collate_jets, split_train_val
from colliderflow.train.losses import LossConfig, mlpf_loss
from colliderflow.train.item_weights import ItemWeights
from colliderflow.train.sampling import KeySource, SampleKeys


class Task:
    """The model-specific half of training. The loop only calls these methods.

    train_set / val_set: random-access sequences of items; collate: items → batch (with `.to(device)`
    and `len`); loss: (model, batch) → {"loss": scalar, …other terms for the metrics}.
    """

    name: str
    train_set: Sequence[Any]
    val_set: Sequence[Any]
    inputs: list[Path]

    def __init__(self, model: str) -> None:
        self.input_names = MODEL_INPUTS[model]

    def collate(self, items: list[Any]) -> Any:
        return self.collate_fn(items)

    @property
    def collate_fn(self) -> Callable[[Any], Any]:
        """items → batch, as a picklable function (DataLoader workers get a copy)."""
        raise NotImplementedError

    def block_ends(self) -> np.ndarray | None:
        """End offsets of the training set's storage blocks (sampling.EpochBatchSampler); None: unknown."""
        return None

    def forward(self, model: nn.Module, batch: Any) -> Any:
        """batch → the model's inputs (registry.MODEL_INPUTS) → its output."""
        return model(*(getattr(batch, name) for name in self.input_names))

    def loss(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def lengths(self) -> Sequence[int] | ItemWeights:
        """Length of every training item, for length bucketing (int32 values, in memory or spilled)."""
        raise NotImplementedError

    def sample_keys(self) -> SampleKeys | list[tuple[str, int]]:
        """(sample, event_id) of every training item, what sampling weights are keyed by."""
        raise NotImplementedError

    def weight_keys(self) -> SampleKeys | KeySource | list[tuple[str, int]]:
        """What sampling.read_item_weights joins the weights on: `sample_keys`, or a source that hands
        them out a range at a time (then they are never all in memory)."""
        return self.sample_keys()

    def model_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The params build_model sees (a task may fill in sizes that follow from the data)."""
        return params

    def prepare(self, model: nn.Module) -> None:
        """Fit whatever the model learns from the data before training (only on a fresh start)."""

    def record(self) -> dict[str, Any]:
        """Facts about the data for model.pt and provenance."""
        return {}


class PFTask(Task):
    """MLPF on TFDS datasets: per-element classification, charge and kinematics (losses.mlpf_loss)."""

    name = "pf"

    def __init__(self, cfg: TrainConfig, loss_cfg: LossConfig, tfds_dirs: list[Path]) -> None:
        super().__init__(cfg.model)
        self.loss_cfg = loss_cfg
        self.train_set = open_splits(tfds_dirs, "train")
        self.val_set = open_splits(tfds_dirs, "val", allow_empty=True)
        self.inputs = [Path(d) for d in tfds_dirs]
        self._event_index: tuple[Any, np.ndarray, np.ndarray] | None = None

    @property
    def collate_fn(self) -> Callable[[list[Event]], Batch]:
        return collate_events

    def loss(self, model: nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
        # The residuals are measured in the model's per-type regression scale (see losses.mlpf_loss);
        # under DDP the model is wrapped, and the scale lives on the module inside.
        scale_of = getattr(getattr(model, "module", model), "element_regression_scale", None)
        scale = scale_of(batch.X) if scale_of is not None else None
        return mlpf_loss(self.forward(model, batch), batch.X, batch.ytarget, batch.mask, self.loss_cfg, scale=scale)

    def _index(self) -> tuple[Any, np.ndarray, np.ndarray]:
        if self._event_index is None:
            self._event_index = event_index(self.train_set)
        return self._event_index

    def lengths(self) -> np.ndarray:
        return self._index()[2]

    def sample_keys(self) -> SampleKeys:
        samples, event_ids, _ = self._index()
        return SampleKeys(samples, event_ids)

    def prepare(self, model: nn.Module) -> None:
        if hasattr(model, "normaliser"):
            model.normaliser.set_statistics(fit_normalisation(self.train_set))
        if hasattr(model, "set_regression_standardisation"):
            model.set_regression_standardisation(*fit_regression_standardisation(self.train_set))


class TaggingTask(Task):
    """A jet tagger on JetClass-II Parquet shards: cross-entropy over the classes of `labels`."""

    name = "tagging"

    def __init__(self, cfg: TrainConfig, paths: list[Path], val_paths: list[Path] | None = None) -> None:
        super().__init__(cfg.model)
        files = jet_files(paths)
        labels = label_values(cfg.labels) if cfg.labels is not None else None
        dataset = JetDataset(files, labels=labels)
        self.labels = dataset.labels
        if val_paths:  # a dataset with its own validation split (the jet_dataset stage's val/)
            val_files = jet_files(val_paths)
            self.train_set = JetSubset.all(dataset)
            val_dataset = JetDataset(val_files, labels=self.labels)
            self.val_set = JetSubset.all(val_dataset)
            files = [*files, *val_files]
        else:
            self.train_set, self.val_set = split_train_val(dataset, cfg.val_fraction)
        if len(self.train_set) == 0:
            raise ValueError(f"{[str(f) for f in files]}: no training jets with labels {self.labels}")
        self.label_names = [JETCLASS2_LABELS[v] if 0 <= v < len(JETCLASS2_LABELS) else str(v) for v in self.labels]
        self.max_particles = cfg.max_particles
        self.model = cfg.model
        self.inputs = files

    @property
    def collate_fn(self) -> Callable[[Any], JetBatch]:
        return functools.partial(collate_jets, max_particles=self.max_particles)

    def block_ends(self) -> np.ndarray:
        return self.train_set.block_ends()

    def loss(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        logits = self.forward(model, batch).float()  # [B, C]
        loss = torch.nn.functional.cross_entropy(logits, batch.label)
        accuracy = (logits.argmax(dim=-1) == batch.label).float().mean().detach()
        return {"loss": loss, "accuracy": accuracy}

    def lengths(self) -> ItemWeights:
        # Spilled to a scratch file a file's jets at a time, read by the sampler a window at a time: no
        # array per jet (4 bytes a jet were 340 MB at JetClass-II's 86M).
        cap = self.max_particles
        pieces = (np.minimum(n, cap).astype(np.int32) for n in self.train_set.n_particles_pieces())
        return ItemWeights.spill_chunks(len(self.train_set), pieces, dtype=np.int32)

    def sample_keys(self) -> SampleKeys:
        return self.train_set.key_arrays()

    def weight_keys(self) -> KeySource:
        return self.train_set

    def model_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """num_classes follows from the label list; a config that says otherwise is an error."""
        section = dict(params.get(self.model) or {})
        given = section.get("num_classes")
        if given is not None and given != len(self.labels):
            raise ValueError(f"tagger.{self.model}.num_classes={given} but tagger.labels has {len(self.labels)} labels")
        section["num_classes"] = len(self.labels)
        return {**params, self.model: section}

    def record(self) -> dict[str, Any]:
        return {"labels": self.labels, "label_names": self.label_names}


def make_task(cfg: TrainConfig, loss_cfg: LossConfig, paths: list[Path], val_paths: list[Path] | None = None) -> Task:
    if cfg.task_name == "tagging":
        return TaggingTask(cfg, paths, val_paths)
    if val_paths:
        raise ValueError("train: a separate validation dataset is for taggers; the PF task reads TFDS val splits")
    return PFTask(cfg, loss_cfg, paths)


def make_loader(task: Task, sampler: torch.utils.data.Sampler[list[int]], *, num_workers: int,
                device: torch.device, seed: int) -> torch.utils.data.DataLoader:
    """The training DataLoader: the sampler names each batch in the main process, so the batch order is
    the sampler's with or without workers; `num_workers` > 0 reads and collates in persistent worker
    processes (spawned: array_record does not survive fork), each prefetching a few batches."""
    workers: dict[str, Any] = {}
    if num_workers > 0:
        workers = {"num_workers": num_workers, "persistent_workers": True, "prefetch_factor": 4,
                   "multiprocessing_context": "spawn"}
    return torch.utils.data.DataLoader(
        task.train_set,  # type: ignore[arg-type]  # any random-access sequence of items
        batch_sampler=sampler,
        collate_fn=task.collate_fn,
        pin_memory=device.type == "cuda",
        # The loader draws a base seed when iterated: from its own generator, not torch's global one,
        # so that a resumed run's dropout stream is not shifted by that draw.
        generator=torch.Generator().manual_seed(seed),
        **workers,
    )

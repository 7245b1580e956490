"""Run a trained jet tagger over JetClass-II Parquet shards and write the tagger predictions file.

The output is the input contract of `colliderflow.evaluate.tagging.run.evaluate_tagger`, written down in
docs/schema.md ("Tagger predictions"): one row per jet, `jet_label` as the class index of the model,
one softmax score column `score_<class name>` per class in class order, the jet variables the
cut-based baseline and the sculpting check need, and `sample` (the file stem). Evaluation then never
loads torch or the model, and scores from another framework (weaver) can be evaluated the same way.

Which classes the model knows is read from its model.pt: training records `labels`, the jet_label values
in class order, and `label_names`, their names. Names come from, in this order: a label table given
here, the recorded `label_names`, a recorded `label_table`, else JetClass-II's 188-class table — the
table every JetClass-II shard and the project's own ntuplizer use by default, so a model saved without
names still reads right. Names are written without the `label_` prefix (score_X_bb).

Jets whose jet_label is not among the model's labels are left out and counted: the model has no class
for them, and a score for a class it was never shown would be meaningless. Inference runs in eval mode
without gradients, in file order and fixed batches, so two runs on the same machine give identical files.
It runs on the job's device (colliderflow.devices: auto | cpu | cuda | cuda:N; batches are moved there one
at a time and the scores come back to the CPU), in float32 unless bf16 is asked for; the batches do not
depend on the device, so a CPU run writes the same bytes as before devices were configurable.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from colliderflow.devices import check_precision, inference_autocast, resolve_device
from colliderflow.io.atomic import atomic_path
from colliderflow.train.jet_data import JetDataset, collate_jets, jet_files
from colliderflow.models.registry import MODEL_FILE, MODEL_INPUTS, MODEL_TASKS, load_trained
from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.train.config import TrainConfig

log = logging.getLogger(__name__)

SCORE_PREFIX = "score_"  # as colliderflow.evaluate.tagging.run reads it
# Jet variables copied from the input file (JetClass-II names and units) next to the scores.
JET_COLUMNS: tuple[str, ...] = ("jet_pt", "jet_eta", "jet_sdmass", "jet_tau2", "jet_tau3")


def label_names(table: Sequence[str] | str | None) -> tuple[str, ...]:
    """The label table as names: a list of names, "jetclass2" or None (both: JETCLASS2_LABELS)."""
    if table is None or table == "jetclass2":
        return JETCLASS2_LABELS
    names = () if isinstance(table, str) else tuple(str(name) for name in table)
    if not names:
        raise ValueError(f"label_table: expected 'jetclass2' or a non-empty list of label names, got {table!r}")
    return names


def class_names(labels: Sequence[int], table: Sequence[str], *, where: str) -> list[str]:
    """Name of each class (the table entry of its jet_label, without `label_`); ValueError naming `where`
    when a label is outside the table or two classes would share a name."""
    names = []
    for label in labels:
        if not 0 <= label < len(table):
            raise ValueError(f"{where}: jet_label {label} is outside the label table ({len(table)} names)")
        names.append(table[label].removeprefix("label_"))
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: the label table gives the classes {labels} the names {names}, not all distinct")
    return names


def output_schema(names: Sequence[str]) -> pa.Schema:
    """Columns of the predictions file, in order: jet_label, the scores in class order, jets, sample, event_id."""
    return pa.schema(
        [
            pa.field("jet_label", pa.int64(), nullable=False),
            *(pa.field(SCORE_PREFIX + name, pa.float32(), nullable=False) for name in names),
            *(pa.field(name, pa.float32(), nullable=False) for name in JET_COLUMNS),
            pa.field("sample", pa.string(), nullable=False),
            pa.field("event_id", pa.int64(), nullable=False),
        ]
    )


def load_tagger(model_dir: Path, label_table: Sequence[str] | str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The tagger in `model_dir` (eval mode, CPU) and its metadata plus "classes" (names in class order,
    see the module docstring for where they come from), "labels" (jet_label values in class order) and
    "max_particles" (the constituents per jet it was trained on, so that it sees the same inputs).

    ValueError naming model.pt when the folder holds no model, a foreign file, or a model that is not a
    jet tagger (a particle-flow model, or one without its label list).
    """
    where = str(Path(model_dir) / MODEL_FILE)
    model, meta = load_trained(Path(model_dir))
    name = meta.get("model")
    task = meta.get("task", MODEL_TASKS.get(str(name)))
    if task != "tagging" or name not in MODEL_INPUTS:
        raise ValueError(f"{where}: a {name!r} model for task {task!r}, not a jet tagger")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, int) for x in labels):
        raise ValueError(f"{where}: no label list recorded (the jet_label value of each class)")
    n_classes = meta.get("model_config", {}).get("num_classes")
    if n_classes != len(labels):
        raise ValueError(f"{where}: {len(labels)} labels recorded for a model with {n_classes} classes")
    recorded = meta.get("label_names")
    if label_table is None and isinstance(recorded, list) and len(recorded) == len(labels):
        classes = [str(name).removeprefix("label_") for name in recorded]
        if len(set(classes)) != len(classes):
            raise ValueError(f"{where}: the recorded label names {recorded} are not all distinct")
    else:
        table = label_names(label_table if label_table is not None else meta.get("label_table"))
        classes = class_names(labels, table, where=where)
    params = meta.get("train_params") or {}
    return model, {
        **meta,
        "classes": classes,
        "labels": [int(x) for x in labels],
        "max_particles": int(params.get("max_particles", TrainConfig.max_particles)),
    }


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels for the block (a run repeated on the same machine writes the same bytes);
    the caller's setting comes back after."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def _read_jet_columns(path: Path) -> dict[str, np.ndarray]:
    """jet_label and JET_COLUMNS of every row of one shard; ValueError naming the file otherwise."""
    if not path.is_file():
        raise ValueError(f"{path}: jet Parquet file does not exist")
    try:
        table = pq.read_table(path, columns=["jet_label", *JET_COLUMNS])
    except (KeyError, OSError, ValueError, pa.ArrowException) as exc:
        raise ValueError(f"{path}: not a JetClass-II jet file: {exc}") from exc
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


@torch.inference_mode()
def _scores(
    model: nn.Module, inputs: Sequence[str], dataset: JetDataset, *, batch_size: int, max_particles: int,
    device: torch.device, precision: str = "fp32",
) -> np.ndarray:
    """Softmax class probabilities [n_jets, C] float32, batches of consecutive jets in file order, computed
    on `device` (where the model is)."""
    out = []
    for start in range(0, len(dataset), batch_size):
        jets = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = collate_jets(jets, max_particles=max_particles).to(device)
        with inference_autocast(device, precision):
            logits = model(*(getattr(batch, name) for name in inputs))  # [B, C]
        out.append(torch.softmax(logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _predict_file(
    model: nn.Module, meta: dict[str, Any], path: Path, schema: pa.Schema, *, batch_size: int,
    device: torch.device, precision: str,
) -> tuple[pa.Table, int]:
    """The predictions table of one shard and the number of its jets left out (label not in the model's list)."""
    columns = _read_jet_columns(path)
    dataset = JetDataset([path], labels=meta["labels"])
    n_skipped = len(columns["jet_label"]) - len(dataset)
    rows = dataset.rows
    scores = _scores(
        model, MODEL_INPUTS[meta["model"]], dataset, batch_size=batch_size, max_particles=meta["max_particles"],
        device=device, precision=precision,
    )
    if len(dataset) and not np.isfinite(scores).all():
        log.warning("%s: %d jet(s) with non-finite scores", path, int((~np.isfinite(scores).all(axis=1)).sum()))
    arrays = [
        pa.array(dataset.classes.astype(np.int64)),
        *(pa.array(scores[:, c] if len(dataset) else np.zeros(0), pa.float32()) for c in range(len(meta["labels"]))),
        *(pa.array(np.asarray(columns[name])[rows], pa.float32()) for name in JET_COLUMNS),
        pa.array([path.stem] * len(dataset), pa.string()),
        pa.array(rows.astype(np.int64)),
    ]
    return pa.Table.from_arrays(arrays, schema=schema), n_skipped


def predict_tagger(
    *,
    model_dir: Path,
    inputs: list[Path],
    output: Path,
    batch_size: int = 256,
    label_table: Sequence[str] | str | None = None,
    device: str = "auto",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Write `output` (Parquet, atomically): the tagger in `model_dir` applied to every jet of `inputs`.

    inputs: JetClass-II Parquet files or directories of them (colliderflow.io.dataset_files.jet_files), read one file at a
    time, in the order given. label_table: the names of the jet_label values ("jetclass2" or a list);
    None: the names recorded with the model, else JetClass-II's table. device, precision: where and how the
    model runs (colliderflow.devices). Returns {"jets", "jets_per_class", "jets_skipped", "files", "seconds",
    "output", "device"}. ValueError naming the path for a missing or foreign
    model, a missing or unreadable input file, or inputs without a single jet of the model's classes.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    check_precision(precision, where="predict.precision")
    torch_device = resolve_device(device, where="predict.device")
    t0 = time.perf_counter()
    model, meta = load_tagger(Path(model_dir), label_table)
    model.eval().to(torch_device)
    files = jet_files([Path(p) for p in inputs])
    if not files:
        raise ValueError("predict_tagger: no jet Parquet file given")
    schema = output_schema(meta["classes"])
    n_classes = len(meta["classes"])
    per_class = np.zeros(n_classes, dtype=np.int64)
    n_skipped = 0
    with _deterministic(), atomic_path(output) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for path in files:
            table, skipped = _predict_file(model, meta, path, schema, batch_size=batch_size, device=torch_device,
                                           precision=precision)
            n_skipped += skipped
            per_class += np.bincount(table.column("jet_label").to_numpy(), minlength=n_classes)[:n_classes]
            if table.num_rows:
                writer.write_table(table)
        if per_class.sum() == 0:
            raise ValueError(
                f"{', '.join(map(str, files))}: no jet with a jet_label among the model's labels {meta['labels']}"
            )
    seconds = time.perf_counter() - t0
    stats = {
        "jets": int(per_class.sum()),
        "jets_per_class": {name: int(n) for name, n in zip(meta["classes"], per_class, strict=True)},
        "jets_skipped": n_skipped,
        "files": len(files),
        "seconds": seconds,
        "output": str(output),
        "device": str(torch_device),
    }
    log.info(
        "%s: %s (step %s) scores for %d jets of %d file(s), %d left out (label not in the model's list), %.1f s"
        " on %s (%s)",
        output,
        meta["model"],
        meta.get("step"),
        stats["jets"],
        len(files),
        n_skipped,
        seconds,
        torch_device,
        precision,
    )
    return stats

"""Event Parquet shards → one TFDS dataset (array_record files) with train/val/test splits.

Training reads events at random, and array_record gives random access without TensorFlow. The dataset
is built by a TFDS ``GeneratorBasedBuilder`` with a fixed builder name, ``colliderflow_pf``, and the
dataset name as its builder config, so one data directory holds
``<output_dir>/colliderflow_pf/<name>/1.0.0/``.

Decisions a reader of the files should know:

* Records are stored in TFDS's shuffled order, which is a hash of each record's key
  (``"<sample>/<event_id>"``). The order therefore depends only on *which* events go in, not on the
  order of the input files, and identical inputs give identical files. Every record carries ``sample``
  and ``event_id`` so it can be joined with per-event data (the sampling weights) regardless of order.
* ``sample`` is a ``Text`` feature (decoded to ``str`` by the reader), not a class index, so datasets
  built from different sample lists never disagree about what an index means.
* A split with no events is left out of the TFDS split list (TFDS refuses to write an empty split);
  the metadata lists it under ``empty_splits`` and the reader reports it as empty.
* A split larger than TFDS's in-memory shuffle limit is spilled to local files (colliderflow.io.tfds_build;
  TFDS alone would need TensorFlow there); the files are the same as an in-memory build's. Records are
  serialized with sorted feature maps, so a rebuild in another process gives the same bytes.
* The directory is built in a temporary sibling and renamed at the end: ``output_dir`` is complete or
  absent. The same (sample, event_id) twice in the inputs is an error, naming both files.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from colliderflow.io.atomic import atomic_dir
from colliderflow.io.parquet import ROW_WIDTHS, read_event_columns, read_table
from colliderflow.io.tfds_features import (
    ROW_FEATURES,
    SCALAR_FEATURES,
    TEXT_FEATURES,
    check_array_record_usable,
    note_array_record_use,
)
from colliderflow.io.tfds_keys import write_split_keys
from colliderflow.schema import (
    CLASS_NAMES,
    CLUSTER_FEATURES,
    JET_FEATURES,
    PARTICLE_FEATURES,
    SPLITS,
    TRACK_FEATURES,
)

log = logging.getLogger(__name__)

BUILDER_NAME: Final = "colliderflow_pf"
VERSION: Final = "1.0.0"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _features() -> Any:
    import tensorflow_datasets as tfds

    spec: dict[str, Any] = {
        name: tfds.features.Tensor(shape=(None, ROW_WIDTHS[name]), dtype=np.float32, encoding="bytes")
        for name in ROW_FEATURES
    }
    spec.update({name: tfds.features.Scalar(dtype=dtype) for name, dtype in SCALAR_FEATURES.items()})
    spec.update({name: tfds.features.Text() for name in TEXT_FEATURES})
    return tfds.features.FeaturesDict(spec)


def _rows(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values[n, width]) of one row-block column, without a per-event conversion."""
    column = table.column(name).combine_chunks()
    offsets = np.asarray(column.offsets)
    values = column.flatten().flatten().to_numpy(zero_copy_only=False)
    return offsets - offsets[0], values.reshape(-1, ROW_WIDTHS[name])


def _examples(path: Path, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (key, example) pairs of one shard's events in one split."""
    table = read_table(path, None, split)
    rows = {name: _rows(table, name) for name in ROW_FEATURES}
    scalars = {name: table.column(name).to_numpy() for name in SCALAR_FEATURES}
    samples = table.column("sample").to_pylist()
    for i in range(table.num_rows):
        example: dict[str, Any] = {name: values[offsets[i]:offsets[i + 1]] for name, (offsets, values) in rows.items()}
        example.update({name: values[i] for name, values in scalars.items()})
        example["sample"] = samples[i]
        yield f"{samples[i]}/{int(scalars['event_id'][i])}", example


def _scan(parquet_files: list[Path]) -> dict[str, list[Path]]:
    """Which files hold events of which split; refuses unknown split labels and duplicated events."""
    per_split: dict[str, list[Path]] = {s: [] for s in SPLITS}
    keys = []
    for index, path in enumerate(parquet_files):
        cols = read_event_columns(path, ["sample", "event_id", "split"])
        bad = sorted(set(np.unique(cols["split"]).tolist()) - set(SPLITS))
        if bad:
            raise ValueError(f"{path}: column 'split' holds {bad}; expected only {', '.join(SPLITS)}")
        for split in SPLITS:
            if np.any(cols["split"] == split):
                per_split[split].append(path)
        keys.append(pd.DataFrame({"sample": cols["sample"], "event_id": cols["event_id"], "file": index}))
    if keys:
        frame = pd.concat(keys, ignore_index=True)
        dup = frame.duplicated(["sample", "event_id"], keep=False)
        if dup.any():
            first = frame[dup].iloc[0]
            files = sorted({str(parquet_files[i]) for i in frame[dup & (frame["sample"] == first["sample"])
                                                                 & (frame["event_id"] == first["event_id"])]["file"]})
            raise ValueError(
                f"event (sample={first['sample']!r}, event_id={first['event_id']}) appears more than once "
                f"({int(dup.sum())} duplicated rows in all); first in: {', '.join(files)}"
            )
    return per_split


def _builder_class() -> type:
    """The builder class, created on demand so that importing this module does not import TFDS."""
    import tensorflow_datasets as tfds

    class ColliderflowPf(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Particle-flow events: elements, targets, baseline candidates, jets and MET per event."""

        name = BUILDER_NAME
        VERSION = tfds.core.Version(VERSION)
        RELEASE_NOTES: ClassVar[dict[str, str]] = {
            str(VERSION): "Event-level particle-flow records from colliderflow Parquet shards."
        }
        # TFDS looks for a checksums file beside a builder's source, locating the source through the
        # optional `importlib_resources` package, which is not installed. Nothing is downloaded here, so
        # there is no checksums file to find: say so instead of letting the lookup fail.
        code_path = None

        def __init__(self, *, files_per_split: dict[str, list[Path]], metadata: dict[str, Any], **kwargs: Any):
            self._files_per_split = files_per_split
            self._extra_metadata = metadata
            super().__init__(**kwargs)

        def _info(self) -> Any:
            return tfds.core.DatasetInfo(
                builder=self,
                description=(
                    "Per-event particle-flow elements X [N,17], target and baseline particles [N,8], "
                    "truth and target jets [M,4] (pt, eta, phi, energy), genmet in GeV."
                ),
                features=_features(),
                metadata=tfds.core.MetadataDict(self._extra_metadata),
            )

        def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
            return {split: self._generate_examples(split) for split, files in self._files_per_split.items() if files}

        def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
            for path in self._files_per_split[split]:
                yield from _examples(path, split)

    return ColliderflowPf


def build_tfds(parquet_files: list[Path], *, name: str, output_dir: Path) -> Path:
    """Build the dataset `name` from event shards into `output_dir`; return its version directory.

    A shard is read once per split it has events in (the split is a per-event column), plus one cheap
    pass over (sample, event_id, split) up front to find empty splits and duplicated events.
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"dataset name {name!r} must be letters, digits, '_', '.', '-' (a directory name)")
    files = [Path(p) for p in parquet_files]
    if not files:
        raise ValueError("build_tfds: no input Parquet files given")
    output_dir = Path(output_dir)
    per_split = _scan(files)
    empty = [s for s in SPLITS if not per_split[s]]
    if len(empty) == len(SPLITS):
        log.warning("%s: the inputs hold no events; building an empty dataset", name)
    elif empty:
        log.warning("%s: no events in split(s) %s", name, ", ".join(empty))

    metadata = {
        "dataset_name": name,
        "inputs": sorted(p.name for p in files),
        "empty_splits": empty,
        "row_features": {
            "X": {"track": list(TRACK_FEATURES), "cluster": list(CLUSTER_FEATURES)},
            "ytarget": list(PARTICLE_FEATURES),
            "ycand": list(PARTICLE_FEATURES),
            "genjets": list(JET_FEATURES),
            "targetjets": list(JET_FEATURES),
        },
        "class_names": list(CLASS_NAMES),
        "units": "GeV for energies and momenta, mm for lengths, ns for times, radians for angles",
    }
    prepare_array_record(_builder_class(), name=name, version=VERSION, description=f"dataset {name}",
                         files_per_split=per_split, metadata=metadata, output_dir=output_dir, write_keys=True)
    return output_dir / BUILDER_NAME / name / VERSION


def prepare_array_record(builder_cls: type, *, name: str, version: str, description: str,
                         files_per_split: dict[str, list[Path]], metadata: dict[str, Any], output_dir: Path,
                         write_keys: bool = False) -> None:
    """Run a TFDS builder of this project (it takes `files_per_split` and `metadata`) into `output_dir`.

    One place for what every dataset here does alike: array_record files, built in a temporary directory
    that replaces `output_dir` only when complete, no download cache left behind, and splits of any size
    without TensorFlow, same bytes in every process (io.tfds_build).
    """
    import tensorflow_datasets as tfds

    from colliderflow.io.tfds_build import tfds_build

    tfds.disable_progress_bar()
    check_array_record_usable()
    note_array_record_use()
    with atomic_dir(Path(output_dir)) as tmp:
        builder = builder_cls(
            files_per_split=files_per_split,
            metadata=metadata,
            data_dir=tmp,
            config=tfds.core.BuilderConfig(name=name, version=version, description=description),
            file_format="array_record",
        )
        with tfds_build():  # spills to plain files, not tf.io.gfile; records serialized deterministically
            builder.download_and_prepare(
                download_dir=tmp / "downloads",
                download_config=tfds.download.DownloadConfig(
                    download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS,
                ),
            )
        shutil.rmtree(tmp / "downloads", ignore_errors=True)
        if write_keys:  # the records' keys for training (io.tfds_keys), before the directory is published
            write_split_keys(Path(builder.data_dir))

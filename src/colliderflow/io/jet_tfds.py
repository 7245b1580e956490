"""JetClass-II jet files → one TFDS dataset (array_record) with train/val/test splits, read without TensorFlow.

The event-level dataset (colliderflow.io.tfds_writer) has a per-event `split` column; jet files carry no
such column, their split is where they live. So the inputs are the layout `colliderflow.jetset` writes:
a dataset directory holding train/, val/ and test/ (or any of those directories, or files inside them).
A file that is not inside a split directory is an error naming it.

A record is one jet. The reader (`open_jet_split`) returns every JetClass-II column under its own name
(list columns as 1-d arrays of the column's dtype, per-jet columns as numpy scalars of that dtype), plus
`sample` (the file stem) and `event_id` (the row in the file), the key sampling weights are joined on,
the same as colliderflow.train.jet_data.JetDataset uses. Stems must therefore be unique over the inputs
(jetset's are). On disk a record holds a few blocks instead of 54 features (`BLOCKS`, also written to
the dataset metadata): per particle collection (part, genpart, aux_genpart) one [n, k] float32 block of
its float columns and one [n, k] int32 block of its integer and boolean columns, and one float32 and one
int32 vector of the per-jet columns. Values are exact (bools and int32 survive int32, floats stay
float32); the blocking only saves TFDS's per-feature Python encoding, which set the build speed.

As in the event dataset: the builder name is fixed (`colliderflow_jets`) and the dataset name is the
builder config, so the data lives in ``<output_dir>/colliderflow_jets/<name>/1.0.0/``; records are stored
in TFDS's key-hash order (key ``"<sample>/<event_id>"``), so the files depend only on which jets go in;
a split without jets is left out of the TFDS split list, listed under ``empty_splits`` and read as empty;
the directory is built beside `output_dir` and renamed at the end. Building still encodes jet by jet in
Python, a few thousand jets per second on one core: it is meant for consumers that want array_record,
not as the fast path; training reads the Parquet files directly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colliderflow.io.tfds_reader import SplitSource, find_version_dir, split_sizes
from colliderflow.io.tfds_writer import prepare_array_record
from colliderflow.jetschema import JETCLASS2_COLUMNS, JetColumn, schema_differences

log = logging.getLogger(__name__)

BUILDER_NAME: Final = "colliderflow_jets"
VERSION: Final = "1.0.0"
SPLITS: Final = ("train", "val", "test")
_DTYPES: Final[dict[str, type[np.generic]]] = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _family(column: JetColumn) -> str:
    """Which stored block a column goes into: the list columns of one particle collection share their
    lengths (one entry per particle), the per-jet columns form one fixed-length vector."""
    if not column.is_list:
        return "jet"
    for prefix in ("aux_genpart", "genpart", "part"):
        if column.name.startswith(prefix + "_"):
            return prefix
    raise AssertionError(f"JetClass-II list column {column.name!r} belongs to no particle collection")


def _blocks() -> dict[str, tuple[JetColumn, ...]]:
    """Stored block → its columns, in JetClass-II order: floats in `<family>_float`, ints and flags
    (exact as int32) in `<family>_int`."""
    blocks: dict[str, list[JetColumn]] = {}
    for column in JETCLASS2_COLUMNS:
        kind = "float" if column.dtype == "float32" else "int"
        blocks.setdefault(f"{_family(column)}_{kind}", []).append(column)
    return {name: tuple(columns) for name, columns in blocks.items()}


# Records store a few blocks rather than 54 features: TFDS encodes feature by feature in Python, and
# with one feature per column that encoding, not the data, set the build speed (about 5x slower).
BLOCKS: Final[dict[str, tuple[JetColumn, ...]]] = _blocks()
BLOCK_DTYPES: Final[dict[str, type[np.generic]]] = {
    name: np.float32 if name.endswith("_float") else np.int32 for name in BLOCKS
}


def _visible_parquet(folder: Path) -> list[Path]:
    """The Parquet files of a split folder, without hidden ones: a writer's temporary (.colliderflow-tmp-…)
    or any other dot-file left in the folder is not data."""
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))


def jet_split_files(inputs: Sequence[Path]) -> dict[str, list[Path]]:
    """Files per split (sorted) from dataset directories, split directories or files inside them."""
    per_split: dict[str, list[Path]] = {s: [] for s in SPLITS}
    for path in map(Path, inputs):
        if path.is_dir() and path.name not in SPLITS:
            subdirs = [path / s for s in SPLITS if (path / s).is_dir()]
            if not subdirs:
                raise ValueError(f"{path}: neither a split directory nor a dataset holding {'/'.join(SPLITS)}")
            for sub in subdirs:
                per_split[sub.name] += _visible_parquet(sub)
        elif path.is_dir():
            per_split[path.name] += _visible_parquet(path)
        elif path.parent.name in SPLITS:
            per_split[path.parent.name].append(path)
        else:
            raise ValueError(f"{path}: not inside a {'/'.join(SPLITS)} directory, so its split is unknown")
    stems: dict[str, Path] = {}
    for split in SPLITS:
        per_split[split] = sorted(set(per_split[split]))
        for path in per_split[split]:
            if path.stem in stems:
                raise ValueError(f"{stems[path.stem]} and {path} share the file stem {path.stem!r}, "
                                 "which is what jets are keyed by")
            stems[path.stem] = path
    return per_split


def _check_file(path: Path) -> int:
    if not path.is_file():
        raise ValueError(f"{path}: jet Parquet file does not exist")
    try:
        metadata = pq.read_metadata(path)
        problems = schema_differences(metadata.schema.to_arrow_schema())
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    if problems:
        raise ValueError(f"{path}: not a JetClass-II jet file: {'; '.join(problems)}")
    return int(metadata.num_rows)


def _features() -> Any:
    import tensorflow_datasets as tfds

    spec: dict[str, Any] = {}
    for name, columns in BLOCKS.items():
        shape = (len(columns),) if name.startswith("jet_") else (None, len(columns))
        spec[name] = tfds.features.Tensor(shape=shape, dtype=BLOCK_DTYPES[name], encoding="bytes")
    spec["event_id"] = tfds.features.Scalar(dtype=np.int64)
    spec["sample"] = tfds.features.Text()
    return tfds.features.FeaturesDict(spec)


def _stack(table: pa.Table, path: Path, name: str, columns: tuple[JetColumn, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(offsets per jet, values [n, k]) of one block; per-jet blocks have offsets 0..n_jets."""
    if not columns[0].is_list:
        values = np.stack([table.column(c.name).to_numpy() for c in columns], axis=1)
        return np.arange(table.num_rows + 1), values.astype(BLOCK_DTYPES[name])
    offsets, flats = None, []
    for column in columns:
        array = table.column(column.name).combine_chunks()
        own = array.offsets.to_numpy()
        own = own - own[0]
        if offsets is None:
            offsets = own
        elif not np.array_equal(own, offsets):
            raise ValueError(f"{path}: {column.name} has other lengths than {columns[0].name} in some jets")
        flats.append(pc.list_flatten(array).to_numpy(zero_copy_only=False))
    return offsets, np.stack(flats, axis=1).astype(BLOCK_DTYPES[name])


def _examples(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, example) of every jet of one file: each block sliced from one array built per file."""
    table = pq.read_table(path)
    blocks = {name: _stack(table, path, name, columns) for name, columns in BLOCKS.items()}
    sample = path.stem
    for row in range(table.num_rows):
        example: dict[str, Any] = {name: values[offsets[row]:offsets[row + 1]]
                                   for name, (offsets, values) in blocks.items()}
        for name in BLOCKS:
            if name.startswith("jet_"):
                example[name] = example[name][0]
        example["event_id"] = np.int64(row)
        example["sample"] = sample
        yield f"{sample}/{row}", example


def _builder_class() -> type:
    """The builder class, created on demand so that importing this module does not import TFDS."""
    import tensorflow_datasets as tfds

    class ColliderflowJets(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Large-radius jets in the JetClass-II layout, one record per jet."""

        name = BUILDER_NAME
        VERSION = tfds.core.Version(VERSION)
        RELEASE_NOTES: ClassVar[dict[str, str]] = {str(VERSION): "JetClass-II jets from colliderflow Parquet files."}
        code_path = None  # no checksums file to look for: nothing is downloaded (see tfds_writer)

        def __init__(self, *, files_per_split: dict[str, list[Path]], metadata: dict[str, Any], **kwargs: Any):
            self._files_per_split = files_per_split
            self._extra_metadata = metadata
            super().__init__(**kwargs)

        def _info(self) -> Any:
            return tfds.core.DatasetInfo(
                builder=self,
                description="JetClass-II jets: constituents (part_*), jet, gen jet and truth columns per jet.",
                features=_features(),
                metadata=tfds.core.MetadataDict(self._extra_metadata),
            )

        def _split_generators(self, dl_manager: Any) -> dict[str, Iterator[tuple[str, dict[str, Any]]]]:
            return {split: self._generate_examples(split) for split, files in self._files_per_split.items() if files}

        def _generate_examples(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
            for path in self._files_per_split[split]:
                yield from _examples(path)

    return ColliderflowJets


def build_jet_tfds(inputs: list[Path], *, name: str, output_dir: Path) -> Path:
    """Build the jet dataset `name` from JetClass-II files into `output_dir`; return its version directory.

    inputs: dataset directories (holding train/, val/, test/), split directories, or files inside split
    directories. Every file is checked (exact JetClass-II columns) before anything is written.
    """
    if not _NAME_RE.match(name):
        raise ValueError(f"dataset name {name!r} must be letters, digits, '_', '.', '-' (a directory name)")
    if not inputs:
        raise ValueError("build_jet_tfds: no inputs given")
    files = jet_split_files(inputs)
    rows = {split: [_check_file(p) for p in paths] for split, paths in files.items()}
    per_split = {split: [p for p, n in zip(paths, rows[split], strict=True) if n] for split, paths in files.items()}
    empty = [s for s in SPLITS if not per_split[s]]
    if empty:
        log.warning("%s: no jets in split(s) %s", name, ", ".join(empty))

    metadata = {
        "dataset_name": name,
        "inputs": {split: [p.name for p in paths] for split, paths in files.items()},
        "empty_splits": empty,
        "key": "sample = file stem, event_id = row of the jet in that file",
        "blocks": {name: [c.name for c in columns] for name, columns in BLOCKS.items()},
        "columns": {c.name: {"dtype": c.dtype, "is_list": c.is_list, "unit": c.unit, "meaning": c.meaning}
                    for c in JETCLASS2_COLUMNS},
    }
    output_dir = Path(output_dir)
    prepare_array_record(_builder_class(), name=name, version=VERSION, description=f"jet dataset {name}",
                         files_per_split=per_split, metadata=metadata, output_dir=output_dir)
    return output_dir / BUILDER_NAME / name / VERSION


def _convert_jet(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record → one entry per JetClass-II column, each of the column's dtype."""
    out: dict[str, Any] = {}
    for name, columns in BLOCKS.items():
        block = np.asarray(record[name])
        for j, column in enumerate(columns):
            dtype = _DTYPES[column.dtype]
            out[column.name] = dtype(block[j]) if block.ndim == 1 else block[:, j].astype(dtype)
    out["sample"], out["event_id"] = record["sample"], record["event_id"]
    return out


class JetSplitSource(SplitSource):
    """One split of a jet dataset: a lazily opened random-access sequence of jet dicts (see tfds_reader)."""

    def __getitem__(self, index: int | slice) -> Any:  # type: ignore[override]
        if isinstance(index, slice):  # the parent fetches slices through __getitems__, which converts
            return super().__getitem__(index)
        return _convert_jet(super().__getitem__(index))

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return [_convert_jet(r) for r in super().__getitems__(indices)]


def open_jet_split(data_dir: str | Path, split: str) -> JetSplitSource:
    """One split of the jet dataset in `data_dir`, ready for random access; nothing is opened yet."""
    version_dir = find_version_dir(data_dir)
    sizes = split_sizes(version_dir)
    if split not in sizes:
        raise ValueError(f"{version_dir}: no split {split!r}; it has {', '.join(sizes)}")
    return JetSplitSource(version_dir, split, sizes[split])

"""Random access to one split of a dataset written by `colliderflow.io.tfds_writer`, without TensorFlow.

The record layout comes from `colliderflow.io.tfds_features`, the contract both sides share.

array_record does not survive fork: once a process has read (or written) array_record files, opening
a reader in a forked child crashes, even a fresh one. So `open_split` opens nothing: the source is
opened on first item access, in the process that uses it, and reopened if the object turns up in
another process (pickled into a spawned worker, or forked from a parent that never read). A forked
child of a process that did read gets a RuntimeError naming the remedy instead of a segfault. Sizes
come from the dataset's metadata, so `len()` never opens anything.

Records come back as dicts: row blocks as float32 arrays of shape (n, width), scalars as numpy scalars
of the stored dtype (TFDS alone would hand back Python ints and floats), ``sample`` as ``str``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from colliderflow.io.tfds_features import (
    SCALAR_FEATURES,
    TEXT_FEATURES,
    check_array_record_usable,
    note_array_record_use,
)
from colliderflow.schema import SPLITS

_INFO_FILE = "dataset_info.json"


def find_version_dir(data_dir: str | Path) -> Path:
    """The one TFDS version directory under `data_dir` (or `data_dir` itself if it is one)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such TFDS data directory")
    if (data_dir / _INFO_FILE).is_file():
        return data_dir
    found = sorted(p.parent for p in data_dir.rglob(_INFO_FILE) if not any(
        part.startswith((".", "incomplete.")) for part in p.relative_to(data_dir).parts))
    if not found:
        raise ValueError(f"{data_dir}: no TFDS dataset in it (no {_INFO_FILE} found)")
    if len(found) > 1:
        listing = ", ".join(str(p.relative_to(data_dir)) for p in found)
        raise ValueError(f"{data_dir}: holds several TFDS datasets/versions ({listing}); point at one of them")
    return found[0]


def _builder(version_dir: Path) -> Any:
    import tensorflow_datasets as tfds

    try:
        return tfds.builder_from_directory(os.fspath(version_dir))
    except Exception as exc:  # TFDS raises assorted types for a damaged directory
        raise ValueError(f"{version_dir}: not a readable TFDS dataset ({exc})") from exc


def _sizes(builder: Any) -> dict[str, int]:
    sizes = {split: 0 for split in SPLITS}
    sizes.update({name: int(info.num_examples) for name, info in builder.info.splits.items()})
    return sizes


def split_sizes(data_dir: str | Path) -> dict[str, int]:
    """Number of events per split; train, val and test are always present (0 when empty)."""
    return _sizes(_builder(find_version_dir(data_dir)))


def _convert(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for name, dtype in SCALAR_FEATURES.items():
        if name in out:
            out[name] = dtype(out[name])
    for name in TEXT_FEATURES:
        if isinstance(out.get(name), bytes):
            out[name] = out[name].decode("utf-8")
    return out


class SplitSource(Sequence):
    """One split as a lazily opened random-access sequence of event dicts (safe to pickle and fork)."""

    def __init__(self, version_dir: Path, split: str, length: int) -> None:
        self.version_dir = version_dir
        self.split = split
        self._length = length
        self._source: Any = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"SplitSource({str(self.version_dir)!r}, split={self.split!r}, len={self._length})"

    def _data_source(self) -> Any:
        if self._source is None or self._pid != os.getpid():
            check_array_record_usable()
            note_array_record_use()
            self._source = _builder(self.version_dir).as_data_source(split=self.split)
            self._pid = os.getpid()
        return self._source

    def _index(self, index: int) -> int:
        index = int(index)
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError(f"index out of range for split {self.split!r} of {self._length} events")
        return index

    def __getitem__(self, index: int | slice) -> Any:  # type: ignore[override]
        if isinstance(index, slice):
            return self.__getitems__(range(*index.indices(self._length)))
        position = self._index(index)  # before opening: an empty split has no source to open
        return _convert(self._data_source()[position])

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A batch of records in one call (what torch's DataLoader uses for batched fetching)."""
        positions = [self._index(i) for i in indices]
        if not positions:
            return []
        return [_convert(r) for r in self._data_source().__getitems__(positions)]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_source"] = None
        state["_pid"] = None
        return state


def open_split(data_dir: str | Path, split: str) -> SplitSource:
    """One split of the dataset in `data_dir`, ready for random access; nothing is opened yet."""
    version_dir = find_version_dir(data_dir)
    sizes = _sizes(_builder(version_dir))
    if split not in sizes:
        raise ValueError(f"{version_dir}: no split {split!r}; it has {', '.join(sizes)}")
    return SplitSource(version_dir, split, sizes[split])

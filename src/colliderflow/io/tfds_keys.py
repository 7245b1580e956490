"""keys.parquet beside a PF TFDS dataset: the (sample, event_id, n_elements) of every record of every split,
in record order, written once by the stage that builds the dataset.

Training needs the keys of every training event (to join the sampling weights) and, for length
bucketing, their lengths; reading them from this small file instead of decoding every record is what
lets a run start in seconds on a million events, on every rank. TFDS stores records in its own shuffled
order, so the file is written by reading the finished splits back once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colliderflow.io.atomic import atomic_path
from colliderflow.io.tfds_reader import SplitSource, split_sizes

log = logging.getLogger(__name__)

KEYS_FILE = "keys.parquet"
_CHUNK = 1024


def write_split_keys(version_dir: Path) -> Path:
    """Read every split of the dataset in `version_dir` once and write `version_dir/keys.parquet`
    (columns split, index, sample, event_id, n_elements)."""
    columns: dict[str, list] = {"split": [], "index": [], "sample": [], "event_id": [], "n_elements": []}
    for split, n in split_sizes(version_dir).items():
        source = SplitSource(Path(version_dir), split, n)
        for start in range(0, n, _CHUNK):
            for i, ev in enumerate(source.__getitems__(range(start, min(start + _CHUNK, n)))):
                columns["split"].append(split)
                columns["index"].append(start + i)
                columns["sample"].append(str(ev["sample"]))
                columns["event_id"].append(int(ev["event_id"]))
                columns["n_elements"].append(len(ev["X"]))
    table = pa.table({
        "split": pa.array(columns["split"], pa.string()).dictionary_encode(),
        "index": pa.array(columns["index"], pa.int64()),
        "sample": pa.array(columns["sample"], pa.string()).dictionary_encode(),
        "event_id": pa.array(columns["event_id"], pa.int64()),
        "n_elements": pa.array(columns["n_elements"], pa.int32()),
    })
    path = Path(version_dir) / KEYS_FILE
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_split_keys(version_dir: Path, split: str, length: int) -> tuple[pa.Array, np.ndarray, np.ndarray] | None:
    """(sample [n] dictionary array, event_id [n] int64, n_elements [n] int64) of one split in record order;
    None when the dataset has no keys file (built by an older version). A file that disagrees with the
    split's size is an error naming it."""
    path = Path(version_dir) / KEYS_FILE
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path, filters=[("split", "=", split)])
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise ValueError(f"{path}: unreadable keys file: {exc}") from exc
    index = table.column("index").to_numpy()
    if len(index) != length or (len(index) and not np.array_equal(index, np.arange(length))):
        raise ValueError(f"{path}: {len(index)} keys for split {split!r} of {length} records, or out of order")
    sample = pc.dictionary_encode(table.column("sample")).combine_chunks()
    return sample, table.column("event_id").to_numpy().astype(np.int64), \
        table.column("n_elements").to_numpy().astype(np.int64)

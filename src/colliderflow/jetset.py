"""Per-shard JetClass-II files → one shuffled jet dataset with train/val/test splits.

The jet ntuplizer writes one file per simulation shard, and each shard holds one physics sample, so a
file is mostly one class. Readers that go through files in order (weaver, a plain DataLoader over
files, TFDS) would then see long runs of a single class. This stage mixes the jets of all shards,
assigns each jet to a split and writes files of a bounded size:

    output_dir/train/train_0000.parquet, train_0001.parquet, …
    output_dir/val/val_0000.parquet, …
    output_dir/test/test_0000.parquet, …

Every file has exactly `JETCLASS2_SCHEMA` (zstd, no dictionary encoding, as the ntuplizer writes them)
and at most `jets_per_file` rows; the files of one split hold nearly equal numbers of jets. File stems
carry their split, so they are unique across the whole dataset: sampling weights, keyed by (file stem,
row), cannot confuse a training file with a validation file. A split that receives no jet still gets
one zero-row file, so that a reader pointed at the split directory finds a file with the schema rather
than an empty directory.

Split assignment. A jet's split is a function of (seed, the input file's identity, the jet's row in
that file) only: a 64-bit hash of those, read as a number u in [0, 1), compared with the cumulative
split fractions (train, then val, then test). The identity of an input file is its last three path
parts, `<sample>/<job>/<index>.parquet` in the ntuplizer's layout, not its absolute location nor its
position among the inputs. So moving the results directory or adding shards leaves every existing jet
in its split, and a jet never crosses from test to train when the dataset grows. Two inputs with the
same identity (the same shard of two runs) get the same pattern of splits, which is harmless.

Order. Within a split, the jets are put in a uniformly random order drawn from a generator seeded by
(seed, split); file k holds positions [start_k, start_k+1) of that order. Output bytes therefore depend
only on the sorted inputs, the seed, the fractions and jets_per_file.

Memory (two streaming passes). Pass 1 reads only the inputs' Parquet footers (row counts). Pass 2
reads the inputs one batch of at most `jets_per_file` rows at a time and scatters each batch's jets into
per-output-file scratch files (Arrow IPC, zstd) in a scratch directory inside the staging directory,
buffering at most about `jets_per_file` jets before appending. Pass 3 builds each output file from its
scratch file alone. Peak data memory is thus about three `jets_per_file`-sized tables; the index memory
on top is about 9 bytes per jet (a split code and a permutation entry), 90 MB for 10M jets. Scratch
space on disk is about the size of the compressed output.

Atomicity. The whole dataset is built in a temporary directory beside `output_dir` and renamed onto it
only when every file is complete; an existing `output_dir` (and anything else in it) is replaced at
that moment. Inputs are checked (existence, exact JetClass-II columns and types) before anything is
written: a bad input is a ValueError naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colliderflow.config import derive_seed
from colliderflow.io.atomic import atomic_dir
from colliderflow.jetschema import JETCLASS2_SCHEMA, schema_differences
from colliderflow.params import SplitFractions, stage_params
from colliderflow.provenance import provenance_record, write_provenance

log = logging.getLogger(__name__)

SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
IDENTITY_PARTS: Final = 3  # <sample>/<job>/<index>.parquet
_POSITION: Final = "__position"
_SCRATCH: Final = ".scratch"
_IPC_OPTIONS: Final = pa.ipc.IpcWriteOptions(compression="zstd")
_U64: Final = np.uint64


def input_identity(path: Path) -> str:
    """The part of an input's path that names it for the split hash (see the module docstring)."""
    return "/".join(Path(path).parts[-IDENTITY_PARTS:])


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: neighbouring inputs → unrelated, uniformly spread 64-bit outputs."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def split_uniforms(identity: str, rows: np.ndarray, seed: int) -> np.ndarray:
    """u in [0, 1) per row of one input: the number its split is read from. Pure function of its args."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{identity}".encode(), digest_size=8).digest()
    base = _U64(int.from_bytes(digest, "little"))
    with np.errstate(over="ignore"):
        x = base + (np.asarray(rows, dtype=np.uint64) + _U64(1)) * _U64(0x9E3779B97F4A7C15)
        x = _mix64(x)
    return (x >> _U64(11)).astype(np.float64) * 2.0**-53


def _check_fractions(split_fractions: Mapping[str, float]) -> np.ndarray:
    """Fractions in SPLITS order (a missing split is 0), checked as the dry run checks jets.split_fractions."""
    if not isinstance(split_fractions, Mapping):
        raise ValueError(  # noqa: TRY004 (bad input: ValueError, as every other parameter check)
            f"jets.split_fractions: expected a mapping split → fraction, got {split_fractions!r}")
    checked = stage_params(SplitFractions, {**dict.fromkeys(SPLITS, 0.0), **split_fractions},
                           where="jets.split_fractions")
    return np.array([checked.as_dict()[s] for s in SPLITS])


def split_codes(identity: str, n_rows: int, seed: int, fractions: np.ndarray) -> np.ndarray:
    """Index into SPLITS of every row of one input (uint8)."""
    u = split_uniforms(identity, np.arange(n_rows), seed)
    edges = np.cumsum(fractions)[:-1]  # the last split takes everything above, so rounding loses no jet
    return np.searchsorted(edges, u, side="right").astype(np.uint8)


def _input_files(inputs: Sequence[Path]) -> list[Path]:
    """Inputs as a sorted list of files; a directory stands for every *.parquet below it."""
    files: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = [p for p in path.rglob("*.parquet")
                     if not any(part.startswith(".") for part in p.relative_to(path).parts)]  # skip temporaries
            if not found:
                raise ValueError(f"{path}: no .parquet file in this directory")
            files += found
        else:
            files.append(path)
    files = sorted(files)
    seen = Counter(p.resolve() for p in files)
    repeated = [str(p) for p, n in seen.items() if n > 1]
    if repeated:
        raise ValueError(f"input given more than once (its jets would be duplicated): {repeated[0]}")
    return files


def _check_input(path: Path) -> int:
    """Number of jets of a JetClass-II input; ValueError naming the file when it is not one."""
    if not path.is_file():
        raise ValueError(f"{path}: jet Parquet file does not exist")
    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    problems = schema_differences(schema)
    if problems:
        raise ValueError(f"{path}: not a JetClass-II jet file: {'; '.join(problems)}")
    return int(metadata.num_rows)


def _file_sizes(n_jets: int, jets_per_file: int) -> np.ndarray:
    """Rows per output file: the fewest files of at most jets_per_file, as even as possible; ≥ 1 file."""
    n_files = max(1, math.ceil(n_jets / jets_per_file))
    sizes = np.full(n_files, n_jets // n_files, dtype=np.int64)
    sizes[: n_jets % n_files] += 1
    return sizes


def file_name(split: str, index: int) -> str:
    """`<split>_<k:04d>.parquet`: the split in the stem keeps stems unique over the dataset."""
    return f"{split}_{index:04d}.parquet"


def _batches(path: Path, batch_rows: int) -> Iterator[pa.Table]:
    """An input in tables of at most batch_rows rows, cast to exactly JETCLASS2_SCHEMA."""
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=batch_rows):
            yield pa.Table.from_batches([batch]).cast(JETCLASS2_SCHEMA)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: cannot read as a JetClass-II jet file ({exc})") from exc


class _Scatter:
    """Per-output-file scratch files that jets are appended to in chunks (Arrow IPC streams, zstd)."""

    def __init__(self, directory: Path, flush_rows: int) -> None:
        self.directory = directory
        self.flush_rows = flush_rows
        self.buffer: dict[tuple[int, int], list[pa.Table]] = {}
        self.buffered = 0
        self.lengths: dict[tuple[int, int], list[int]] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: tuple[int, int]) -> Path:
        return self.directory / f"{SPLITS[key[0]]}_{key[1]}.arrows"

    def add(self, key: tuple[int, int], chunk: pa.Table) -> None:
        self.buffer.setdefault(key, []).append(chunk)
        self.buffered += chunk.num_rows

    def maybe_flush(self) -> None:
        if self.buffered >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        for key in sorted(self.buffer):
            table = pa.concat_tables(self.buffer[key])
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
                writer.write_table(table)
            data = sink.getvalue()
            with open(self.path(key), "ab") as handle:
                handle.write(data)
            self.lengths.setdefault(key, []).append(data.size)
        self.buffer.clear()
        self.buffered = 0

    def read(self, key: tuple[int, int]) -> pa.Table | None:
        """Every chunk appended for `key`, as one table (None if nothing was)."""
        if key not in self.lengths:
            return None
        path = self.path(key)
        data = pa.py_buffer(path.read_bytes())
        tables, offset = [], 0
        for length in self.lengths[key]:
            tables.append(pa.ipc.open_stream(data.slice(offset, length)).read_all())
            offset += length
        path.unlink()
        return pa.concat_tables(tables)


def assemble_jet_dataset(inputs: list[Path], *, output_dir: Path, split_fractions: Mapping[str, float],
                         jets_per_file: int, seed: int, provenance: Path | None) -> dict[str, Any]:
    """Write the shuffled, split jet dataset of `inputs` to output_dir/{train,val,test}/ (module docstring).

    inputs: JetClass-II Parquet files, or directories searched for them; their order does not matter
    (they are sorted by path). split_fractions: fraction of jets per split (keys train, val, test; a
    missing key is 0; the values must sum to 1). Returns, and records in `provenance`, the number of jets
    per split and per jet_label, and every file written with its number of jets.
    """
    fractions = _check_fractions(split_fractions)
    if not isinstance(jets_per_file, int) or isinstance(jets_per_file, bool) or jets_per_file < 1:
        raise ValueError(f"jets_per_file: expected a positive integer, got {jets_per_file!r}")
    files = _input_files(inputs)
    if not files:
        raise ValueError("jet dataset: no input files given")
    output_dir = Path(output_dir)
    for path in files:
        if path.resolve().is_relative_to(output_dir.resolve()):
            raise ValueError(f"{path}: input lies inside the output directory {output_dir}, which is replaced")

    # Pass 1: footers only. Row counts → split of every jet → split sizes and file layout.
    rows_per_input = [_check_input(p) for p in files]
    identities = [input_identity(p) for p in files]
    codes = [split_codes(i, n, seed, fractions) for i, n in zip(identities, rows_per_input, strict=True)]
    all_codes = np.concatenate(codes) if codes else np.zeros(0, np.uint8)
    split_jets = np.bincount(all_codes, minlength=len(SPLITS)).astype(np.int64)
    sizes = [_file_sizes(int(n), jets_per_file) for n in split_jets]
    starts = [np.concatenate([[0], np.cumsum(s)]) for s in sizes]
    orders = [np.random.default_rng(derive_seed(seed, "jet-dataset-order", s)).permutation(int(n))
              for s, n in zip(SPLITS, split_jets, strict=True)]
    del all_codes

    labels: list[Counter[int]] = [Counter() for _ in SPLITS]
    written: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
    with atomic_dir(output_dir) as staging:
        scatter = _Scatter(staging / _SCRATCH, flush_rows=jets_per_file)
        # Pass 2: each jet to its output file's scratch file, tagged with its position in the split order.
        taken = np.zeros(len(SPLITS), dtype=np.int64)  # jets of each split seen so far, in input order
        for path, code in zip(files, codes, strict=True):
            row = 0
            for table in _batches(path, jets_per_file):
                n = table.num_rows
                c = code[row : row + n]
                row += n
                position = np.empty(n, dtype=np.int64)
                target = np.empty(n, dtype=np.int64)
                jet_label = table.column("jet_label").to_numpy()
                for s in range(len(SPLITS)):
                    mine = c == s
                    k = int(mine.sum())
                    if not k:
                        continue
                    position[mine] = orders[s][taken[s] : taken[s] + k]
                    taken[s] += k
                    target[mine] = np.searchsorted(starts[s], position[mine], side="right") - 1
                    values, counts = np.unique(jet_label[mine], return_counts=True)
                    labels[s].update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
                key = c.astype(np.int64) * (1 << 40) + target
                order = np.argsort(key, kind="stable")
                table = table.append_column(_POSITION, pa.array(position)).take(pa.array(order))
                sorted_key = key[order]
                bounds = np.flatnonzero(np.diff(sorted_key)) + 1
                for a, b in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [n]]), strict=True):
                    k_code = int(sorted_key[a])
                    scatter.add((k_code >> 40, k_code & ((1 << 40) - 1)), table.slice(int(a), int(b - a)))
                scatter.maybe_flush()
            if row != len(code):
                raise ValueError(f"{path}: read {row} jets but its footer announces {len(code)}")
        scatter.flush()

        # Pass 3: each output file from its scratch file, rows in split-order position.
        for s, split in enumerate(SPLITS):
            directory = staging / split
            directory.mkdir()
            for k, size in enumerate(sizes[s].tolist()):
                table = scatter.read((s, k))
                if table is None:
                    table = JETCLASS2_SCHEMA.empty_table()
                else:
                    position = table.column(_POSITION)
                    table = table.take(pc.sort_indices(position)).drop_columns([_POSITION])
                    expected = np.arange(starts[s][k], starts[s][k + 1])
                    if not np.array_equal(np.sort(position.to_numpy()), expected):
                        raise RuntimeError(f"{split} file {k}: scatter lost or duplicated jets")
                if table.num_rows != size:
                    raise RuntimeError(f"{split} file {k}: {table.num_rows} jets, expected {size}")
                name = file_name(split, k)
                pq.write_table(table.cast(JETCLASS2_SCHEMA), directory / name, compression="zstd",
                               use_dictionary=False)
                written[split].append({"file": f"{split}/{name}", "jets": int(size)})
        shutil.rmtree(staging / _SCRATCH)

    summary: dict[str, Any] = {
        "jets": int(split_jets.sum()),
        "inputs": len(files),
        "seed": int(seed),
        "split_fractions": dict(zip(SPLITS, fractions.tolist(), strict=True)),
        "jets_per_file": int(jets_per_file),
        "splits": {
            split: {
                "jets": int(split_jets[s]),
                "files": written[split],
                "jets_per_label": {str(lab): int(n) for lab, n in sorted(labels[s].items())},
            }
            for s, split in enumerate(SPLITS)
        },
        "jets_per_label": {str(lab): int(n) for lab, n in sorted(sum(labels, Counter()).items())},
        "files_written": [f["file"] for split in SPLITS for f in written[split]],
    }
    if provenance is not None:
        write_provenance(provenance, provenance_record(
            stage="jet_dataset",
            config={"split_fractions": summary["split_fractions"], "jets_per_file": int(jets_per_file)},
            seeds={"jet_dataset": int(seed)},
            inputs=[str(p) for p in files],
            extra={"output_dir": str(output_dir), "stats": summary},
        ))
    log.info("jet dataset: %d jets from %d files → %s", summary["jets"], len(files),
             ", ".join(f"{s} {int(n)}" for s, n in zip(SPLITS, split_jets, strict=True)))
    return summary

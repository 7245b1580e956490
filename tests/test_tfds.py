"""TFDS (array_record) datasets: built from Parquet shards, read back record by record, no TensorFlow."""

from __future__ import annotations

import multiprocessing
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from colliderflow.io.parquet import write_parquet_atomic
from colliderflow.io.tfds_reader import find_version_dir, open_split, split_sizes
from colliderflow.io.tfds_writer import build_tfds
from event_tables import make_events as make_table

ROWS = {"X": 17, "ytarget": 8, "ycand": 8, "genjets": 4, "targetjets": 4}
SCALARS = {"event_id": np.int64, "n_elements": np.int32, "genmet": np.float32, "gen_unassigned_energy": np.float32}


def make_events(n: int, *, seed: int, sample: str, shard: int, splits: tuple[str, ...]) -> ak.Array:
    return make_table(n, seed=seed, sample=sample, shard=shard, splits=splits, max_elements=9, max_jets=3, first_empty=True)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], dict[tuple[str, int], dict]]:
    """Three shards, two samples; nothing in `val`, so that split is empty."""
    base = tmp_path_factory.mktemp("shards")
    specs = [("ttbar", 0, ("train", "test")), ("ttbar", 1, ("train",)), ("qq", 0, ("train", "test"))]
    paths, events = [], {}
    for i, (sample, shard, splits) in enumerate(specs):
        arr = make_events(25, seed=i, sample=sample, shard=shard, splits=splits)
        path = base / f"{sample}_{shard}.parquet"
        write_parquet_atomic(arr, path)
        paths.append(path)
        for rec in arr.to_list():
            events[(rec["sample"], rec["event_id"])] = rec
    return paths, events


@pytest.fixture(scope="module")
def dataset(shards, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tfds") / "pf"
    build_tfds(shards[0], name="toy", output_dir=out)
    return out


def read_all(data_dir: Path, split: str) -> list[dict]:
    source = open_split(data_dir, split)
    return source.__getitems__(list(range(len(source))))


def test_layout_and_split_sizes(dataset: Path, shards) -> None:
    _, events = shards
    version_dir = find_version_dir(dataset)
    assert version_dir == dataset / "colliderflow_pf" / "toy" / "1.0.0"
    counts = {s: sum(1 for e in events.values() if e["split"] == s) for s in ("train", "val", "test")}
    assert counts["val"] == 0 and counts["train"] > 0 and counts["test"] > 0
    assert split_sizes(dataset) == counts
    assert not (dataset / "downloads").exists()
    assert not any(p.name.startswith(".") for p in dataset.parent.iterdir())


@pytest.mark.parametrize("split", ["train", "test"])
def test_records_equal_the_parquet_events(dataset: Path, shards, split: str) -> None:
    _, events = shards
    records = read_all(dataset, split)
    keys = [(r["sample"], int(r["event_id"])) for r in records]
    assert sorted(keys) == sorted(k for k, e in events.items() if e["split"] == split)
    for record in records:
        expected = events[(record["sample"], int(record["event_id"]))]
        assert set(record) == set(ROWS) | set(SCALARS) | {"sample"}
        for name, width in ROWS.items():
            assert record[name].dtype == np.float32
            np.testing.assert_array_equal(record[name], np.asarray(expected[name], np.float32).reshape(-1, width))
        for name, dtype in SCALARS.items():
            assert isinstance(record[name], dtype)
            assert record[name] == dtype(expected[name])
        assert isinstance(record["sample"], str)


def test_empty_split_reads_as_empty(dataset: Path) -> None:
    val = open_split(dataset, "val")
    assert len(val) == 0
    assert val.__getitems__([]) == []
    assert list(val) == []
    with pytest.raises(IndexError):
        val[0]


def test_sequence_access(dataset: Path) -> None:
    train = open_split(dataset, "train")
    n = len(train)
    assert train[-1]["event_id"] == train[n - 1]["event_id"]
    assert [r["event_id"] for r in train[1:4]] == [train[i]["event_id"] for i in (1, 2, 3)]
    with pytest.raises(IndexError):
        train[n]
    with pytest.raises(ValueError, match="no split 'training'"):
        open_split(dataset, "training")


def test_deterministic_regardless_of_input_order(dataset: Path, shards, tmp_path: Path) -> None:
    paths, _ = shards
    again = tmp_path / "again"
    build_tfds(list(reversed(paths)), name="toy", output_dir=again)
    for split in ("train", "test"):
        first, second = read_all(dataset, split), read_all(again, split)
        assert [(r["sample"], r["event_id"]) for r in first] == [(r["sample"], r["event_id"]) for r in second]
        for a, b in zip(first, second):
            for name in ROWS:
                np.testing.assert_array_equal(a[name], b[name])


def test_all_splits_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    write_parquet_atomic(make_events(3, seed=9, sample="qq", shard=0, splits=("train",))[:0], empty)
    build_tfds([empty], name="nothing", output_dir=tmp_path / "ds")
    assert split_sizes(tmp_path / "ds") == {"train": 0, "val": 0, "test": 0}
    assert len(open_split(tmp_path / "ds", "train")) == 0


def test_failed_build_leaves_no_output(shards, tmp_path: Path) -> None:
    paths, _ = shards
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="appears more than once.*ttbar_0.parquet"):
        build_tfds([paths[0], paths[0]], name="dup", output_dir=out)
    bad = tmp_path / "bad_split.parquet"
    write_parquet_atomic(make_events(4, seed=3, sample="qq", shard=5, splits=("training",)), bad)
    with pytest.raises(ValueError, match="bad_split.parquet: column 'split' holds \\['training'\\]"):
        build_tfds([bad], name="bad", output_dir=out)
    no_x = tmp_path / "no_x.parquet"
    keys_only = make_events(4, seed=3, sample="qq", shard=6, splits=("train",))[["event_id", "sample", "split"]]
    write_parquet_atomic(keys_only, no_x)
    with pytest.raises(ValueError, match="no_x.parquet: missing required column.*X"):
        build_tfds([no_x], name="bad", output_dir=out)
    with pytest.raises(ValueError, match="dataset name"):
        build_tfds(paths, name="a/b", output_dir=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_split.parquet", "no_x.parquet"]


def test_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        open_split(tmp_path / "nowhere", "train")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="no TFDS dataset"):
        split_sizes(tmp_path / "plain")


def _first_event_id(source, queue) -> None:  # runs in a worker process
    try:
        queue.put(int(source[0]["event_id"]))
    except RuntimeError as exc:
        queue.put(str(exc))


def _run_worker(method: str, source) -> tuple[int | None, object]:
    ctx = multiprocessing.get_context(method)
    queue = ctx.Queue()
    worker = ctx.Process(target=_first_event_id, args=(source, queue))
    worker.start()
    worker.join(timeout=180)
    if worker.exitcode is None:
        worker.kill()
        worker.join()
    return worker.exitcode, queue.get(timeout=5) if worker.exitcode == 0 else None


def test_source_opens_lazily_and_travels_to_spawned_workers(dataset: Path) -> None:
    train = open_split(dataset, "train")
    assert train._source is None  # nothing is opened until an item is read
    first = int(train[0]["event_id"])
    assert train._source is not None
    clone = pickle.loads(pickle.dumps(train))
    assert clone._source is None
    assert int(clone[0]["event_id"]) == first
    assert _run_worker("spawn", train) == (0, first)


def test_forked_child_of_a_reading_process_gets_a_clear_error(dataset: Path) -> None:
    train = open_split(dataset, "train")
    train[0]  # this process now holds array_record state
    exitcode, message = _run_worker("fork", train)
    assert exitcode == 0  # an exception, not a segfault
    assert "spawn" in message and "forked" in message


def test_build_and_read_do_not_import_tensorflow(shards, tmp_path: Path) -> None:
    """In a fresh interpreter, building and reading leave no `tensorflow` module loaded (TFDS's lazy
    `tf` handle and `tensorflow_metadata` protos are other packages and do not count)."""
    paths, _ = shards
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from colliderflow.io.tfds_writer import build_tfds
        from colliderflow.io.tfds_reader import open_split
        out = Path({str(tmp_path / "ds")!r})
        build_tfds([Path(p) for p in {[str(p) for p in paths]!r}], name="notf", output_dir=out)
        src = open_split(out, "train")
        batch = src.__getitems__([0, len(src) - 1])
        assert batch[0]["X"].shape[1] == 17
        loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
        print("TF_MODULES", loaded)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TF_MODULES []" in done.stdout


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_spilled_build_writes_the_same_files_without_tensorflow(shards, dataset: Path, tmp_path: Path) -> None:
    """A split over the in-memory limit (here: every split, limit 1 byte) is spilled to TFDS's 1000 hash
    buckets through plain files — TFDS alone would call tf.io.gfile, i.e. need TensorFlow — and the
    dataset's files are byte for byte those of the in-memory build made in this (another) process."""
    paths, _ = shards
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from colliderflow.io import tfds_build
        from colliderflow.io.tfds_writer import build_tfds
        tfds_build.SPILL_ABOVE_BYTES = 1
        from tensorflow_datasets.core import shuffle
        spilled = []
        real = tfds_build._bucket_class
        def counting(module):
            cls = real(module)
            class Counting(cls):
                def add(self, key, data):
                    spilled.append(len(data))
                    super().add(key, data)
            return Counting
        tfds_build._bucket_class = counting
        build_tfds([Path(p) for p in {[str(p) for p in paths]!r}], name="toy", output_dir=Path({str(tmp_path / "pf")!r}))
        assert shuffle.MAX_MEM_BUFFER_SIZE == 1000 << 20 and shuffle._Bucket.__module__ != tfds_build.__name__
        from tensorflow_datasets.core.example_serializer import ExampleSerializer
        assert ExampleSerializer.serialize_example is not tfds_build._serialize_deterministic
        print("SPILLED", len(spilled))
        print("TF_MODULES", sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SPILLED 75" in done.stdout  # all 75 events went through the bucket files
    assert "TF_MODULES []" in done.stdout
    assert _files(tmp_path / "pf") == _files(dataset)

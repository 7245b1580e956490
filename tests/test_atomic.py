"""Atomic output: a failed or interrupted write leaves the previous file (or nothing), never a partial one."""

from __future__ import annotations

import errno
import os

import pytest

from colliderflow.io.atomic import atomic_dir, atomic_path, write_text_atomic


def test_success_renames_into_place(tmp_path):
    final = tmp_path / "sub" / "out.parquet"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.suffix == ".parquet" and tmp != final
        tmp.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    assert sorted(p.name for p in final.parent.iterdir()) == ["out.parquet"]


def test_failure_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    final = tmp_path / "out.json"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_full_disk_leaves_no_partial_file(tmp_path):
    final = tmp_path / "out.bin"
    with pytest.raises(OSError) as excinfo:
        with atomic_path(final) as tmp:
            with tmp.open("wb") as fh:
                fh.write(b"partial")
                raise OSError(errno.ENOSPC, "No space left on device")
    assert excinfo.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_directory_output_is_all_or_nothing(tmp_path):
    final = tmp_path / "dataset"
    with atomic_dir(final) as tmp:
        (tmp / "a").write_text("1")
    assert (final / "a").read_text() == "1"
    with pytest.raises(ValueError):
        with atomic_dir(final) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError("bad input")
    assert sorted(p.name for p in final.iterdir()) == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "x.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644

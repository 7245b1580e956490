"""A job's outputs appear together or not at all; a write error names its file; temporaries do not linger.

Probe: on a full disk `colliderflow weights` left a new w.parquet and h.json but no plot or provenance, and
said only `[Errno 28] No space left on device`. Here the disk fills while the plot is written, once by an
injected ENOSPC and once for real (a file-size limit makes the kernel refuse the write).
"""

from __future__ import annotations

import errno
import json
import logging
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_weights import PARAMS, write_shard

from colliderflow.cli import main as cli_main
from colliderflow.io.atomic import TMP_PREFIX, atomic_dir, atomic_path, output_set, write_text_atomic


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------------------------------
# The output-set machinery
# --------------------------------------------------------------------------------------------------
def test_a_set_appears_only_when_every_member_is_written(tmp_path):
    a, b, figs = tmp_path / "a.json", tmp_path / "b.txt", tmp_path / "plots"
    a.write_text("old a")
    with pytest.raises(OSError, match=r"\[Errno 28\] writing .*b\.txt: No space left on device") as info:
        with output_set(a, b, dirs=(figs,)):
            write_text_atomic(a, "new a")
            write_text_atomic(figs / "x.png", "x")
            assert a.read_text() == "old a" and not (figs / "x.png").exists()  # nothing visible yet
            with atomic_path(b) as tmp:
                tmp.write_text("half")
                raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC
    assert a.read_text() == "old a" and not b.exists() and not figs.exists()
    assert _names(tmp_path) == ["a.json"]  # no temporary left either

    with output_set(a, b, dirs=(figs,)):
        write_text_atomic(a, "new a")
        write_text_atomic(b, "b")
        with atomic_dir(figs / "sub") as tmp:
            (tmp / "y").write_text("y")
        write_text_atomic(figs / "x.png", "x")
    assert (a.read_text(), b.read_text(), (figs / "x.png").read_text()) == ("new a", "b", "x")
    assert (figs / "sub" / "y").read_text() == "y"
    assert _names(tmp_path) == ["a.json", "b.txt", "plots"]


def test_a_declared_output_that_is_not_written_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="b.txt declared but not written"):
        with output_set(tmp_path / "a", tmp_path / "b.txt"):
            write_text_atomic(tmp_path / "a", "a")
    assert _names(tmp_path) == []


def test_temporaries_are_recognisable_and_removed_by_the_next_write(tmp_path):
    final = tmp_path / "w.parquet"
    with atomic_path(final) as tmp:
        assert tmp.name.startswith(f"{TMP_PREFIX}w.parquet~") and tmp.suffix == ".parquet"
        tmp.write_text("x")
    # What a killed job leaves: a file and a staging folder, both named for the output.
    (tmp_path / f"{TMP_PREFIX}w.parquet~abc123.parquet").write_text("left by a kill")
    (tmp_path / f"{TMP_PREFIX}w.parquet~def456").mkdir()
    (tmp_path / f"{TMP_PREFIX}other.json~1.json").write_text("another output's: not ours to remove")
    write_text_atomic(final, "y")
    assert _names(tmp_path) == [f"{TMP_PREFIX}other.json~1.json", "w.parquet"]


def test_a_job_record_scratch_folder_is_named_and_cleaned(tmp_path):
    from colliderflow.jobs import job_provenance

    record = tmp_path / "provenance.json"
    (tmp_path / f"{TMP_PREFIX}provenance.json~old").mkdir()  # left by a killed job
    with pytest.raises(RuntimeError), job_provenance(record, stage="x", n_shards=1) as records:
        assert records[0].parent.name.startswith(f"{TMP_PREFIX}provenance.json~")
        raise RuntimeError("killed")
    assert _names(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# The weights stage on a full disk
# --------------------------------------------------------------------------------------------------
@pytest.fixture()
def weights_job(tmp_path: Path) -> tuple[list[str], Path]:
    paths = []
    for i, (sample, shard) in enumerate([("ttbar", 0), ("qq", 0)]):
        path = tmp_path / f"{sample}_{shard}.parquet"
        write_shard(path, sample, shard, 300, seed=i)
        paths.append(str(path))
    out = tmp_path / "weights"
    args = ["weights", *paths, "--params", json.dumps(PARAMS), "-o", str(out / "w.parquet"),
            "--histograms", str(out / "h.json"), "--plot", str(out / "p.png"), "--provenance", str(out / "prov.json")]
    return args, out


def test_enospc_in_the_plot_leaves_no_output_and_names_the_plot(weights_job, monkeypatch, caplog):
    import matplotlib.figure

    args, out = weights_job

    def full_disk(self, fname, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    assert cli_main(args) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"[Errno 28] writing {out / 'p.png'}: No space left on device"]
    assert _names(out) == []  # neither w.parquet nor h.json nor a temporary


def test_a_real_write_refusal_leaves_no_output(weights_job):
    """The kernel refuses the write (file-size limit → EFBIG) part-way through the outputs."""
    args, out = weights_job
    out.mkdir()
    (out / f"{TMP_PREFIX}w.parquet~killed.parquet").write_text("a killed job's half file")
    (out / f"{TMP_PREFIX}w.parquet~killed").mkdir()  # and its staging folder
    assert cli_main(args) == 0  # once without a limit: the outputs exist, and their sizes tell the limit to use
    assert _names(out) == ["h.json", "p.png", "prov.json", "w.parquet"]  # the leftovers went with the next run
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sizes["p.png"] > 2 * max(sizes["w.parquet"], sizes["h.json"], sizes["prov.json"]), sizes
    limit = (sizes["p.png"] + max(sizes["w.parquet"], sizes["h.json"], sizes["prov.json"])) // 2
    changed = [*args]
    changed[changed.index("--params") + 1] = json.dumps({**PARAMS, "threshold": 0.2})  # new content for every file

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "colliderflow", *changed], capture_output=True, text=True,
                            preexec_fn=limited, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"writing {out / 'p.png'}" in result.stderr and "File too large" in result.stderr, result.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous set, untouched and whole


def test_jet_tfds_skips_hidden_files(tmp_path):
    from colliderflow.io.jet_tfds import jet_split_files

    for split in ("train", "val", "test"):
        (tmp_path / split).mkdir()
        (tmp_path / split / f"{split}-000.parquet").write_bytes(b"")
    (tmp_path / "train" / f"{TMP_PREFIX}part-001.parquet~x.parquet").write_bytes(b"")  # a killed writer's
    (tmp_path / "val" / ".hidden.parquet").write_bytes(b"")
    files = jet_split_files([tmp_path])
    assert {s: [p.name for p in f] for s, f in files.items()} == {s: [f"{s}-000.parquet"] for s in files}

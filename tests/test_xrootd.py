"""The ci configuration with every input and output on a real XRootD server, as EOS users run it:
`--default-storage-provider xrootd --default-storage-prefix root://HOST:PORT//PREFIX`.

Needs a running XRootD server that lets anyone write (ci/setup_xrootd.sh starts one on localhost:1094;
XROOTD_CI_URL names another); skipped otherwise. The run happens once, in a fresh copy of the workflow,
under a prefix of its own on the server; then the files are checked on the server itself, the report is
built from them, and a second run must find nothing to do.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from colliderflow.evaluate.figures import PF_PLOTS
from workflow_api import copy_project

SERVER = os.environ.get("XROOTD_CI_URL", "root://localhost:1094")


def _why_no_server() -> str | None:
    url = SERVER.split("://", 1)[-1]
    host, _, port = url.partition(":")
    try:  # a plain connect first: the XRootD client retries a refused connection for minutes
        socket.create_connection((host, int(port or 1094)), timeout=5).close()
    except OSError as exc:
        return f"no XRootD server at {SERVER} ({exc}); ci/setup_xrootd.sh starts one"
    try:
        from XRootD import client
    except ImportError as exc:
        return f"no XRootD Python bindings ({exc}); pip install xrootd"
    status, _ = client.FileSystem(SERVER).stat("/", timeout=30)
    if not status.ok:
        return f"{SERVER} does not answer as an XRootD server ({status.message.strip()}); ci/setup_xrootd.sh starts one"
    return None


WHY_NOT = _why_no_server()
pytestmark = [pytest.mark.slow, pytest.mark.xrootd, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


def _snakemake(workdir: Path, prefix: str, *args: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [
        sys.executable, "-m", "snakemake", "--profile", "profiles/ci",
        "--default-storage-provider", "xrootd", "--default-storage-prefix", prefix,
        "--storage-xrootd-max-requests-per-second", "1000",
        *args,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def remote_run(tmp_path_factory):
    """The ci configuration run once against the server; (workdir, prefix path on the server, seconds)."""
    workdir = copy_project(tmp_path_factory.mktemp("xrootd") / "wf")
    path = f"/colliderflow-test/{uuid.uuid4().hex[:12]}"
    start = time.monotonic()
    result = _snakemake(workdir, f"{SERVER}/{path}")
    seconds = time.monotonic() - start
    print(f"ci configuration on XRootD: {seconds:.0f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    return workdir, path, seconds


def _read_remote(path: str) -> bytes:
    from XRootD import client

    with client.File() as fh:
        status, _ = fh.open(f"{SERVER}/{path}")
        assert status.ok, f"{path}: {status.message}"
        status, data = fh.read()
        assert status.ok, f"{path}: {status.message}"
    return data


def test_results_are_on_the_server_not_on_local_disk(remote_run):
    from XRootD import client

    workdir, path, _ = remote_run
    ci = yaml.safe_load((workdir / "config/ci.yaml").read_text())
    run, model = ci["run"], ci["train"]["model"]
    fs = client.FileSystem(SERVER)
    expected = [
        f"results/{run}/run_summary.json",
        f"results/{run}/eval/{model}/summary.json",
        f"results/{run}/weights/pf_histograms.json",
        f"results/{run}/models/{model}/model.pt",
        f"results/{run}/sim/ttbar/1/0.root",
        f"results/{run}/ntuples/qq/0/0.parquet",
        f"logs/{run}/train/{model}.log",
        f"benchmarks/results/{run}/generate/ttbar/0.tsv",
    ] + [f"results/{run}/eval/{tagger}/summary.json" for tagger in ci["tagger"]["models"]]
    for name in expected:
        status, info = fs.stat(f"{path}/{name}")
        assert status.ok, f"{name} is not on the server: {status.message}"
        assert info.size > 0, name
    summary = json.loads(_read_remote(f"{path}/results/{run}/eval/{model}/summary.json"))
    assert summary, "empty evaluation summary on the server"
    # Only the dataset directories (local(), see rules/ntuplize.smk) are on the local filesystem.
    local = sorted(p.relative_to(workdir / "results" / run).parts[0] for p in (workdir / "results" / run).iterdir())
    assert local == sorted(["jetset", "tfds", "tfds_jets"]), local
    # The fast readers of a local dataset store nothing (rules/ntuplize.smk, "Fast readers"): weaver's data
    # config and their benchmarks stay local, or a later run would redo them.
    for name in (f"results/{run}/jetset/weaver_data_config.yaml", f"benchmarks/results/{run}/tfds_jets.tsv",
                 f"benchmarks/results/{run}/weights/weaver_config.tsv"):
        assert (workdir / name).is_file(), f"{name} is not on local disk"
        status, _ = fs.stat(f"{path}/{name}")
        assert not status.ok, f"{name} was sent to the server"


def test_report_builds_from_the_server(remote_run, tmp_path):
    workdir, path, _ = remote_run
    report = tmp_path / "report.html"
    result = _snakemake(workdir, f"{SERVER}/{path}", "--report", str(report), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = report.read_text(errors="replace")
    # Every evaluation figure was fetched from the server and embedded.
    for name in PF_PLOTS:
        assert f"{name}.png" in html, name


def test_a_second_run_does_nothing(remote_run):
    workdir, path, _ = remote_run
    result = _snakemake(workdir, f"{SERVER}/{path}", "-n", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]

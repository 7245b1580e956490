"""Key4HEP `compact_file`: only `$NAME`/`${NAME}` expand in the job's shell; no command substitution runs.

Probe: `compact_file: /geo/$(touch pwned).xml` once ran `touch` (the value goes into `bash -c`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from colliderflow.generate.backends.key4hep import key4hep_commands
from colliderflow.generate.backends.options import Key4hepOptions
from colliderflow.params import stage_params

K4 = {"steering_file": "/k/clicConfig/clic_steer.py", "reco_options": "/k/clicConfig/clicRec_e4h_input.py",
      "setup_script": None}


def _compact_file_as_the_shell_sees_it(value: str, tmp_path: Path) -> str:
    """Run the ddsim command line with a fake `ddsim` that prints its --compactFile argument."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "ddsim").write_text('#!/bin/sh\nwhile [ "$1" != --compactFile ]; do shift; done; printf %s "$2"\n')
    (fake / "ddsim").chmod(0o755)
    options = stage_params(Key4hepOptions, {**K4, "compact_file": value}, where="samples.s.key4hep")
    ddsim, _ = key4hep_commands(options, hepmc=tmp_path / "e.hepmc", sim=tmp_path / "s.root",
                                reco=tmp_path / "r.root", n_events=1, seed=1)
    env = {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}", "K4GEO": "/opt/k4geo"}
    result = subprocess.run(ddsim, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=30, check=True)
    return result.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(("value", "seen"), [
    ("$K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml", "/opt/k4geo/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml"),
    ("${K4GEO}/my detector.xml", "/opt/k4geo/my detector.xml"),
    ("/geo/$(touch pwned).xml", "/geo/$(touch pwned).xml"),
    ("/geo/`touch pwned`.xml", "/geo/`touch pwned`.xml"),
    ("/geo/${K4GEO:-$(touch pwned)}.xml", "/geo/${K4GEO:-$(touch pwned)}.xml"),
    ("/geo/$((6*7))\\$(touch pwned)\".xml", "/geo/$((6*7))\\$(touch pwned)\".xml"),
])
def test_only_variables_expand(tmp_path, value, seen):
    assert _compact_file_as_the_shell_sees_it(value, tmp_path) == seen
    assert not (tmp_path / "pwned").exists()

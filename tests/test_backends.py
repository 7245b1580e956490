"""External generation backends: HepMC2 writing (real), command lines, tool checks, runner plumbing.

Delphes and Key4HEP are not installed where these tests run; the runners are exercised with fake
executables on PATH that behave like the real ones at the interface (arguments in, a file out, an exit
code), which proves the plumbing: argument passing, atomic publication, failure handling.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from colliderflow.cli import main
from colliderflow.generate.backends import BackendCommandError, BackendEnvironmentError, run_external_backend
from colliderflow.generate.backends.delphes import (
    DEFAULT_DELPHES_CARD,
    check_delphes_environment,
    delphes_commands,
    resolve_card,
)
from colliderflow.generate.backends.hepmc import hepmc_status, mother_lists, write_hepmc2
from colliderflow.generate.processes import beam_settings
from colliderflow.generate.backends.key4hep import (
    check_key4hep_environment,
    key4hep_commands,
    pythia_card,
)
from colliderflow.generate.backends.options import DelphesOptions, Key4hepOptions
from colliderflow.params import ConfigError, stage_params


def delphes_options(options: dict | None) -> DelphesOptions:
    """A sample's `delphes:` options as the generate job and the dry run build them."""
    return stage_params(DelphesOptions, options, where="samples.s.delphes")


def key4hep_options(options: dict | None) -> Key4hepOptions:
    return stage_params(Key4hepOptions, options, where="samples.s.key4hep")

pyhepmc = pytest.importorskip("pyhepmc")

PARAMS = {"sqrt_s": 380.0, "detector": "clic_like"}


def make_executable(folder: Path, name: str, body: str) -> Path:
    """A Python script named `name` in `folder`, runnable from PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def only_on_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """PATH = `folder` plus the system folders (for bash), never the developer's own tools."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(folder), "/usr/bin", "/bin"]))


@pytest.fixture(autouse=True)
def no_built_delphes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide a Delphes that `make delphes` built into this environment (it comes before PATH) and any conda one,
    so that these tests see only their fake tools."""
    from colliderflow.generate.backends import delphes_install

    monkeypatch.setattr(delphes_install, "venv_prefix", lambda: tmp_path / "no-venv-build")
    monkeypatch.delenv("CONDA_PREFIX", raising=False)


# A fake DelphesHepMC2: checks its arguments like the real one (card, new output, readable input; the files a
# card sources are read relative to the top card's folder), then writes a small ROOT file with a `Delphes` tree
# holding one entry per HepMC event.
FAKE_DELPHES = """
import os, re, sys, uproot, numpy as np
card, out, hepmc = sys.argv[1:4]
sourced = re.findall(r"^source [{]?([^}\\n]+)[}]?$", open(card).read(), re.MULTILINE)
assert sourced, card
for name in sourced:
    assert open(os.path.join(os.path.dirname(card), name)).read().startswith("set ExecutionPath"), name
events = sum(1 for line in open(hepmc) if line.startswith("E "))
print("fake Delphes", card, out, hepmc, events)
with uproot.recreate(out) as f:
    f["Delphes"] = {"Event_size": np.ones(events, dtype=np.int32)}
"""


@pytest.fixture(scope="module")
def hepmc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hepmc") / "ttbar.hepmc"
    write_hepmc2(path, process="ee_ttbar", sqrt_s=380.0, n_events=6, seed=11)
    return path


# ---------------------------------------------------------------- HepMC2 writer (runs here for real)


def test_hepmc2_file_reads_back_with_full_energy_and_sane_particles(hepmc_file: Path) -> None:
    assert hepmc_file.read_text().splitlines()[1] == "HepMC::IO_GenEvent-START_EVENT_LISTING"
    events = []
    with pyhepmc.open(hepmc_file) as fh:
        events = list(fh)
    assert [e.event_number for e in events] == list(range(6))
    for event in events:
        assert event.momentum_unit == pyhepmc.Units.GEV and event.length_unit == pyhepmc.Units.MM
        status = np.array([p.status for p in event.particles])
        pid = np.array([p.pid for p in event.particles])
        energy = np.array([p.momentum.e for p in event.particles])
        # ISR photons are final-state particles (generate/processes.py): the final state carries exactly sqrt(s).
        np.testing.assert_allclose(energy[status == 1].sum(), 380.0, rtol=1e-9)
        assert sorted(p.pid for p in event.beams) == [-11, 11]
        assert all(p.status == 4 for p in event.beams)
        assert 6 in np.abs(pid) and 24 in np.abs(pid)  # tops and Ws in the history
        assert np.all(pid != 0) and np.all(pid != 90)
        final = pid[status == 1]
        # With the cards' decay cylinder, a strange hadron that would decay beyond r = 2.25 m or |z| = 2.5 m
        # stays stable in the generator (the detector simulation decays or absorbs it).
        long_lived = [310, 3122, 3112, 3222, 3312, 3322, 3334]
        assert np.isin(np.abs(final), [11, 12, 13, 14, 16, 22, 130, 211, 321, 2112, 2212, *long_lived]).all()
        # The graph is joined: only the beams lack a production vertex; final particles have no end vertex.
        assert all(
            p.production_vertex is not None and p.production_vertex.id < 0 for p in event.particles if p.status != 4
        )
        assert all(p.end_vertex is None for p in event.particles if p.status == 1)
        assert all(p.end_vertex is not None for p in event.particles if p.status == 2)


def test_hepmc2_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.hepmc", tmp_path / "b.hepmc", tmp_path / "c.hepmc"
    for path, seed in ((a, 5), (b, 5), (c, 6)):
        write_hepmc2(path, process="ee_qq", sqrt_s=380.0, n_events=4, seed=seed)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.hepmc", "b.hepmc", "c.hepmc"]


def test_hepmc2_bad_input_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_events must be an integer >= 1"):
        write_hepmc2(tmp_path / "x.hepmc", process="ee_qq", sqrt_s=380.0, n_events=0, seed=1)
    with pytest.raises(ValueError, match="unknown process 'ee_nonsense'"):
        write_hepmc2(tmp_path / "x.hepmc", process="ee_nonsense", sqrt_s=380.0, n_events=2, seed=1)
    assert list(tmp_path.iterdir()) == []


def test_mother_and_status_conventions() -> None:
    m1 = np.array([0, 0, 3, 5, 7, 4])
    m2 = np.array([0, 0, 0, 5, 9, 2])
    assert mother_lists(m1, m2) == [(), (), (3,), (5,), (7, 8, 9), (2, 4)]
    pythia = np.array([-12, -22, -62, 83, -91, -71])
    has_daughters = np.array([True, True, True, False, True, True])
    assert hepmc_status(pythia, has_daughters).tolist() == [4, 22, 62, 1, 2, 71]


# ---------------------------------------------------------------- delphes


def test_delphes_command_line() -> None:
    commands = delphes_commands(card=Path("/c/card.tcl"), output=Path("/w/out.root"), hepmc=Path("/w/in.hepmc"))
    assert commands == [["DelphesHepMC2", "/c/card.tcl", "/w/out.root", "/w/in.hepmc"]]


def test_delphes_options() -> None:
    assert delphes_options(None).card == DEFAULT_DELPHES_CARD == "delphes_card_CLICdet_Stage1.tcl"
    assert delphes_options({"card": "my.tcl"}).card == "my.tcl"
    with pytest.raises(ConfigError, match=r"^samples\.s\.delphes: unknown keys \['cards'\]"):
        delphes_options({"cards": "x"})
    with pytest.raises(ConfigError, match=r"^samples\.s\.delphes\.card: must be a path"):
        delphes_options({"card": ""})


def test_card_is_found_in_the_delphes_installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DELPHES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    exe = make_executable(tmp_path / "prefix" / "bin", "DelphesHepMC2", "")
    card = tmp_path / "prefix" / "cards" / DEFAULT_DELPHES_CARD
    card.parent.mkdir()
    card.write_text("set ExecutionPath {}\n")
    assert resolve_card(DEFAULT_DELPHES_CARD, executable=str(exe)) == card.resolve()
    assert resolve_card(f"cards/{DEFAULT_DELPHES_CARD}", executable=str(exe)) == card.resolve()
    with pytest.raises(ValueError, match="Delphes card 'nope.tcl' not found; tried: nope.tcl, "):
        resolve_card("nope.tcl", executable=str(exe))


def test_delphes_check_fails_at_once_naming_the_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    only_on_path(monkeypatch, tmp_path / "empty")
    with pytest.raises(BackendEnvironmentError,
                       match="'DelphesHepMC2', which is not in .*, on PATH.*make delphes.*envs/delphes.yaml"):
        check_delphes_environment()
    exe = make_executable(tmp_path / "bin", "DelphesHepMC2", "")
    only_on_path(monkeypatch, tmp_path / "bin")
    assert check_delphes_environment() == str(exe)


@pytest.fixture
def fake_delphes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake DelphesHepMC2 on PATH and a card; returns the card."""
    make_executable(tmp_path / "bin", "DelphesHepMC2", FAKE_DELPHES)
    only_on_path(monkeypatch, tmp_path / "bin")
    card = tmp_path / "card.tcl"
    card.write_text("set ExecutionPath {}\n")
    return card


def test_delphes_runner_publishes_the_tool_output(tmp_path: Path, fake_delphes: Path) -> None:
    import uproot

    out = tmp_path / "sim" / "0.root"
    info = run_external_backend(
        "delphes", process="ee_qq", sqrt_s=380.0, n_events=4, seed=3, output=out, options={"card": str(fake_delphes)}
    )
    with uproot.open(out) as fh:
        assert fh["Delphes"].num_entries == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["0.root"]  # no scratch left behind
    assert Path(info["commands"][0][0]).name == "DelphesHepMC2"
    # Delphes is given a wrapper card that sources the sample's card unchanged and sets the shard's seed.
    assert info["delphes"]["card"] == str(fake_delphes.resolve())
    assert Path(info["commands"][0][1]).name == "colliderflow_shard.tcl"
    assert info["delphes"]["wrapper_card"].splitlines()[1:] == ["source {card.tcl}", "set RandomSeed 4"]
    assert "Random:seed = 3" in info["generator"]["settings"]


def test_delphes_runner_takes_a_relative_output(
    tmp_path: Path, fake_delphes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the workflow gives it (results/...): the tool runs in the scratch folder, so its paths must be absolute."""
    monkeypatch.chdir(tmp_path)
    info = run_external_backend("delphes", process="ee_qq", sqrt_s=380.0, n_events=2, seed=3,
                                output=Path("sim/0.root"), options={"card": str(fake_delphes)})  # fmt: skip
    assert (tmp_path / "sim" / "0.root").is_file()
    assert all(Path(arg).is_absolute() for arg in info["commands"][0])


def test_delphes_runner_failure_leaves_nothing_and_names_the_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    make_executable(tmp_path / "bin", "DelphesHepMC2", "import sys\nprint('** ERROR: bad card')\nsys.exit(1)\n")
    only_on_path(monkeypatch, tmp_path / "bin")
    card = tmp_path / "card.tcl"
    card.write_text("set ExecutionPath {}\n")
    out = tmp_path / "sim" / "0.root"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    with pytest.raises(BackendCommandError, match=r"exit code 1: \S*DelphesHepMC2 \S*colliderflow_shard.tcl") as err:
        run_external_backend("delphes", process="ee_qq", sqrt_s=380.0, n_events=2, seed=3, output=out,
                             options={"card": str(card)})  # fmt: skip
    assert "** ERROR: bad card" in str(err.value)
    assert out.read_bytes() == b"previous"  # the old output survives, no partial file replaces it
    assert sorted(p.name for p in out.parent.iterdir()) == ["0.root"]
    assert "** ERROR: bad card" in capfd.readouterr().err  # the tool's output reaches the job log


def test_delphes_runner_tool_that_writes_nothing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_executable(tmp_path / "bin", "DelphesHepMC2", "print('did nothing')\n")
    only_on_path(monkeypatch, tmp_path / "bin")
    card = tmp_path / "card.tcl"
    card.write_text("set ExecutionPath {}\n")
    out = tmp_path / "sim" / "0.root"
    with pytest.raises(ValueError, match="DelphesHepMC2 reported success but wrote no output"):
        run_external_backend("delphes", process="ee_qq", sqrt_s=380.0, n_events=2, seed=3, output=out,
                             options={"card": str(card)})  # fmt: skip
    assert list(out.parent.iterdir()) == []


def test_generate_shard_with_delphes_writes_output_and_provenance(tmp_path: Path, fake_delphes: Path) -> None:
    from colliderflow.generate.run import generate_shard

    out, prov = tmp_path / "0.root", tmp_path / "0.json"
    stats = generate_shard(sample="qq", process="ee_qq", backend="delphes", shard=0, n_events=3, seed=9,
                           params=dict(PARAMS), output=out, provenance=prov,
                           backend_options={"card": str(fake_delphes)})  # fmt: skip
    assert stats["events"] == 3 and out.is_file()
    record = json.loads(prov.read_text())
    assert record["backend"] == "delphes" and record["backend_options"] == {"card": str(fake_delphes)}
    assert Path(record["commands"][0][0]).name == "DelphesHepMC2"
    # Delphes reads the events of the same generator, with the CLIC beams of the other backends.
    assert set(beam_settings(380.0)) <= set(json.dumps(record).split('"'))


def test_cli_delphes_without_the_tool_is_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    only_on_path(monkeypatch, tmp_path / "empty")
    out = tmp_path / "y.root"
    argv = ["generate", "--sample", "qq", "--process", "ee_qq", "--backend", "delphes", "--shard", "0",
            "--n-events", "2", "--seed", "1", "--params", json.dumps(PARAMS), "-o", str(out)]  # fmt: skip
    assert main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0] and "DelphesHepMC2" in errors[0]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- key4hep

K4 = {"steering_file": "/k/clicConfig/clic_steer.py", "reco_options": "/k/clicConfig/clicRec_e4h_input.py"}


def test_key4hep_commands_with_cvmfs() -> None:
    options = key4hep_options({**K4, "release": "2025-05-29"})
    commands = key4hep_commands(options, hepmc=Path("/w/events.hepmc"), sim=Path("/w/sim.edm4hep.root"),
                                reco=Path("/w/reco.edm4hep.root"), n_events=100, seed=7)  # fmt: skip
    setup = "set -e; source /cvmfs/sw.hsf.org/key4hep/setup.sh -r 2025-05-29 && "
    assert commands == [
        ["bash", "-c", setup + 'ddsim --compactFile "$K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml"'
         " --steeringFile /k/clicConfig/clic_steer.py --inputFiles /w/events.hepmc"
         " --outputFile /w/sim.edm4hep.root --numberOfEvents 100 --random.seed 7"],
        ["bash", "-c", setup + "cd /k/clicConfig && k4run /k/clicConfig/clicRec_e4h_input.py"
         " --gaudi-input /w/sim.edm4hep.root --gaudi-output /w/reco.edm4hep.root --num-events -1"],
    ]  # fmt: skip


def test_key4hep_commands_in_a_container_quote_paths() -> None:
    options = key4hep_options({**K4, "container": "docker://example/key4hep:1", "setup_script": None,
                                     "compact_file": "/geo/my detector.xml"})  # fmt: skip
    commands = key4hep_commands(options, hepmc=Path("/w d/events.hepmc"), sim=Path("/w d/sim.root"),
                                reco=Path("/w d/reco.root"), n_events=5, seed=1)  # fmt: skip
    prefix = [
        "apptainer",
        "exec",
        "--bind",
        "/w d",
        "--bind",
        "/k/clicConfig",
        "docker://example/key4hep:1",
        "bash",
        "-c",
    ]
    assert [c[: len(prefix)] for c in commands] == [prefix, prefix]
    assert commands[0][-1].startswith('set -e; ddsim --compactFile "/geo/my detector.xml" ')
    assert "--inputFiles '/w d/events.hepmc'" in commands[0][-1]


def test_key4hep_options_errors() -> None:
    with pytest.raises(ConfigError, match=r"^samples\.s\.key4hep: missing key\(s\) steering_file, reco_options"):
        key4hep_options(None)
    with pytest.raises(ConfigError, match=r"^samples\.s\.key4hep: unknown keys \['image'\]"):
        key4hep_options({**K4, "image": "x"})
    with pytest.raises(ConfigError, match=r"^samples\.s\.key4hep\.compact_file: must be a non-empty string"):
        key4hep_options({**K4, "compact_file": None})
    with pytest.raises(ConfigError, match=r"^samples\.s\.key4hep\.steering_file: must be a non-empty string"):
        key4hep_options({**K4, "steering_file": ""})
    assert key4hep_options({**K4, "container": None}).container is None


def test_pythia_card_holds_the_generator_settings() -> None:
    card = pythia_card(["Beams:eCM = 380.0", "Random:seed = 4"], n_events=10)
    assert card.splitlines()[1:] == ["Main:numberOfEvents = 10", "Beams:eCM = 380.0", "Random:seed = 4"]


def test_key4hep_checks_name_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steer, reco = tmp_path / "clic_steer.py", tmp_path / "clicRec_e4h_input.py"
    files = {"steering_file": str(steer), "reco_options": str(reco)}
    only_on_path(monkeypatch, tmp_path / "empty")
    with pytest.raises(BackendEnvironmentError, match="setup script '/nowhere/setup.sh', which does not exist"):
        check_key4hep_environment(Key4hepOptions(**files, setup_script="/nowhere/setup.sh"))
    with pytest.raises(BackendEnvironmentError, match="'apptainer', which is not on PATH"):
        check_key4hep_environment(Key4hepOptions(**files, container="docker://x"))
    with pytest.raises(BackendEnvironmentError, match="'ddsim', which is not on PATH"):
        check_key4hep_environment(Key4hepOptions(**files, setup_script=None))
    for tool in ("ddsim", "k4run"):
        make_executable(tmp_path / "bin", tool, "")
    only_on_path(monkeypatch, tmp_path / "bin")
    with pytest.raises(BackendEnvironmentError, match="ddsim steering file .*clic_steer.py"):
        check_key4hep_environment(Key4hepOptions(**files, setup_script=None))
    steer.write_text("")
    reco.write_text("")
    check_key4hep_environment(Key4hepOptions(**files, setup_script=None))


# Fakes for ddsim and k4run: each reads its input and writes its output where the real tool would.
FAKE_DDSIM = """
import sys
args = sys.argv[1:]
get = lambda k: args[args.index(k) + 1]
assert open(get("--inputFiles")).readline().startswith("HepMC::Version")
open(get("--outputFile"), "w").write("sim " + get("--numberOfEvents") + " " + get("--random.seed"))
"""
FAKE_K4RUN = """
import os, sys
args = sys.argv[1:]
get = lambda k: args[args.index(k) + 1]
assert os.getcwd() == os.path.dirname(args[0]), os.getcwd()
open(get("--gaudi-output"), "w").write("reco of " + open(get("--gaudi-input")).read())
"""


def test_key4hep_runner_plumbing_with_fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_executable(tmp_path / "bin", "ddsim", FAKE_DDSIM)
    make_executable(tmp_path / "bin", "k4run", FAKE_K4RUN)
    only_on_path(monkeypatch, tmp_path / "bin")
    config = tmp_path / "clicConfig"
    config.mkdir()
    (config / "clic_steer.py").write_text("")
    (config / "clicRec_e4h_input.py").write_text("")
    options = {"setup_script": None, "steering_file": str(config / "clic_steer.py"),
               "reco_options": str(config / "clicRec_e4h_input.py"), "compact_file": "/geo/CLIC_o3_v14.xml"}  # fmt: skip
    out = tmp_path / "sim" / "0.root"
    info = run_external_backend("key4hep", process="ee_qq", sqrt_s=380.0, n_events=3, seed=8, output=out,
                                options=options)  # fmt: skip
    assert out.read_text() == "reco of sim 3 8"
    assert sorted(p.name for p in out.parent.iterdir()) == ["0.root"]
    assert [c[-1].split()[2] for c in info["commands"]] == ["ddsim", "cd"]
    # The card given to Key4HEP is the generator's settings: the CLIC beams of the other backends.
    card = pythia_card(info["generator"]["settings"], n_events=3).splitlines()
    assert set(beam_settings(380.0)) <= set(card)

    # A failing reconstruction: no output, the error names the step and its exit code.
    make_executable(tmp_path / "bin", "k4run", "import sys\nsys.exit(3)\n")
    with pytest.raises(BackendCommandError, match="exit code 3: bash -c .*k4run"):
        run_external_backend("key4hep", process="ee_qq", sqrt_s=380.0, n_events=2, seed=8,
                             output=tmp_path / "sim" / "1.root", options=options)  # fmt: skip
    assert sorted(p.name for p in out.parent.iterdir()) == ["0.root"]

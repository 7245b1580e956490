"""The pp processes at 14 TeV: beams, options, and the resonances (with their decays) in the event record."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from colliderflow.generate.processes import (
    PP_PROCESSES,
    PROCESSES,
    beam_settings,
    process_settings,
    run_settings,
)
from colliderflow.generate.pythia import PythiaGenerator

SQRT_S = 14000.0
QUARKS = {1, 2, 3, 4, 5}


def decays(process: str, n_events: int = 3) -> list[dict[int, list[list[int]]]]:
    """Per event: |PDG id| of each resonance last copy → the sorted |ids| of its daughters (one list per copy)."""
    gen, hard = PythiaGenerator(process, sqrt_s=SQRT_S, seed=21, options={"mpi": False}).generate_with_hard(n_events)
    assert gen.n_events == n_events and np.all(gen.counts > 10)
    c = hard.columns
    offsets = np.concatenate([[0], np.cumsum(hard.counts)])
    out = []
    for a, b in itertools.pairwise(offsets):  # a handful of events, not particles
        pid, d1, d2 = c["hard_pdgid"][a:b], c["hard_d1"][a:b], c["hard_d2"][a:b]
        assert np.all((d1 >= -1) & (d1 < b - a)) and np.all((d2 >= -1) & (d2 < b - a))
        event: dict[int, list[list[int]]] = {}
        for i in np.flatnonzero(np.isin(np.abs(pid), [6, 23, 24, 25]) & (d1 >= 0)):
            kids = [d1[i]] if d2[i] < 0 else list(range(d1[i], d2[i] + 1)) if d2[i] > d1[i] else [d1[i], d2[i]]
            if pid[i] not in pid[kids]:  # the last copy: it decays
                event.setdefault(abs(int(pid[i])), []).append(sorted(abs(int(p)) for p in pid[kids]))
        out.append(event)
    return out


@pytest.mark.parametrize("process", sorted(PP_PROCESSES))
def test_each_pp_process_makes_its_resonances(process: str) -> None:
    for event in decays(process):
        if process == "pp_ttbar_had":
            assert event[6] == [[5, 24], [5, 24]]
            assert len(event[24]) == 2 and all(len(d) == 2 and set(d) <= QUARKS for d in event[24])
        elif process == "pp_wz_qq":
            assert len(event[23]) == 1 and len(event[24]) == 1
            assert all(set(d) <= QUARKS for d in event[23] + event[24])
        elif process.startswith("pp_h_"):
            want = {"pp_h_bb": [5, 5], "pp_h_cc": [4, 4], "pp_h_gg": [21, 21]}[process]
            assert event[25] == [want]
            assert len(event[23]) == 1 and set(event[23][0]) <= {12, 14, 16}
        elif process in ("pp_qcd", "pp_minbias"):  # no resonance: QCD, and the minimum bias of pile-up files
            assert not event
        else:
            pytest.fail(f"no check for {process}")


def test_pp_beams_and_options_reach_pythia() -> None:
    settings = run_settings("pp_qcd", SQRT_S, {"pthat_min": 650, "mpi": False})
    assert settings[:3] == ("Beams:idA = 2212", "Beams:idB = 2212", "Beams:eCM = 14000.0")
    assert "PhaseSpace:pTHatMin = 650.0" in settings and "PartonLevel:MPI = off" in settings
    default = run_settings("pp_ttbar_had", SQRT_S)
    assert "PartonLevel:MPI = on" in default and "PhaseSpace:pTHatMin = 400.0" in default


def test_ee_processes_keep_their_settings() -> None:
    assert set(PROCESSES) == {"ee_ttbar", "ee_qq", "ee_ww_fullhad"}
    for process in PROCESSES:
        assert run_settings(process, 380.0) == (*beam_settings(380.0), *process_settings(process))
    # The CLIC cards' beams (key4hep-sim clic/pythia/p8_ee_*_ecm380.cmd): ISR, beam spot, decay cylinder.
    assert beam_settings(380.0) == (
        "Beams:idA = 11", "Beams:idB = -11", "Beams:eCM = 380.0", "PDF:lepton = on", "PartonLevel:ISR = on",
        "PartonLevel:FSR = on", "Beams:allowVertexSpread = on", "Beams:sigmaVertexX = 0.0273",
        "Beams:sigmaVertexY = 4.88e-05", "Beams:sigmaVertexZ = 1.33", "ParticleDecays:limitCylinder = on",
        "ParticleDecays:xyMax = 2250.0", "ParticleDecays:zMax = 2500.0")


@pytest.mark.parametrize(
    ("process", "options", "message"),
    [
        ("ee_qq", {"mpi": False}, "takes no options"),
        ("pp_qcd", {"pthatmin": 100}, "unknown option"),
        ("pp_qcd", {"pthat_min": -1}, "pthat_min must be"),
        ("pp_qcd", {"mpi": "no"}, "mpi must be"),
    ],
)
def test_bad_options_raise(process: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PythiaGenerator(process, sqrt_s=SQRT_S, seed=1, options=options)

"""Pythia 8 events as a HepMC2 text file: the input of Delphes (DelphesHepMC2) and of ddsim.

The events come from the project's own `PythiaGenerator`, with the same process, beam and seed settings
as the builtin backend, so the three backends start from the same physics. The whole Pythia record is
kept (beams, hard process, shower, hadronisation, decays), linked through production and end vertices,
because the full simulation decides from the history and the status codes what Geant4 must propagate.

Status codes follow the HepMC convention that detector simulations read: 1 for final-state particles,
2 for particles that decayed in the generator (hadrons, taus, ...), 4 for the beams, and Pythia's own
|status| (11-89, HepMC's generator-specific range) for documentation entries of the hard process,
shower and hadronisation. Units are GeV and mm; times are c·t in mm, as Pythia stores them.

HepMC2 (not HepMC3) is written on purpose: DelphesHepMC2 reads it, ddsim reads it, and pyhepmc's
HepMC2 writer round-trips every event.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import awkward as ak
import numpy as np

from colliderflow.generate.pythia import PythiaGenerator
from colliderflow.io.atomic import atomic_path

# HepMC status codes (see the module doc).
STATUS_FINAL: Final = 1
STATUS_DECAYED: Final = 2
STATUS_BEAM: Final = 4
# Pythia's |status| from which a particle was produced in (or after) hadronisation and decays.
_PYTHIA_HADRON_LEVEL: Final = 81
_PYTHIA_BEAM: Final = 12
# How many events are pulled from Pythia at a time (bounds memory, not part of the output).
_EVENTS_PER_BATCH: Final = 200


def _import_pyhepmc() -> Any:
    try:
        import pyhepmc
    except ImportError as exc:  # a declared dependency; this is for broken installs
        raise ValueError("writing HepMC needs the pyhepmc package (pip install pyhepmc==2.16.1)") from exc
    return pyhepmc


def hepmc_status(pythia_status: np.ndarray, has_daughters: np.ndarray) -> np.ndarray:
    """HepMC status codes from Pythia's signed status codes (see the module doc)."""
    status_abs = np.abs(pythia_status)
    out = status_abs.copy()
    out[(status_abs >= _PYTHIA_HADRON_LEVEL) & has_daughters] = STATUS_DECAYED
    out[status_abs == _PYTHIA_BEAM] = STATUS_BEAM
    out[pythia_status > 0] = STATUS_FINAL
    return out.astype(np.int32)


def mother_lists(mother1: np.ndarray, mother2: np.ndarray) -> list[tuple[int, ...]]:
    """Each particle's mothers as record indices, decoding Pythia's (mother1, mother2) convention.

    Pythia stores one mother as (m, 0) or (m, m), a range as (m1 < m2), and two unrelated mothers
    (e.g. the two beams of a hard process, or a parton pair joined in a string) as (m1 > m2 > 0).
    """
    out: list[tuple[int, ...]] = []
    for m1, m2 in zip(mother1.tolist(), mother2.tolist(), strict=True):
        if m1 <= 0 and m2 <= 0:
            out.append(())
        elif m2 <= 0 or m2 == m1:
            out.append((m1,))
        elif m2 > m1:
            out.append(tuple(range(m1, m2 + 1)))
        else:
            out.append((m2, m1))
    return out


def build_event(pyhepmc: Any, record: dict[str, np.ndarray], *, event_number: int, weight: float) -> Any:
    """One pyhepmc.GenEvent from one Pythia record given as flat numpy columns.

    Entry 0 of a Pythia record is the whole system (id 90), not a particle, and is dropped. Particles
    are produced in the end vertex of their first mother (made at the production point of the first
    particle that needs it); their other mothers end there too unless they already end elsewhere, since a
    HepMC particle has one end vertex. This is how Pythia's own HepMC interface joins its record.
    """
    event = pyhepmc.GenEvent(pyhepmc.Units.GEV, pyhepmc.Units.MM)
    event.event_number = event_number
    event.weights = [float(weight)]
    n = len(record["id"])
    has_daughters = (record["daughter1"] > 0) | (record["daughter2"] > 0)
    status = hepmc_status(record["status"], has_daughters)
    particles: list[Any] = [None] * n
    for i in range(1, n):
        momentum = pyhepmc.FourVector(record["px"][i], record["py"][i], record["pz"][i], record["e"][i])
        particle = pyhepmc.GenParticle(momentum, int(record["id"][i]), int(status[i]))
        particle.generated_mass = float(record["m"][i])
        particles[i] = particle

    mothers = mother_lists(record["mother1"], record["mother2"])
    end_vertex: list[Any] = [None] * n
    beams = []
    for i in range(1, n):
        own = [m for m in mothers[i] if 0 < m < n]
        if not own:
            if status[i] == STATUS_BEAM:
                beams.append(particles[i])
            else:
                event.add_particle(particles[i])
            continue
        vertex = end_vertex[own[0]]
        if vertex is None:
            position = pyhepmc.FourVector(record["vx"][i], record["vy"][i], record["vz"][i], record["vt"][i])
            vertex = pyhepmc.GenVertex(position)
            event.add_vertex(vertex)
        for m in own:
            if end_vertex[m] is None:
                vertex.add_particle_in(particles[m])
                end_vertex[m] = vertex
        vertex.add_particle_out(particles[i])
    if len(beams) == 2:  # the two colliding beams
        event.set_beam_particles(*beams)
    return event


def _flat_records(records: ak.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Event boundaries and the particle columns of a batch of Pythia records, as flat numpy arrays."""
    prt = records["prt"]
    counts = ak.to_numpy(ak.num(prt, axis=1)).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    flat = ak.flatten(prt, axis=1)
    vprod = flat["vProd"]
    columns = {
        name: ak.to_numpy(flat[name]).astype(np.int64)
        for name in ("id", "status", "mother1", "mother2", "daughter1", "daughter2")
    }
    for src, dst in (("px", "px"), ("py", "py"), ("pz", "pz"), ("e", "e")):
        columns[dst] = ak.to_numpy(flat["p"][src]).astype(np.float64)
        columns[f"v{'t' if src == 'e' else src[1]}"] = ak.to_numpy(ak.fill_none(vprod[src], 0.0)).astype(np.float64)
    columns["m"] = ak.to_numpy(flat["m"]).astype(np.float64)
    return bounds, columns


def _weights(records: ak.Array) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.fill_none(ak.firsts(records["info"]["weights"], axis=1), 1.0)), dtype=np.float64)


def write_hepmc2(
    output: str | Path, *, process: str, sqrt_s: float, n_events: int, seed: int,
    process_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Generate `n_events` Pythia events of `process` and write them as HepMC2 text to `output`.

    The file appears only when complete (atomic rename); the same arguments give a byte-identical file.
    Returns the generator settings and cross-section, for provenance.
    """
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ValueError(f"n_events must be an integer >= 1, got {n_events!r}")
    pyhepmc = _import_pyhepmc()
    generator = PythiaGenerator(process, sqrt_s=sqrt_s, seed=int(seed), options=process_options)
    output = Path(output)
    with atomic_path(output) as tmp:
        os.unlink(tmp)  # the writer creates the file itself
        with pyhepmc.open(tmp, "w", format="HepMC2") as writer:
            for first in range(0, int(n_events), _EVENTS_PER_BATCH):
                records = generator.next_records(min(_EVENTS_PER_BATCH, int(n_events) - first))
                bounds, columns = _flat_records(records)
                weights = _weights(records)
                for k in range(len(records)):
                    one = {name: col[bounds[k] : bounds[k + 1]] for name, col in columns.items()}
                    writer.write(build_event(pyhepmc, one, event_number=first + k, weight=weights[k]))
    return {"name": "pythia8", "settings": list(generator.settings), "sigma_gen_pb": generator.cross_section_pb()}

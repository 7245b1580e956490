"""The generate stage: one shard of one sample, from Pythia through the detector to a ROOT file.

Events are made and simulated in fixed-size chunks, which bounds memory for large shards while keeping
the detector vectorised over thousands of particles at a time. The chunk size is part of what a seed
reproduces (the detector draws its random numbers chunk by chunk), so it is a constant, not an option.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from colliderflow.generate.backends import EXTERNAL_BACKENDS, run_external_backend
from colliderflow.generate.detector import DetectorResponse, detector_rng, simulate_detector
from colliderflow.generate.geometry import detector_config
from colliderflow.generate.particles import GenParticles
from colliderflow.generate.processes import is_pp
from colliderflow.generate.pythia import PYTHIA_SEED_MAX, PYTHIA_SEED_MIN, PythiaGenerator
from colliderflow.generate.records import Collection
from colliderflow.generate.rootio import SimTreeWriter
from colliderflow.io.atomic import atomic_path
from colliderflow.params import GenerateParams, stage_params
from colliderflow.provenance import provenance_record, write_provenance
from colliderflow.schema import HARD_BRANCHES, SIM_ALL_BRANCHES

log = logging.getLogger(__name__)

BACKENDS = ("builtin", *EXTERNAL_BACKENDS)
EVENTS_PER_CHUNK = 1000
# Status written for every truth particle: the builtin backend stores only the final state.
FINAL_STATE_STATUS = 1

def _check_job(*, sample: str, backend: str, shard: int, n_events: int, seed: int) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if not isinstance(sample, str) or not sample:
        raise ValueError(f"sample must be a non-empty name, got {sample!r}")
    for name, value in (("shard", shard), ("n_events", n_events), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")  # noqa: TRY004
    if shard < 0:
        raise ValueError(f"shard must be >= 0, got {shard}")
    if n_events < 1:
        raise ValueError(f"n_events must be >= 1, got {n_events}")
    if not PYTHIA_SEED_MIN <= seed <= PYTHIA_SEED_MAX:
        raise ValueError(f"seed {seed} is outside Pythia's range [{PYTHIA_SEED_MIN}, {PYTHIA_SEED_MAX}]")


def gen_collection(gen: GenParticles) -> Collection:
    """The truth particles as the SIM_GEN_BRANCHES columns."""
    f32 = np.float32
    columns = {
        "gen_pdgid": gen.pdgid.astype(np.int32),
        "gen_charge": gen.charge.astype(f32),
        "gen_px": gen.px.astype(f32),
        "gen_py": gen.py.astype(f32),
        "gen_pz": gen.pz.astype(f32),
        "gen_energy": gen.energy.astype(f32),
        "gen_mass": gen.mass.astype(f32),
        "gen_status": np.full(gen.n_particles, FINAL_STATE_STATUS, dtype=np.int32),
        "gen_vx": gen.vx.astype(f32),
        "gen_vy": gen.vy.astype(f32),
        "gen_vz": gen.vz.astype(f32),
    }
    return Collection(counts=gen.counts, columns=columns)


def event_columns(gen: GenParticles, *, first_event: int) -> dict[str, np.ndarray]:
    """The per-event (non-jagged) branches of one batch."""
    return {
        "event_number": np.arange(first_event, first_event + gen.n_events, dtype=np.uint64),
        "event_weight": gen.event_weight.astype(np.float32),
    }


def collections(gen: GenParticles, response: DetectorResponse) -> list[Collection]:
    """The jagged collections of one batch, in schema order."""
    return [gen_collection(gen), response.tracks, response.clusters, response.calolinks]


def _check_schema(columns: dict[str, np.ndarray], batch: list[Collection], *, with_hard: bool) -> None:
    branches = tuple(columns) + tuple(name for c in batch for name in c.columns)
    expected = SIM_ALL_BRANCHES + (HARD_BRANCHES if with_hard else ())
    if branches != expected:
        raise AssertionError(f"simulation branches {branches} differ from {expected}")


def generate_shard(
    *,
    sample: str,
    process: str,
    backend: str,
    shard: int,
    n_events: int,
    seed: int,
    params: dict[str, Any],
    output: Path,
    provenance: Path | None,
    backend_options: dict[str, Any] | None = None,
    process_options: dict[str, Any] | None = None,
    pileup_file: Path | None = None,
) -> dict[str, Any]:
    """Generate and simulate `n_events` events of `process` into the ROOT file `output`.

    The file appears only when complete (atomic rename); the provenance record, if asked for, is written
    after it. The same arguments always give byte-identical files with the builtin backend. `delphes`
    and `key4hep` hand the same Pythia events to the external simulation (`colliderflow.generate.backends`,
    configured by `backend_options`, the sample's `delphes:` or `key4hep:` mapping). `process_options`
    are the sample's `options` of a pp process (p̂T threshold, MPI; `processes.pp_option_settings`).
    `pileup_file` is the Delphes pile-up file of a delphes card that merges pile-up (`colliderflow pileup`).

    pp files also carry the `hard_*` truth record (resonances, their decay chains and the quarks): jet
    labels need it and the final state alone does not hold it. e+e- files keep exactly the SIM_* branches.
    Returns small run statistics.
    """
    _check_job(sample=sample, backend=backend, shard=shard, n_events=n_events, seed=seed)
    checked = stage_params(GenerateParams, params, where="generate")  # the dry run ran the same check
    sqrt_s, detector = float(checked.sqrt_s), detector_config(checked.detector)
    output = Path(output)
    if backend in EXTERNAL_BACKENDS:
        return _generate_external(
            sample=sample, process=process, backend=backend, shard=shard, n_events=n_events, seed=seed,
            params=params, sqrt_s=sqrt_s, output=output, provenance=provenance, backend_options=backend_options,
            process_options=process_options, pileup_file=pileup_file,
        )  # fmt: skip
    if pileup_file is not None:
        raise ValueError("the builtin backend takes no pile-up file")
    if backend_options:
        raise ValueError(f"the builtin backend takes no backend options, got {sorted(backend_options)}")
    start = time.perf_counter()
    generator = PythiaGenerator(process, sqrt_s=sqrt_s, seed=int(seed), options=process_options)
    with_hard = is_pp(process)
    rng = detector_rng(int(seed))
    identity = {
        "sample": sample,
        "process": process,
        "backend": backend,
        "shard": shard,
        "n_events": n_events,
        "seed": seed,
        "params": params,
        **({"process_options": process_options} if process_options else {}),
    }
    totals = {"gen": 0, "tracks": 0, "clusters": 0}
    with atomic_path(output) as tmp, SimTreeWriter(tmp, identity=identity) as writer:
        for first in range(0, n_events, EVENTS_PER_CHUNK):
            size = min(EVENTS_PER_CHUNK, n_events - first)
            gen, hard = generator.generate_with_hard(size) if with_hard else (generator.generate(size), None)
            response = simulate_detector(gen, detector, rng)
            columns, batch = event_columns(gen, first_event=first), collections(gen, response)
            if hard is not None:
                batch.append(hard)
            _check_schema(columns, batch, with_hard=with_hard)
            writer.append(columns, batch)
            totals["gen"] += gen.n_particles
            totals["tracks"] += response.tracks.n_rows
            totals["clusters"] += response.clusters.n_rows
    wall = time.perf_counter() - start

    if provenance is not None:
        record = provenance_record(
            stage="generate",
            config=params,
            seeds={"generate": int(seed)},
            extra={
                "sample": sample,
                "process": process,
                "backend": backend,
                "shard": int(shard),
                "n_events": int(n_events),
                "process_options": process_options or {},
                "hard_record": with_hard,
                "generator": {
                    "name": "pythia8",
                    "settings": list(generator.settings),
                    "sigma_gen_pb": generator.cross_section_pb(),
                },
                "detector": detector.name,
                "events_per_chunk": EVENTS_PER_CHUNK,
            },
        )
        write_provenance(provenance, record)

    stats = {
        "events": int(n_events),
        "wall_seconds": wall,
        "events_per_second": n_events / wall if wall > 0 else float("inf"),
        "gen_particles_per_event": totals["gen"] / n_events,
        "tracks_per_event": totals["tracks"] / n_events,
        "clusters_per_event": totals["clusters"] / n_events,
    }
    log.info(
        "generate %s shard %d: %d events in %.1f s (%.0f ev/s)",
        sample,
        shard,
        n_events,
        wall,
        stats["events_per_second"],
    )
    return stats


def _generate_external(
    *,
    sample: str,
    process: str,
    backend: str,
    shard: int,
    n_events: int,
    seed: int,
    params: dict[str, Any],
    sqrt_s: float,
    output: Path,
    provenance: Path | None,
    backend_options: dict[str, Any] | None,
    process_options: dict[str, Any] | None,
    pileup_file: Path | None = None,
) -> dict[str, Any]:
    """One shard through an external backend, with the same provenance record as the builtin one."""
    start = time.perf_counter()
    info = run_external_backend(
        backend, process=process, sqrt_s=sqrt_s, n_events=int(n_events), seed=int(seed), output=output,
        options=backend_options, process_options=process_options, pileup_file=pileup_file,
        where=f"samples.{sample}.{backend}",
    )  # fmt: skip
    wall = time.perf_counter() - start
    if provenance is not None:
        extra = {
            "sample": sample,
            "process": process,
            "backend": backend,
            "shard": int(shard),
            "n_events": int(n_events),
            "backend_options": backend_options or {},
            "process_options": process_options or {},
            **info,
        }
        record = provenance_record(stage="generate", config=params, seeds={"generate": int(seed)}, extra=extra)
        write_provenance(provenance, record)
    log.info("generate %s shard %d (%s): %d events in %.1f s", sample, shard, backend, n_events, wall)
    return {
        "events": int(n_events),
        "wall_seconds": wall,
        "events_per_second": n_events / wall if wall > 0 else float("inf"),
    }

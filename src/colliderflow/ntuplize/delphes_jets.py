"""Delphes files (any card) → one JetClass-II Parquet file, with the same row builder as builtin jets.

Which jets a file gives depends on what its card writes:

* `refs` — the card writes AK8 jets of particle-flow candidates (JetClass-II's card: `JetPUPPIAK8`
  from the PUPPI-weighted `ParticleFlowCandidate`s, and `GenJetAK8`): those jets, their constituents
  resolved from the references, exactly as JetClass-II made them;
* `recluster` — any other card (the stock CMS, ATLAS, CLIC, ILD, IDEA, FCC-ee ...): anti-kT with the
  configured radius (0.8) is run with FastJet over all events at once, on the card's particle-flow
  objects — `ParticleFlowCandidate` where written (in a PUPPI card these carry the PUPPI weights),
  else EFlowTrack + EFlowPhoton + EFlowNeutralHadron — and gen jets on the stable visible `Particle`s,
  exactly as builtin jets are clustered (`ntuplize.jets.jets_from_particles` path).

`constituents: auto` (the default) picks `refs` for a file that has the jet branch, the gen-jet branch
and the candidates, `recluster` otherwise, file by file; the statistics say which each file got.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from colliderflow.io.atomic import atomic_path
from colliderflow.io.delphes_reader import PF_BRANCH, DelphesEvents, DelphesFile, required_branches
from colliderflow.jetschema import JETCLASS2_SCHEMA
from colliderflow.ntuplize.jets import (
    BuildStats,
    JetParams,
    build_tables,
    cluster_constituents,
    final_state_genjets,
    jet_params_from_section,
)
from colliderflow.provenance import provenance_record, write_provenance

CONSTITUENT_MODES: Final = ("auto", "refs", "recluster")
_DELPHES_DEFAULTS: Final[dict[str, Any]] = {
    "constituents": "auto",
    "jet_branch": "JetPUPPIAK8",
    "genjet_branch": "GenJetAK8",
    "step_size": 5000,
}


def split_delphes_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], JetParams]:
    """(the Delphes-specific keys with defaults, JetParams of the rest); ValueError naming a bad key."""
    delphes = {k: params.get(k, v) for k, v in _DELPHES_DEFAULTS.items()}
    if delphes["constituents"] not in CONSTITUENT_MODES:
        raise ValueError(f"constituents {delphes['constituents']!r} is not one of {CONSTITUENT_MODES}")
    if int(delphes["step_size"]) < 1:
        raise ValueError(f"step_size must be >= 1, got {delphes['step_size']}")
    jet_params = jet_params_from_section({k: v for k, v in params.items() if k not in _DELPHES_DEFAULTS})
    return delphes, jet_params


def _branches(mode: str, delphes: Mapping[str, Any]) -> dict[str, Any]:
    """DelphesFile arguments of a mode: refs reads the jets and needs the candidates they reference."""
    if mode == "refs":
        return {"jet_branch": delphes["jet_branch"], "genjet_branch": delphes["genjet_branch"], "particles": PF_BRANCH}
    return {"jet_branch": None, "genjet_branch": None, "particles": None}


def checked_mode(path: Path, delphes: Mapping[str, Any]) -> str:
    """`refs` or `recluster` for one file (the configured one, or for `auto` what the card wrote), after
    checking that the file has every branch that mode reads; ValueError naming the file and them."""
    mode = str(delphes["constituents"])
    if mode != "auto":
        with DelphesFile(path, **_branches(mode, delphes)):  # readable, a Delphes tree, every branch
            return mode
    with DelphesFile(path, jet_branch=None, genjet_branch=None) as handle:
        available = handle.available
    wanted = [f"{delphes['jet_branch']}.Constituents", f"{delphes['genjet_branch']}.Constituents", f"{PF_BRANCH}.PT"]
    mode = "refs" if all(name in available for name in wanted) else "recluster"
    missing = [n for n in required_branches(**_branches(mode, delphes)) if n not in available]
    if missing:
        raise ValueError(f"{path}: Delphes tree lacks branches {missing} (constituents: {mode})")
    return mode


def table_from_delphes(events: DelphesEvents, mode: str, params: JetParams) -> tuple[pa.Table, BuildStats]:
    """JetClass-II rows of one chunk: Delphes' own jets (refs) or anti-kT on its PF objects (recluster)."""
    if mode == "refs":
        return build_tables(events.pf, events.jets, events.gen, events.genjets, events.vertex, params)
    constituents = cluster_constituents(events.pf, radius=params.radius, min_pt=params.min_pt)
    gen_constituents = final_state_genjets(events.gen, params)
    return build_tables(events.pf, constituents, events.gen, gen_constituents, events.vertex, params)


def ntuplize_delphes_jets(inputs: list[Path], *, output: Path, params: dict, provenance: Path | None) -> dict[str, Any]:
    """Delphes files → one JetClass-II Parquet file (zstd), written atomically; returns the statistics.

    params: the JetParams keys plus
      constituents   "auto" (default; see the module doc), "refs" or "recluster"
      jet_branch, genjet_branch   default JetPUPPIAK8, GenJetAK8 (refs only)
      step_size      events read at a time (default 5000)
    Every input is checked (readable, Delphes tree, branches its mode needs) before anything is
    written; a bad input is a ValueError naming it, and no output file is left behind.
    """
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError(f"{output}: no input files")
    delphes, jet_params = split_delphes_params(params)
    modes = {path: checked_mode(path, delphes) for path in inputs}
    total = BuildStats()
    unresolved = 0
    particles: dict[str, str] = {}
    with (
        atomic_path(output) as tmp,
        pq.ParquetWriter(tmp, JETCLASS2_SCHEMA, compression="zstd", use_dictionary=False) as writer,
    ):
        for path in inputs:
            with DelphesFile(path, **_branches(modes[path], delphes)) as handle:
                particles[str(path)] = handle.particles
                for events in handle.iterate(int(delphes["step_size"])):
                    try:
                        table, stats = table_from_delphes(events, modes[path], jet_params)
                    except ValueError as exc:
                        raise ValueError(f"{path} (entries from {events.entry_start}): {exc}") from exc
                    total.add(stats)
                    unresolved += events.unresolved_refs
                    if table.num_rows:
                        writer.write_table(table)
    names = jet_params.labels.table
    summary: dict[str, Any] = {
        "output": str(output),
        "inputs": len(inputs),
        "events": total.events,
        "constituents": {str(p): m for p, m in modes.items()},
        "particles": particles,
        "jets_found": total.jets_found,
        "jets_selected": total.jets_selected,
        "jets_unlabelled": total.jets_unlabelled,
        "jets_written": total.jets_written,
        "jets_with_genjet": total.jets_with_genjet,
        "unresolved_refs": unresolved,
        "label_counts": {
            (names[k] if 0 <= k < len(names) else "unlabelled"): v for k, v in sorted(total.label_counts.items())
        },
    }
    if provenance is not None:
        record = provenance_record(
            stage="ntuplize_jets", config=dict(params), inputs=[str(p) for p in inputs], extra={"stats": summary}
        )
        write_provenance(provenance, record)
    return summary

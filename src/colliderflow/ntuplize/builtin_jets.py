"""Builtin simulation files → JetClass-II jet rows, with the same builder as the Delphes path.

Reconstructed particles are the rule-based particle-flow candidates (`ntuplize.baseline`) of each event:
the same objects the event-level ntuples call `ycand`, so the jet datasets and the MLPF baseline see one
reconstruction. A candidate becomes a particle with

* px, py, pz from (pT, η, φ) and the candidate energy; charge from the track curvature;
* a PDG id from its class (π±, e±, μ±, γ, K0L for neutral hadrons), which fixes the part_is* flags;
* the track's d0 and z0 (mm) for charged candidates, 0 for neutrals. The builtin detector stores no
  track covariance, so part_d0err and part_dzerr are 0. Every primary vertex is at the origin (no beam
  spot), so part_dzval is z0 itself.

Truth comes from two places. The final-state particles (gen_*) give the gen jets and genpart_*; their
production time is not stored, so genpart_t is 0. Labels need the resonances and quarks, which the
final state does not hold: they are read from the `hard_*` branches (`generate.pythia.hard_process`)
when the file has them, appended to each event's truth list with status 2 (so they never enter a gen
jet) and their daughter indices shifted accordingly. A file without `hard_*` branches has no label
truth: jet_label is −1 for every jet, no QCD label is guessed from the (hadron-only) final state, and no
jet is dropped for being unlabelled. The returned statistics say which case applied.

Everything is columnar: one pass of numpy over the candidates of all events of a file, then the
vectorised builder in `ntuplize.jets`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import awkward as ak
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot

from colliderflow.io.atomic import atomic_path
from colliderflow.io.sim_reader import detect_format, read_events
from colliderflow.jetschema import JETCLASS2_SCHEMA
from colliderflow.ntuplize.baseline import BaselineParams, baseline_candidates
from colliderflow.ntuplize.elements import cluster_features, flat, layout_of, track_features
from colliderflow.ntuplize.jets import JetParams, jet_params_from_section, jets_from_particles
from colliderflow.ntuplize.targets import (
    CLS_CHARGED_HADRON,
    CLS_ELECTRON,
    CLS_MUON,
    CLS_NEUTRAL_HADRON,
    CLS_NONE,
    CLS_PHOTON,
)
from colliderflow.params import stage_params
from colliderflow.provenance import provenance_record, write_provenance
from colliderflow.schema import HARD_BRANCHES, PF, SIM_TREE

# Keys of the params beyond JetParams: the rule-based PF thresholds and the field the tracks were made in.
_BUILTIN_DEFAULTS: Final[dict[str, Any]] = {"baseline": None, "bfield_tesla": 4.0}
# Status given to hard-record particles in the combined truth list (1 would make them gen-jet constituents).
_HARD_STATUS: Final = 2
_NEUTRAL_HADRON_PDGID: Final = 130


def _split_params(params: Mapping[str, Any]) -> tuple[BaselineParams, float, JetParams]:
    own = {k: params.get(k, v) for k, v in _BUILTIN_DEFAULTS.items()}
    baseline = stage_params(BaselineParams, own["baseline"], where="ntuplize-jets params: baseline")
    bfield = own["bfield_tesla"]
    if isinstance(bfield, bool) or not isinstance(bfield, (int, float)) or not bfield > 0:
        raise ValueError(f"bfield_tesla must be a positive number of tesla, got {bfield!r}")
    jet_params = jet_params_from_section({k: v for k, v in params.items() if k not in _BUILTIN_DEFAULTS})
    return baseline, float(bfield), jet_params


def candidate_particles(events: ak.Array, *, baseline: BaselineParams, bfield: float, source: str = "") -> ak.Array:
    """Per-event reconstructed particles (jets_from_particles records) from the rule-based PF candidates."""
    layout = layout_of(events)
    tracks = track_features(events, bfield=bfield, source=source)
    rows = baseline_candidates(tracks, cluster_features(events), layout, baseline)
    # Impact parameters of each element: the track's for track elements, 0 for clusters.
    d0 = np.zeros(layout.total)
    dz = np.zeros(layout.total)
    d0[layout.track_pos] = flat(events.track_d0)
    dz[layout.track_pos] = flat(events.track_z0)

    cls = rows[:, PF["cls_id"]].astype(np.int64)
    keep = cls != CLS_NONE
    element_event = np.repeat(np.arange(layout.n_events), layout.n_elements)
    cls, rows, d0, dz = cls[keep], rows[keep], d0[keep], dz[keep]
    charge = rows[:, PF["charge"]]
    pt, eta = rows[:, PF["pt"]], rows[:, PF["eta"]]
    sign = np.where(charge < 0, -1, 1)
    # Negative leptons carry positive PDG ids (e− = 11); positive hadrons do (π+ = 211).
    pid = np.select(
        [cls == CLS_CHARGED_HADRON, cls == CLS_ELECTRON, cls == CLS_MUON, cls == CLS_PHOTON, cls == CLS_NEUTRAL_HADRON],
        [211 * sign, -11 * sign, -13 * sign, np.full_like(sign, 22), np.full_like(sign, _NEUTRAL_HADRON_PDGID)],
        default=0,
    )
    charged = charge != 0
    counts = np.bincount(element_event[keep], minlength=layout.n_events)
    columns = {
        "px": pt * rows[:, PF["cos_phi"]],
        "py": pt * rows[:, PF["sin_phi"]],
        "pz": pt * np.sinh(eta),
        "energy": rows[:, PF["energy"]],
        "charge": charge.astype(np.int32),
        "pid": pid.astype(np.int32),
        "d0": np.where(charged, d0, 0.0),
        "dz": np.where(charged, dz, 0.0),
    }
    return ak.unflatten(ak.zip({k: ak.Array(v) for k, v in columns.items()}), counts)


def read_hard_record(path: Path, n_events: int) -> ak.Array | None:
    """The `hard_*` branches of a builtin file as per-event records, or None when the file has none.

    A file with only some of them, or with daughter/mother indices outside their event, is a ValueError
    naming the file: a half-written truth record would give wrong labels without any sign.
    """
    with uproot.open(path) as fh:
        tree = fh[SIM_TREE]
        present = [b for b in HARD_BRANCHES if b in tree]
        if not present:
            return None
        missing = [b for b in HARD_BRANCHES if b not in present]
        if missing:
            raise ValueError(f"{path}: hard-process record incomplete, missing branches {missing}")
        try:
            hard = tree.arrays(list(HARD_BRANCHES), library="ak")
        except Exception as exc:
            raise ValueError(f"{path}: cannot read the hard_* branches ({type(exc).__name__}: {exc})") from exc
    if len(hard) != n_events:
        raise ValueError(f"{path}: hard_* branches hold {len(hard)} events, the tree {n_events}")
    n_hard = ak.num(hard.hard_pdgid, axis=1)
    for name in ("hard_d1", "hard_d2", "hard_mother1"):
        bad = ak.sum((hard[name] < -1) | (hard[name] >= n_hard))
        if bad:
            raise ValueError(f"{path}: {int(bad)} {name} value(s) point outside their event's hard_ record")
    return hard


def gen_particles(events: ak.Array, hard: ak.Array | None) -> ak.Array:
    """Per-event truth records: the final state (status 1), then the hard record (status 2) if given."""
    final = ak.zip(
        {
            "px": events.gen_px,
            "py": events.gen_py,
            "pz": events.gen_pz,
            "energy": events.gen_energy,
            "mass": events.gen_mass,
            "pid": events.gen_pdgid,
            "status": ak.values_astype(events.gen_status, np.int32),
            "x": events.gen_vx,
            "y": events.gen_vy,
            "z": events.gen_vz,
            "d1": ak.full_like(events.gen_pdgid, -1, dtype=np.int32),
            "d2": ak.full_like(events.gen_pdgid, -1, dtype=np.int32),
        }
    )
    if hard is None:
        return final
    shift = ak.values_astype(ak.num(events.gen_pdgid, axis=1), np.int32)
    zero = ak.zeros_like(hard.hard_px)
    extra = ak.zip(
        {
            "px": hard.hard_px,
            "py": hard.hard_py,
            "pz": hard.hard_pz,
            "energy": hard.hard_energy,
            "mass": hard.hard_mass,
            "pid": hard.hard_pdgid,
            "status": ak.full_like(hard.hard_pdgid, _HARD_STATUS, dtype=np.int32),
            "x": zero,
            "y": zero,
            "z": zero,
            "d1": ak.where(hard.hard_d1 >= 0, hard.hard_d1 + shift, -1),
            "d2": ak.where(hard.hard_d2 >= 0, hard.hard_d2 + shift, -1),
        }
    )
    return ak.concatenate([final, extra], axis=1)


def builtin_jet_table(
    path: Path, params: JetParams, *, baseline: BaselineParams, bfield: float
) -> tuple[pa.Table, int, bool]:
    """(JetClass-II rows, events, whether label truth was available) of one builtin file."""
    source = read_events(path, bfield_tesla=bfield)
    events = source.events
    hard = read_hard_record(path, len(events))
    particles = candidate_particles(events, baseline=baseline, bfield=source.bfield_tesla, source=str(path))
    if hard is None:
        # No resonances and no quarks: any QCD label would be a guess, so every jet stays unlabelled and kept.
        params = replace(params, labels=replace(params.labels, assign_qcd_label=False), drop_unlabelled=False)
    try:
        table = jets_from_particles(particles, gen_particles(events, hard), params=params)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return table, len(events), hard is not None


def ntuplize_builtin_jets(inputs: list[Path], *, output: Path, params: dict, provenance: Path | None) -> dict[str, Any]:
    """Builtin simulation files → one JetClass-II Parquet file (zstd, one row group per input), atomically.

    params: the JetParams keys (docs/jets.md) plus `baseline` (BaselineParams overrides) and
    `bfield_tesla` (default 4, the builtin detector's field). Every input is checked to be a builtin
    file before anything is written; a bad one is a ValueError naming it, and no output is left behind.
    Returns (and records in the provenance) events, jets written, files with and without label truth,
    and jets per label.
    """
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ValueError(f"{output}: no input files")
    baseline, bfield, jet_params = _split_params(params)
    for path in inputs:
        fmt = detect_format(path)
        if fmt != "builtin":
            raise ValueError(f"{path}: a {fmt} file, not the builtin layout (use the {fmt} jet ntuplizer)")
    events = jets = 0
    with_truth: list[str] = []
    without_truth: list[str] = []
    labels: list[np.ndarray] = []
    with (
        atomic_path(output) as tmp,
        pq.ParquetWriter(tmp, JETCLASS2_SCHEMA, compression="zstd", use_dictionary=False) as writer,
    ):
        for path in inputs:
            table, n_events, has_truth = builtin_jet_table(path, jet_params, baseline=baseline, bfield=bfield)
            (with_truth if has_truth else without_truth).append(str(path))
            events += n_events
            jets += table.num_rows
            labels.append(table.column("jet_label").to_numpy())
            if table.num_rows:
                writer.write_table(table)
    names = jet_params.labels.table
    values, counts = np.unique(np.concatenate(labels), return_counts=True)
    summary: dict[str, Any] = {
        "output": str(output),
        "inputs": len(inputs),
        "events": events,
        "jets_written": jets,
        "files_with_label_truth": with_truth,
        "files_without_label_truth": without_truth,
        "label_counts": {
            (names[k] if 0 <= k < len(names) else "unlabelled"): int(n) for k, n in zip(values, counts, strict=True)
        },
    }
    if provenance is not None:
        record = provenance_record(
            stage="ntuplize_jets", config=dict(params), inputs=[str(p) for p in inputs], extra={"stats": summary}
        )
        write_provenance(provenance, record)
    return summary

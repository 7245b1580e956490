"""Simulation ROOT file(s) (builtin, EDM4hep or Delphes; detected) → one event-level Parquet shard (EVENT_COLUMNS), with its provenance.

Each input file is read and turned into columns on its own (so that an error names the file), then
the columns are concatenated and written once, atomically: any failure leaves no Parquet file behind.
The output depends only on the inputs, the params and the seed, so a rerun is byte-identical.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pyarrow as pa

from colliderflow.config import canonical_json
from colliderflow.io.parquet import row_list_type, write_parquet_atomic
from colliderflow.io.sim_reader import read_events
from colliderflow.kinematics import EVENT_JETS, Momenta, cluster_cartesian, missing_et_cartesian
from colliderflow.ntuplize.baseline import BaselineParams, baseline_candidates
from colliderflow.ntuplize.elements import (
    ElementLayout,
    cluster_features,
    element_rows,
    flat,
    layout_of,
    track_features,
)
from colliderflow.ntuplize.targets import (
    assign_targets,
    block_momenta,
    jet_index,
    particle_class,
    visible_momenta,
)
from colliderflow.params import NtuplizeParams, SplitFractions, stage_params
from colliderflow.provenance import file_sha256, provenance_record, write_provenance
from colliderflow.schema import EVENT_COLUMNS, JET_FEATURES, N_ELEM_FEATURES, N_PARTICLE_FEATURES, PF, SPLITS

log = logging.getLogger(__name__)

_EVENT_INDEX_LIMIT = 2**32
_JET_KEYS = {"algorithm": str, "radius": float, "p": float, "min_pt": float}
# Used for a key the params leave out, e.g. a run by hand with --params '{}' (the default run's values).
DEFAULT_PARAMS: dict[str, Any] = {
    "split_fractions": {"train": 0.7, "val": 0.1, "test": 0.2},
    "jets": dict(EVENT_JETS),
}


# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------
def split_fractions(params: dict[str, Any]) -> dict[str, float]:
    """The train/val/test fractions of the `ntuplize` params, checked as the dry run checks them."""
    fractions = params.get("split_fractions", DEFAULT_PARAMS["split_fractions"])
    return stage_params(SplitFractions, fractions, where="ntuplize.split_fractions").as_dict()


def jet_params(params: dict[str, Any]) -> dict[str, Any]:
    """The `jets` sub-section as keyword arguments of `kinematics.cluster_jets`."""
    jets = params.get("jets", DEFAULT_PARAMS["jets"])
    if not isinstance(jets, dict) or set(jets) != set(_JET_KEYS):
        raise ValueError(f"ntuplize params: jets must have exactly the keys {sorted(_JET_KEYS)}, got {jets!r}")
    return {k: cast(jets[k]) for k, cast in _JET_KEYS.items()}


# ------------------------------------------------------------------------------------------------
# Identity of events: ids, sample names, splits
# ------------------------------------------------------------------------------------------------
def default_sample_name(path: Path) -> str:
    """The sample of a file named after it (`ttbar.root`), or of its folder for shard files (`ttbar/003.root`)."""
    path = Path(path)
    if re.fullmatch(r"(shard)?[_-]?\d+", path.stem) and path.parent.name:
        return path.parent.name
    return path.stem


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer (SplitMix64's finaliser): nearby ids give unrelated outputs."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def assign_splits(event_id: np.ndarray, *, sample: str, seed: int, fractions: dict[str, float]) -> np.ndarray:
    """train/val/test per event, a pure function of (seed, sample, event_id).

    A uniform number per event is hashed from the event id and a key derived from (seed, sample); it
    falls into [0, f_train), [f_train, f_train + f_val) or the rest. An event thus keeps its split
    whatever shards it is processed with, and different samples or seeds split independently.
    """
    return np.asarray(SPLITS, dtype=object)[split_codes(event_id, sample=sample, seed=seed, fractions=fractions)]


def split_codes(event_id: np.ndarray, *, sample: str, seed: int, fractions: dict[str, float]) -> np.ndarray:
    """`assign_splits` as indices into SPLITS."""
    key = int.from_bytes(hashlib.sha256(canonical_json(["split", seed, sample]).encode()).digest()[:8], "little")
    h = _splitmix64(np.asarray(event_id, dtype=np.int64).view(np.uint64) ^ np.uint64(key))
    u = (h >> np.uint64(11)).astype(np.float64) * 2.0**-53
    edges = np.cumsum([fractions[s] for s in SPLITS])
    return np.minimum(np.searchsorted(edges, u, side="right"), len(SPLITS) - 1)


# ------------------------------------------------------------------------------------------------
# Columns of one file
# ------------------------------------------------------------------------------------------------
class _Stopwatch:
    """Seconds spent per stage, summed over files: where a shard's time goes, reported in the stats."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def source_candidates(events: ak.Array, layout: ElementLayout) -> np.ndarray:
    """[total elements, 8] baseline rows from the source's own PF candidates (pfo_* fields).

    A reconstruction such as Pandora already made particles from the same tracks and clusters; that
    is the baseline a model must beat, so it replaces the rule-based one. A candidate sits on its first
    track, else on its first cluster; when several land on one element, the most energetic is kept
    (ties: the lower index). Candidates with neither stay out (they have no element to sit on).
    """
    n_pfo = ak.to_numpy(ak.num(events.pfo_energy, axis=1)).astype(np.int64)
    event = np.repeat(np.arange(layout.n_events, dtype=np.int64), n_pfo)
    track = flat(events.pfo_track_idx, np.int64)
    cluster = flat(events.pfo_cluster_idx, np.int64)
    elem = np.full(track.size, -1, dtype=np.int64)
    on_track, on_cluster = track >= 0, (track < 0) & (cluster >= 0)
    elem[on_track] = layout.track_offsets[event[on_track]] + track[on_track]
    elem[on_track] = layout.track_pos[elem[on_track]]
    flat_cluster = layout.cluster_offsets[event[on_cluster]] + cluster[on_cluster]
    elem[on_cluster] = layout.cluster_pos[flat_cluster]
    energy = flat(events.pfo_energy)
    placed = np.flatnonzero(elem >= 0)
    order = np.lexsort((placed, -energy[placed], elem[placed]))
    chosen = placed[order]
    first = np.ones(chosen.size, dtype=bool)
    first[1:] = elem[chosen][1:] != elem[chosen][:-1]
    chosen = chosen[first]
    px, py, pz = (flat(events[f"pfo_{c}"])[chosen] for c in ("px", "py", "pz"))
    charge = flat(events.pfo_charge)[chosen]
    pt = np.hypot(px, py)
    safe = np.maximum(pt, 1e-9)
    rows = np.zeros((layout.total, N_PARTICLE_FEATURES), dtype=np.float64)
    rows[:, PF["jet_idx"]] = -1
    block = rows[elem[chosen]]
    block[:, PF["cls_id"]] = particle_class(flat(events.pfo_pdgid, np.int64)[chosen], charge)
    block[:, PF["charge"]] = charge
    block[:, PF["pt"]] = pt
    block[:, PF["eta"]] = np.arcsinh(pz / safe)
    block[:, PF["sin_phi"]] = np.where(pt == 0, 0.0, py / safe)
    block[:, PF["cos_phi"]] = np.where(pt == 0, 1.0, px / safe)
    block[:, PF["energy"]] = flat(events.pfo_energy)[chosen]
    rows[elem[chosen]] = block
    return rows


@dataclass(frozen=True)
class FileColumns:
    """The EVENT_COLUMNS of one file's events as flat numpy (sample and split excepted), plus counters.

    Per-element blocks are [elements, width] float32 rows of all events one after another, cut into
    events by n_elements; jets are float32 `Momenta`. Kept flat until the whole shard is assembled,
    so that the table is built once, straight from the buffers.
    """

    event_id: np.ndarray  # int64 [events]
    n_elements: np.ndarray  # int64 [events]
    X: np.ndarray  # [elements, 17] float32
    ytarget: np.ndarray  # [elements, 8] float32
    ycand: np.ndarray
    genmet: np.ndarray  # float32 [events]
    genjets: Momenta
    targetjets: Momenta
    gen_unassigned_energy: np.ndarray  # float32 [events]
    n_visible: int
    n_unassigned: int

    @classmethod
    def concatenate(cls, parts: list[FileColumns]) -> FileColumns:
        """The events of all parts, one file after the other."""
        if len(parts) == 1:
            return parts[0]
        arrays = {name: np.concatenate([getattr(part, name) for part in parts])
                  for name in ("event_id", "n_elements", "X", "ytarget", "ycand", "genmet", "gen_unassigned_energy")}
        return cls(**arrays, genjets=Momenta.concatenate([part.genjets for part in parts]),
                   targetjets=Momenta.concatenate([part.targetjets for part in parts]),
                   n_visible=sum(part.n_visible for part in parts),
                   n_unassigned=sum(part.n_unassigned for part in parts))


def file_columns(events: ak.Array, *, first_index: int, shard: int, jets: dict[str, Any],
                 baseline: BaselineParams, bfield: float, source: str,
                 stopwatch: _Stopwatch | None = None) -> FileColumns:
    """EVENT_COLUMNS (except sample and split) for the events of one file; `first_index` numbers them."""
    lap = stopwatch.lap if stopwatch else (lambda stage: None)
    layout = layout_of(events)
    tracks = track_features(events, bfield=bfield, source=source)
    clusters = cluster_features(events)
    rows = element_rows(layout, tracks, clusters)
    lap("elements")
    targets = assign_targets(events, layout)
    lap("targets")
    if "pfo_energy" in events.fields:
        cand = source_candidates(events, layout)
    else:
        cand = baseline_candidates(tracks, clusters, layout, baseline)
    lap("baseline")

    # Gen and target jets in one clustering call: the gen events first, then the target events.
    visible = visible_momenta(events)
    target_particles = block_momenta(targets.rows, layout)
    gen_xyz, target_xyz = visible.cartesian(), target_particles.cartesian()
    n = layout.n_events
    both = cluster_cartesian(*(np.concatenate(pair) for pair in zip(gen_xyz, target_xyz, strict=True)),
                             np.concatenate([visible.counts, target_particles.counts]), **jets)
    genjets, targetjets = both.events(0, n), both.events(n, 2 * n)
    lap("jets")

    # Both blocks refer to the target jets, so that candidates and targets can be compared jet by jet.
    jet_args = {"algorithm": jets["algorithm"], "radius": jets["radius"]}
    targets.rows[:, PF["jet_idx"]] = jet_index(targets.rows, layout.offsets, targetjets, **jet_args,
                                               phi=target_particles.phi)
    cand[:, PF["jet_idx"]] = jet_index(cand, layout.offsets, targetjets, **jet_args)
    lap("jet_idx")

    index = np.arange(first_index, first_index + n, dtype=np.int64)
    if n and index[-1] >= _EVENT_INDEX_LIMIT:
        raise ValueError(f"{source}: more than 2**32 events in one shard; event ids would collide")
    columns = FileColumns(
        event_id=np.int64(shard) * np.int64(_EVENT_INDEX_LIMIT) + index,
        n_elements=layout.n_elements,
        X=rows,
        ytarget=targets.rows.astype(np.float32),
        ycand=cand.astype(np.float32),
        genmet=missing_et_cartesian(gen_xyz[0], gen_xyz[1], visible.counts),
        genjets=genjets,
        targetjets=targetjets,
        gen_unassigned_energy=targets.unassigned_energy.astype(np.float32),
        n_visible=targets.n_visible,
        n_unassigned=targets.n_unassigned,
    )
    lap("columns")
    return columns


def _row_lists(rows: np.ndarray, counts: np.ndarray, width: int) -> pa.Array:
    """Flat [n, width] rows cut into events of counts[i] rows, as the stored list<fixed_size_list> type."""
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"{offsets[-1]} rows in one shard; a Parquet list column holds at most 2**31 − 1")
    list_type = row_list_type(width)
    values = pa.array(np.ascontiguousarray(rows, dtype=np.float32).reshape(-1))
    inner = pa.FixedSizeListArray.from_arrays(values, type=list_type.value_type)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), inner, type=list_type)


def _jet_rows(jets: Momenta) -> pa.Array:
    rows = np.stack([jets.pt, jets.eta, jets.phi, jets.energy], axis=1)
    return _row_lists(rows, jets.counts, len(JET_FEATURES))


def event_table(columns: FileColumns, *, sample: str, splits: np.ndarray) -> pa.Table:
    """The shard as an arrow table of EVENT_COLUMNS, already in the stored types; `splits` indexes SPLITS."""
    n_events = columns.event_id.size
    arrays = {
        "event_id": pa.array(columns.event_id),
        "sample": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n_events, dtype=np.int32)),
                                                 pa.array([sample])).cast(pa.string()),
        "split": pa.DictionaryArray.from_arrays(pa.array(splits.astype(np.int32)),
                                                pa.array(SPLITS, type=pa.string())).cast(pa.string()),
        "X": _row_lists(columns.X, columns.n_elements, N_ELEM_FEATURES),
        "ytarget": _row_lists(columns.ytarget, columns.n_elements, N_PARTICLE_FEATURES),
        "ycand": _row_lists(columns.ycand, columns.n_elements, N_PARTICLE_FEATURES),
        "n_elements": pa.array(columns.n_elements.astype(np.int32)),
        "genmet": pa.array(columns.genmet),
        "genjets": _jet_rows(columns.genjets),
        "targetjets": _jet_rows(columns.targetjets),
        "gen_unassigned_energy": pa.array(columns.gen_unassigned_energy),
    }
    return pa.table({name: arrays[name] for name in EVENT_COLUMNS})


# ------------------------------------------------------------------------------------------------
# The stage
# ------------------------------------------------------------------------------------------------
def write_shard_provenance(path: Path, *, params: dict[str, Any], seed: int, inputs: list[Path], sample: str,
                           shard: int, output: Path, events: int, elements: int, splits: dict[str, int],
                           **extra: Any) -> None:
    """The provenance record of one ntuple shard, for shards made from events and for skipped ones alike."""
    write_provenance(path, provenance_record(
        stage="ntuplize",
        config=params,
        seeds={"split": seed},
        inputs=[str(p) for p in inputs],
        extra={"sample": sample, "shard": shard, "output": str(output), "output_sha256": file_sha256(output),
               "events": events, "elements": elements, "splits": splits, **extra},
    ))


def ntuplize_files(inputs: list[Path], *, output: Path, sample: str | None, shard: int, params: dict,
                   seed: int, provenance: Path | None) -> dict[str, Any]:
    """Read simulation file(s) of any supported format, write one Parquet shard of EVENT_COLUMNS rows; return run stats.

    `params` is the config's `ntuplize` section: split_fractions {train, val, test}, jets {algorithm,
    radius, p, min_pt} (each defaulting to DEFAULT_PARAMS when absent), and optionally `baseline`
    (overrides of BaselineParams) and `bfield_tesla` (default: the source's, see `read_events`). A source
    with its own particle flow (pfo_* fields: Pandora PFOs, Delphes PF objects) gives the baseline.
    Event i of the concatenated inputs gets event_id = shard·2**32 + i. Returns events, elements,
    seconds, events_per_s, input_mb, output_mb, mb_per_s (input MB per second), and the truth energy
    that reached no element. Bad input → ValueError naming the file; nothing is written then.
    """
    start = time.perf_counter()
    stopwatch = _Stopwatch()  # setup time counts towards "read"
    inputs = [Path(p) for p in inputs]
    output = Path(output)
    if not inputs:
        raise ValueError("ntuplize: no input files")
    stage_params(NtuplizeParams, params, where="ntuplize")  # the dry run ran the same check
    fractions = split_fractions(params)
    jets = jet_params(params)
    baseline = stage_params(BaselineParams, params.get("baseline"), where="ntuplize.baseline")
    # None: each file's curvatures are read with its source's field (4 T CLIC-like, 3.8 T Delphes default).
    bfield_param = params.get("bfield_tesla")
    bfield_param = None if bfield_param is None else float(bfield_param)
    fields_used: dict[str, float] = {}
    sample = sample or default_sample_name(inputs[0])

    parts = []
    first_index = 0
    for path in inputs:
        source = read_events(path, bfield_tesla=bfield_param)
        events = source.events
        fields_used[source.format] = source.bfield_tesla
        stopwatch.lap("read")
        parts.append(file_columns(events, first_index=first_index, shard=shard, jets=jets,
                                  baseline=baseline, bfield=source.bfield_tesla, source=str(path),
                                  stopwatch=stopwatch))
        first_index += len(events)

    columns = FileColumns.concatenate(parts)
    n_events = columns.event_id.size
    splits = split_codes(columns.event_id, sample=sample, seed=seed, fractions=fractions)
    table = event_table(columns, sample=sample, splits=splits)
    stopwatch.lap("columns")
    write_parquet_atomic(table, output)
    stopwatch.lap("write")

    n_elements = int(columns.n_elements.sum())
    unassigned = float(np.sum(columns.gen_unassigned_energy))  # float32, as awkward's sum gave it
    n_visible = columns.n_visible
    n_lost = columns.n_unassigned
    split_counts = {s: int(np.sum(splits == i)) for i, s in enumerate(SPLITS)}
    if provenance is not None:
        write_shard_provenance(
            provenance, params=params, seed=seed, inputs=inputs, sample=sample, shard=shard, output=output,
            events=n_events, elements=n_elements, splits=split_counts,
            gen_unassigned_energy_total=round(unassigned, 6),
            unassigned_particles=n_lost,
            visible_particles=n_visible,
            effective_params={
                "split_fractions": fractions,
                "jets": jets,
                "baseline": baseline.as_dict(),
                "bfield_tesla": bfield_param if bfield_param is not None else fields_used,
            },
        )

    seconds = time.perf_counter() - start
    input_mb = sum(p.stat().st_size for p in inputs) / 1e6
    stats = {
        "sample": sample,
        "shard": shard,
        "events": n_events,
        "elements": n_elements,
        "splits": split_counts,
        "seconds": seconds,
        "events_per_s": n_events / seconds if seconds > 0 else float("inf"),
        "input_mb": input_mb,
        "output_mb": output.stat().st_size / 1e6,
        "mb_per_s": input_mb / seconds if seconds > 0 else float("inf"),
        "gen_unassigned_energy": unassigned,
        "unassigned_particles": n_lost,
        "visible_particles": n_visible,
        "stage_seconds": stopwatch.seconds,
    }
    log.info("ntuplize %s shard %d: %d events, %d elements, %.1f ev/s, %.1f MB/s; %d of %d visible truth "
             "particles (%.1f GeV) reached no element → %s", sample, shard, n_events, n_elements,
             stats["events_per_s"], stats["mb_per_s"], n_lost, n_visible, unassigned, output)
    return stats



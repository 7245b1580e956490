"""Jet-level datasets in the JetClass-II layout: one row per large-radius jet.

Two ways in, one way out. `jets_from_particles` clusters per-event particles itself (anti-kT, FastJet,
all events in one call); `jet_table_from_constituents` takes jets whose constituents are already known
(Delphes' own jets, resolved from their references). Both end in the same builder, so a column means
the same thing whichever way the jets were found:

* constituents with pT ≤ 0, |η| > 5 or |pz| > 10 TeV are dropped (as in JetClass-II), the jet's
  four-momentum is the sum of the remaining ones, and the jet must pass pT ≥ min_pt, |η| ≤ max_abs_eta;
* constituents are sorted by descending pT; part_deta is sign(jet η)·(η − jet η) and part_dphi is
  wrapped, as JetClass-II defines them;
* soft-drop mass and τ_1..τ_4 come from `jet_substructure`, labels and aux_genpart_* from `jet_labels`;
* each jet, in descending pT within its event, takes the nearest not-yet-taken generator jet with
  ΔR < genjet_match_dr; without one, genjet_* are 0 and genpart_* are empty.

Everything runs on flat numpy arrays with per-jet counts (numba where a loop cannot be avoided); no
Python loop touches a particle or a jet. `ntuplize.delphes_jets` drives the Delphes reader over files
in chunks and writes one zstd Parquet file, atomically.

Input records (per-event awkward lists):
  particles:     px, py, pz, energy (GeV), charge, pid; optional d0, d0err, dz, dzerr (mm, default 0)
  gen_particles: px, py, pz, energy (GeV), pid; optional mass (GeV), status (default 1), x, y, z (mm),
                 t (ns), d1, d2 (daughter indices in the event, −1 for none: needed for labels)
  vertex:        optional per-event record z (mm), t (ns), has_vertex (bool) of the primary vertex
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

import awkward as ak
import numba
import numpy as np
import pyarrow as pa

from colliderflow.jetschema import jetclass2_table
from colliderflow.kinematics import stdout_fd_silenced
from colliderflow.ntuplize.jet_arrays import (
    Flat,
    JetSet,
    eta_phi,
    filtered_jets,
    flatten,
    jet_set_from,
    ordered_members,
    require_fields,
    wrap_phi,
)
from colliderflow.ntuplize.jet_labels import (
    ROLE_PRODUCT,
    ROLE_QCD,
    ROLE_TAU_PRODUCT,
    ROLE_X,
    ROLE_Y,
    GenRecord,
    label_jets,
)
from colliderflow.ntuplize.jet_params import JetParams, jet_params_from_section  # the config path (no numba)
from colliderflow.ntuplize.jet_substructure import jet_substructure
from colliderflow.schema import NEUTRINO_PDGIDS

_SECONDS_PER_NS: Final = 1e-9
# JetClass-II zeroes x, y of particles produced at the primary vertex's z (to within this, mm).
_AT_VERTEX_MM: Final = 1e-10
_TAU_N: Final = (1, 2, 3, 4)


@numba.njit(cache=True)
def _greedy_match(jet_event, jet_eta, jet_phi, gen_start, gen_stop, gen_eta, gen_phi, max_dr):
    """Each jet in turn (grouped by event, descending pT) takes the nearest unused gen jet if ΔR < max_dr."""
    match = np.full(len(jet_event), -1, np.int64)
    used = np.zeros(len(gen_eta), np.bool_)
    for j in range(len(jet_event)):
        ev = jet_event[j]
        best = -1
        best_dr = np.inf
        for g in range(gen_start[ev], gen_stop[ev]):
            if used[g]:
                continue
            dphi = abs(jet_phi[j] - gen_phi[g])
            if dphi > np.pi:
                dphi = 2 * np.pi - dphi
            dr = np.sqrt((jet_eta[j] - gen_eta[g]) ** 2 + dphi * dphi)
            if dr < best_dr:
                best_dr = dr
                best = g
        if best >= 0 and best_dr < max_dr:
            match[j] = best
            used[best] = True
    return match


# --------------------------------------------------------------------------------------------------
# The builder.
# --------------------------------------------------------------------------------------------------
_RECO_REQUIRED: Final = ("px", "py", "pz", "energy", "charge", "pid")
_RECO_OPTIONAL: Final = {"d0": 0.0, "d0err": 0.0, "dz": 0.0, "dzerr": 0.0}
_GEN_REQUIRED: Final = ("px", "py", "pz", "energy", "pid")
_GEN_OPTIONAL: Final = {"mass": np.nan, "status": 1, "x": 0.0, "y": 0.0, "z": 0.0, "t": 0.0, "d1": -1, "d2": -1}


def _vertex_arrays(vertex: ak.Array | None, n_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if vertex is None:
        return np.zeros(n_events), np.zeros(n_events), np.zeros(n_events, dtype=bool)
    if len(vertex) != n_events:
        raise ValueError(f"vertex: {len(vertex)} events for {n_events} events of particles")
    z = ak.to_numpy(vertex.z).astype(np.float64)
    t = ak.to_numpy(vertex.t).astype(np.float64) if "t" in vertex.fields else np.zeros(n_events)
    has = ak.to_numpy(vertex.has_vertex).astype(bool) if "has_vertex" in vertex.fields else np.ones(n_events, bool)
    return np.where(has, z, 0.0), np.where(has, t, 0.0), has


def _gen_record(gen: Flat) -> GenRecord:
    d = gen.data
    return GenRecord(gen.offsets, d["pid"], d["px"], d["py"], d["pz"], d["d1"], d["d2"])


@dataclass
class BuildStats:
    """Counts of what happened to the jets of one build (summed over chunks by the ntuplizer)."""

    events: int = 0
    jets_found: int = 0
    jets_selected: int = 0
    jets_unlabelled: int = 0
    jets_written: int = 0
    jets_with_genjet: int = 0
    label_counts: dict[int, int] = field(default_factory=dict)

    def add(self, other: BuildStats) -> None:
        for name in ("events", "jets_found", "jets_selected", "jets_unlabelled", "jets_written", "jets_with_genjet"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for label, count in other.label_counts.items():
            self.label_counts[label] = self.label_counts.get(label, 0) + count


def _build(
    particles: Flat,
    jet_set: JetSet,
    gen: Flat | None,
    genjet_set: JetSet | None,
    vertex: ak.Array | None,
    params: JetParams,
) -> tuple[pa.Table, BuildStats]:
    stats = BuildStats(events=particles.n_events, jets_found=len(jet_set.event))
    pv_z, pv_t, has_pv = _vertex_arrays(vertex, particles.n_events)
    jets = filtered_jets(jet_set, particles, max_abs_eta=params.max_constituent_abs_eta,
                            max_abs_pz=params.max_constituent_abs_pz)

    # Kinematic selection; rows go by event, then descending pT.
    selected = np.flatnonzero((jets.n > 0) & (jets.pt >= params.min_pt) & (np.abs(jets.eta) <= params.max_abs_eta))
    selected = selected[np.lexsort((-jets.pt[selected], jets.event[selected]))]
    stats.jets_selected = len(selected)

    # Labels (and the aux particles that come with them).
    if gen is not None:
        truth = label_jets(
            _gen_record(gen), jets.event[selected], jets.eta[selected], jets.phi[selected], params.labels
        )
        labels, aux_counts, aux_index, aux_role = truth.label, truth.aux_counts, truth.aux_index, truth.aux_role
        keep = labels >= 0 if params.drop_unlabelled else np.ones(len(selected), bool)
        stats.jets_unlabelled = int((labels < 0).sum())
    else:
        labels = np.full(len(selected), -1, dtype=np.int32)
        aux_counts = np.zeros(len(selected), dtype=np.int64)
        aux_index = np.zeros(0, dtype=np.int64)
        aux_role = np.zeros(0, dtype=np.int8)
        keep = np.ones(len(selected), bool)
    aux_keep = np.repeat(keep, aux_counts)
    aux_index, aux_role, aux_counts = aux_index[aux_keep], aux_role[aux_keep], aux_counts[keep]
    rows, labels = selected[keep], labels[keep]
    n_rows = len(rows)
    stats.jets_written = n_rows
    values, counts = np.unique(labels, return_counts=True)
    stats.label_counts = {int(v): int(c) for v, c in zip(values, counts, strict=True)}

    rank = np.full(len(jets.event), -1, dtype=np.int64)
    rank[rows] = np.arange(n_rows)
    row_event, row_eta, row_phi = jets.event[rows], jets.eta[rows], jets.phi[rows]
    row_sign = np.where(row_eta > 0, 1.0, -1.0)

    # Constituents.
    members, member_row, n_part = ordered_members(jets, rank, n_rows)
    d = particles.data
    cpx, cpy, cpz, cen = (d[k][members].astype(np.float64) for k in ("px", "py", "pz", "energy"))
    _, ceta, cphi = eta_phi(cpx, cpy, cpz)
    pid = np.abs(d["pid"][members])
    charge = d["charge"][members].astype(np.int32)
    is_e, is_mu, is_photon = pid == 11, pid == 13, d["pid"][members] == 22
    dz = d["dz"][members].astype(np.float64)
    member_event = row_event[member_row]
    dz = np.where(has_pv[member_event] & (dz != 0), dz - pv_z[member_event], dz)
    sub = jet_substructure(cpx, cpy, cpz, cen, n_part, params.substructure)

    columns: dict[str, object] = {
        "part_px": (cpx, n_part),
        "part_py": (cpy, n_part),
        "part_pz": (cpz, n_part),
        "part_energy": (cen, n_part),
        "part_deta": (row_sign[member_row] * (ceta - row_eta[member_row]), n_part),
        "part_dphi": (wrap_phi(cphi - row_phi[member_row]), n_part),
        "part_d0val": (d["d0"][members], n_part),
        "part_d0err": (d["d0err"][members], n_part),
        "part_dzval": (dz, n_part),
        "part_dzerr": (d["dzerr"][members], n_part),
        "part_charge": (charge, n_part),
        "part_isElectron": (is_e, n_part),
        "part_isMuon": (is_mu, n_part),
        "part_isPhoton": (is_photon, n_part),
        "part_isChargedHadron": ((charge != 0) & ~is_e & ~is_mu, n_part),
        "part_isNeutralHadron": ((charge == 0) & ~is_photon, n_part),
        "jet_pt": jets.pt[rows],
        "jet_eta": row_eta,
        "jet_phi": row_phi,
        "jet_energy": jets.energy[rows],
        "jet_sdmass": sub["sdmass"],
        "jet_nparticles": n_part,
        "jet_label": labels,
    }
    for i, n in enumerate(_TAU_N):
        columns[f"jet_tau{n}"] = sub["tau"][:, i]

    columns.update(
        _genjet_columns(gen, genjet_set, params, rows, row_event, row_eta, row_phi, row_sign, pv_z, pv_t, has_pv)
    )
    stats.jets_with_genjet = int(np.count_nonzero(columns["genjet_nparticles"]))
    columns.update(_aux_columns(gen, aux_index, aux_role, aux_counts))
    return jetclass2_table(columns), stats


def _genjet_columns(
    gen: Flat | None,
    genjet_set: JetSet | None,
    params: JetParams,
    rows: np.ndarray,
    row_event: np.ndarray,
    row_eta: np.ndarray,
    row_phi: np.ndarray,
    row_sign: np.ndarray,
    pv_z: np.ndarray,
    pv_t: np.ndarray,
    has_pv: np.ndarray,
) -> dict[str, object]:
    """genjet_* and genpart_* of the rows: match gen jets greedily, then gather and describe their constituents."""
    n_rows = len(rows)
    zeros = np.zeros(n_rows)
    empty = (np.zeros(0), np.zeros(n_rows, dtype=np.int64))
    if gen is None or genjet_set is None or n_rows == 0:
        cols: dict[str, object] = {name: empty for name in _GENPART_NAMES}
        cols.update({f"genjet_{k}": zeros for k in ("pt", "eta", "phi", "energy", "sdmass", "nparticles")})
        return cols
    genjets = filtered_jets(genjet_set, gen, max_abs_eta=params.max_constituent_abs_eta,
                            max_abs_pz=params.max_constituent_abs_pz)
    usable = genjets.n > 0
    n_events = len(gen.offsets) - 1
    gen_event = np.where(usable, genjets.event, n_events)  # unusable gen jets sort past every event
    order = np.argsort(gen_event, kind="stable")
    start = np.searchsorted(gen_event[order], np.arange(n_events), side="left")
    stop = np.searchsorted(gen_event[order], np.arange(n_events), side="right")
    match_sorted = _greedy_match(
        row_event, row_eta, row_phi, start, stop, genjets.eta[order], genjets.phi[order], params.genjet_match_dr
    )
    matched = match_sorted >= 0
    match = np.where(matched, order[np.maximum(match_sorted, 0)], -1)

    rank = np.full(len(genjets.event), -1, dtype=np.int64)
    rank[match[matched]] = np.flatnonzero(matched)
    members, member_row, n_gen = ordered_members(genjets, rank, n_rows)
    d = gen.data
    gpx, gpy, gpz, gen_e = (d[k][members].astype(np.float64) for k in ("px", "py", "pz", "energy"))
    _, geta, gphi = eta_phi(gpx, gpy, gpz)
    ev = row_event[member_row]
    z_rel = d["z"][members].astype(np.float64) - np.where(has_pv[ev], pv_z[ev], 0.0)
    t_rel = d["t"][members].astype(np.float64) - np.where(has_pv[ev], pv_t[ev], 0.0)
    at_vertex = np.abs(z_rel) < _AT_VERTEX_MM
    g_sub = jet_substructure(gpx, gpy, gpz, gen_e, n_gen, replace(params.substructure, tau_n=()))
    take = np.maximum(match, 0)

    def matched_or_zero(values: np.ndarray) -> np.ndarray:
        return np.where(matched, values[take], 0.0)

    return {
        "genpart_px": (gpx, n_gen),
        "genpart_py": (gpy, n_gen),
        "genpart_pz": (gpz, n_gen),
        "genpart_energy": (gen_e, n_gen),
        "genpart_jet_deta": (row_sign[member_row] * (geta - row_eta[member_row]), n_gen),
        "genpart_jet_dphi": (wrap_phi(gphi - row_phi[member_row]), n_gen),
        "genpart_x": (np.where(at_vertex, 0.0, d["x"][members]), n_gen),
        "genpart_y": (np.where(at_vertex, 0.0, d["y"][members]), n_gen),
        "genpart_z": (z_rel, n_gen),
        "genpart_t": (t_rel * _SECONDS_PER_NS, n_gen),
        "genpart_pid": (d["pid"][members], n_gen),
        "genjet_pt": matched_or_zero(genjets.pt),
        "genjet_eta": matched_or_zero(genjets.eta),
        "genjet_phi": matched_or_zero(genjets.phi),
        "genjet_energy": matched_or_zero(genjets.energy),
        "genjet_sdmass": np.where(matched, g_sub["sdmass"], 0.0),
        "genjet_nparticles": n_gen,
    }


_GENPART_NAMES: Final = (
    "genpart_px",
    "genpart_py",
    "genpart_pz",
    "genpart_energy",
    "genpart_jet_deta",
    "genpart_jet_dphi",
    "genpart_x",
    "genpart_y",
    "genpart_z",
    "genpart_t",
    "genpart_pid",
)


def _aux_columns(gen: Flat | None, index: np.ndarray, role: np.ndarray, counts: np.ndarray) -> dict[str, object]:
    if gen is None:
        index = np.zeros(0, dtype=np.int64)
    d = gen.data if gen is not None else {k: np.zeros(0) for k in ("px", "py", "pz", "energy", "mass", "pid")}
    px, py, pz, energy = (d[k][index].astype(np.float64) for k in ("px", "py", "pz", "energy"))
    pt, eta, phi = eta_phi(px, py, pz)
    mass = d["mass"][index].astype(np.float64)
    mass = np.where(np.isfinite(mass), mass, np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0.0)))
    return {
        "aux_genpart_pt": (pt, counts),
        "aux_genpart_eta": (eta, counts),
        "aux_genpart_phi": (phi, counts),
        "aux_genpart_mass": (mass, counts),
        "aux_genpart_pid": (d["pid"][index], counts),
        "aux_genpart_isResX": (role == ROLE_X, counts),
        "aux_genpart_isResY": (role == ROLE_Y, counts),
        "aux_genpart_isResDecayProd": (role == ROLE_PRODUCT, counts),
        "aux_genpart_isTauDecayProd": (role == ROLE_TAU_PRODUCT, counts),
        "aux_genpart_isQcdParton": (role == ROLE_QCD, counts),
    }


# --------------------------------------------------------------------------------------------------
# Public entry points.
# --------------------------------------------------------------------------------------------------
def _coerce_params(params: JetParams | Mapping[str, Any] | None) -> JetParams:
    if params is None:
        return JetParams()
    return params if isinstance(params, JetParams) else jet_params_from_section(params)


def cluster_constituents(particles: ak.Array, *, radius: float, min_pt: float) -> ak.Array:
    """Anti-kT jets of every event at once: [events, jets, constituent indices into the event's list]."""
    import fastjet

    n_events = len(particles)
    if n_events == 0 or ak.sum(ak.num(particles, axis=1)) == 0:
        no_jets = ak.unflatten(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        return ak.unflatten(no_jets, np.zeros(n_events, dtype=np.int64))
    vectors = ak.zip(
        {
            k: ak.values_astype(particles[f], np.float64)
            for k, f in (("px", "px"), ("py", "py"), ("pz", "pz"), ("E", "energy"))
        },
        with_name="Momentum4D",
    )
    with stdout_fd_silenced():
        sequence = fastjet.ClusterSequence(vectors, fastjet.JetDefinition(fastjet.antikt_algorithm, radius))
        return ak.values_astype(sequence.constituent_index(min_pt=min_pt), np.int64)


def final_state_genjets(gen_particles: ak.Array, params: JetParams) -> ak.Array:
    """Gen jets as in JetClass-II: the same clustering on stable (status 1) particles without neutrinos."""
    status = gen_particles.status if "status" in gen_particles.fields else ak.ones_like(gen_particles.pid)
    abs_pid = abs(gen_particles.pid)
    visible = status == 1
    for pdgid in NEUTRINO_PDGIDS:
        visible = visible & (abs_pid != pdgid)
    local = ak.local_index(gen_particles, axis=1)[visible]
    index = cluster_constituents(gen_particles[visible], radius=params.radius, min_pt=params.genjet_min_pt)
    # Map indices into the visible subset back to indices into the full list.
    sel_counts = ak.to_numpy(ak.num(local, axis=1))
    sel_offsets = np.concatenate([[0], np.cumsum(sel_counts)])
    jets_per_event = ak.num(index, axis=1)
    per_jet = ak.flatten(ak.num(index, axis=2), axis=1)
    event = np.repeat(np.arange(len(index)), ak.to_numpy(jets_per_event))
    flat = ak.to_numpy(ak.flatten(index, axis=None)) + np.repeat(sel_offsets[event], ak.to_numpy(per_jet))
    mapped = ak.to_numpy(ak.flatten(local, axis=1))[flat.astype(np.int64)]
    return ak.unflatten(ak.unflatten(mapped, per_jet), jets_per_event)


def build_tables(
    particles: ak.Array,
    constituents: ak.Array,
    gen_particles: ak.Array | None,
    gen_constituents: ak.Array | None,
    vertex: ak.Array | None,
    params: JetParams,
) -> tuple[pa.Table, BuildStats]:
    flat = flatten(particles, _RECO_REQUIRED, _RECO_OPTIONAL, "particles")
    jet_set = jet_set_from(constituents, flat, "jets")
    gen = genjet_set = None
    if gen_particles is not None:
        if len(gen_particles) != flat.n_events:
            raise ValueError(f"gen_particles: {len(gen_particles)} events for {flat.n_events} events of particles")
        gen = flatten(gen_particles, _GEN_REQUIRED, _GEN_OPTIONAL, "gen_particles")
        if gen_constituents is not None:
            genjet_set = jet_set_from(gen_constituents, gen, "gen jets")
    return _build(flat, jet_set, gen, genjet_set, vertex, params)


def jet_table_from_constituents(
    particles: ak.Array,
    constituents: ak.Array,
    gen_particles: ak.Array | None = None,
    gen_constituents: ak.Array | None = None,
    *,
    vertex: ak.Array | None = None,
    params: JetParams | Mapping[str, Any] | None = None,
) -> pa.Table:
    """JetClass-II rows for jets whose constituents are given ([events, jets, indices into particles]).

    Without gen_particles there is no truth: jet_label is −1, genjet_* are 0 and nothing is dropped.
    """
    return build_tables(particles, constituents, gen_particles, gen_constituents, vertex, _coerce_params(params))[0]


def jets_from_particles(
    particles: ak.Array,
    gen_particles: ak.Array | None = None,
    *,
    vertex: ak.Array | None = None,
    params: JetParams | Mapping[str, Any] | None = None,
) -> pa.Table:
    """Cluster anti-kT jets from per-event particles and return their JetClass-II rows (one per jet).

    Gen jets are clustered the same way from the stable, non-neutrino gen particles. The table has the
    exact JetClass-II arrow schema (`colliderflow.jetschema`).
    """
    params = _coerce_params(params)
    require_fields(particles, _RECO_REQUIRED, "particles")
    if gen_particles is not None:
        require_fields(gen_particles, _GEN_REQUIRED, "gen_particles")
    constituents = cluster_constituents(particles, radius=params.radius, min_pt=params.min_pt)
    gen_constituents = final_state_genjets(gen_particles, params) if gen_particles is not None else None
    return build_tables(particles, constituents, gen_particles, gen_constituents, vertex, params)[0]

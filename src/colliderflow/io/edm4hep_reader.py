"""Read EDM4hep (podio ROOT) files of a Key4HEP reconstruction into the builtin simulation layout.

The ntuplizer computes elements, targets and baselines from one record layout (the SIM_* branches of
`colliderflow.schema`). This module maps the CLIC reconstruction's collections onto it, so that none of
that code needs to know where the events came from:

* MCParticles → gen_* (all particles, so that link indices stay valid; gen_status is the
  generatorStatus, 0 for particles created by the simulator), plus gen_parent_idx (first parent, −1)
  which the target rule needs to replace a non-interacting final-state particle by its children;
* SiTracks_Refitted + its TrackState vector → track_* (the AtIP state, else the track's first one);
* PandoraClusters → cluster_* (subdetector energies ECAL, HCAL, rest; spread from the position error);
* the track and cluster truth links → track_gen_idx (highest weight) and calolink_* (weight taken as
  the energy fraction of the cluster, as the CLIC truth linker writes it);
* PandoraPFOs → pfo_* (the source's own particle flow, used as the ycand baseline), when present.

Links are read in both podio layouts: EDM4hep ≥ 0.99 `_<Link>_from` / `_<Link>_to` and the older
associations `_<Link>_rec` / `_<Link>_sim`; the reconstructed object is the `from`/`rec` end. Collection
names are parameters (`Edm4hepCollections`) because productions rename them.

Everything is vectorised over all objects of all events. Any problem is one ValueError naming the file
(and, for an incomplete file, every missing collection at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import awkward as ak
import numpy as np
import uproot

from colliderflow.io.rootfile import open_root_file

EDM4HEP_TREE: Final = "events"
TRACKSTATE_AT_IP: Final = 1  # edm4hep::TrackState::AtIP


@dataclass(frozen=True)
class Edm4hepCollections:
    """Names of the collections read; the defaults are those of the Key4HEP CLIC reconstruction."""

    mc: str = "MCParticles"
    tracks: str = "SiTracks_Refitted"
    clusters: str = "PandoraClusters"
    track_links: str = "SiTracksMCTruthLink"
    cluster_links: str = "ClusterMCTruthLink"
    pfos: str | None = "PandoraPFOs"  # optional: without it the rule-based baseline is used


def _member(collection: str, member: str) -> str:
    return f"{collection}/{collection}.{member}"


def _vector(collection: str, vector: str, member: str | None = None) -> str:
    """A vector member or relation of a collection, e.g. `_SiTracks_Refitted_trackStates`."""
    name = f"_{collection}_{vector}"
    return name if member is None else f"{name}/{name}.{member}"


_LINK_LAYOUTS: Final = (("from", "to"), ("rec", "sim"))


class _Reader:
    """Branch access of one open file with uniform errors."""

    def __init__(self, path: Path, tree: uproot.TTree) -> None:
        self.path = path
        self.tree = tree
        self.keys = set(tree.keys(recursive=True))

    def resolve(self, name: str) -> str | None:
        """The stored branch of `coll/coll.member`: podio splits it under its collection; flat writers
        (uproot, some converters) store `coll.member` at the top level."""
        if name in self.keys:
            return name
        leaf = name.split("/", 1)[-1]
        return leaf if leaf in self.keys else None

    def has(self, name: str) -> bool:
        return self.resolve(name) is not None

    def read(self, name: str) -> ak.Array:
        try:
            return self.tree[self.resolve(name) or name].array(library="ak")
        except Exception as exc:  # damaged baskets, decompression errors
            raise ValueError(f"{self.path}: cannot read branch {name!r}, truncated or corrupt? "
                             f"({type(exc).__name__}: {exc})") from exc

    def read_or_zeros(self, name: str, like: ak.Array) -> ak.Array:
        """A member that some EDM4hep versions dropped (e.g. Track.dEdx in 1.0): zeros when absent."""
        return self.read(name) if self.has(name) else ak.zeros_like(like, dtype=np.float32)

    def link_layout(self, link: str) -> tuple[str, str] | None:
        for reco_end, mc_end in _LINK_LAYOUTS:
            if self.has(_vector(link, reco_end, "index")) and self.has(_vector(link, mc_end, "index")):
                return reco_end, mc_end
        return None


def missing_collections(reader: _Reader, names: Edm4hepCollections) -> list[str]:
    """The required collections (or links, in either layout) that the file lacks."""
    checks = {
        names.mc: _member(names.mc, "PDG"),
        names.tracks: _member(names.tracks, "trackStates_begin"),
        f"{names.tracks} track states": _vector(names.tracks, "trackStates", "omega"),
        names.clusters: _member(names.clusters, "energy"),
    }
    missing = [label for label, branch in checks.items() if not reader.has(branch)]
    if f"{names.tracks} track states" in missing and names.tracks in missing:
        missing.remove(f"{names.tracks} track states")
    for link in (names.track_links, names.cluster_links):
        if reader.link_layout(link) is None:
            missing.append(f"{link} (_{link}_from/_to or _{link}_rec/_sim)")
    return missing


# ------------------------------------------------------------------------------------------------
# Flat helpers: all objects of all events at once
# ------------------------------------------------------------------------------------------------
def _flat(array: ak.Array, dtype: type = np.float64) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)


def _starts(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else np.zeros(0, np.int64)


def _event_of(counts: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def first_related(begin: ak.Array, end: ak.Array, related_index: ak.Array) -> ak.Array:
    """Per object, the first entry of its [begin, end) range in a relation's index vector, −1 if empty."""
    counts = ak.to_numpy(ak.num(begin, axis=1)).astype(np.int64)
    b, e = _flat(begin, np.int64), _flat(end, np.int64)
    rel = _flat(related_index, np.int64)
    start = _starts(ak.to_numpy(ak.num(related_index, axis=1)).astype(np.int64))
    out = np.full(b.size, -1, dtype=np.int64)
    has = e > b
    out[has] = rel[start[_event_of(counts)[has]] + b[has]]
    return ak.unflatten(out.astype(np.int32), counts)


def _chosen_state(begin: ak.Array, end: ak.Array, location: ak.Array) -> np.ndarray:
    """Flat index into all track states of each track's AtIP state, else of its first state."""
    counts = ak.to_numpy(ak.num(begin, axis=1)).astype(np.int64)
    b, e = _flat(begin, np.int64), _flat(end, np.int64)
    state_start = _starts(ak.to_numpy(ak.num(location, axis=1)).astype(np.int64))
    first = state_start[_event_of(counts)] + b
    n_states = e - b
    owner = np.repeat(np.arange(b.size, dtype=np.int64), n_states)
    index = np.repeat(first, n_states) + (np.arange(owner.size, dtype=np.int64) - np.repeat(_starts(n_states), n_states))
    at_ip = _flat(location, np.int64)[index] == TRACKSTATE_AT_IP
    chosen = first.copy()
    best = np.full(b.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, owner[at_ip], index[at_ip])
    found = best != np.iinfo(np.int64).max
    chosen[found] = best[found]
    return chosen


def _best_link(n_objects: np.ndarray, reco: ak.Array, mc: ak.Array, weight: ak.Array) -> ak.Array:
    """Per reconstructed object, the MC index of its highest-weight link (ties: the lower index), −1 if none."""
    counts = ak.to_numpy(ak.num(reco, axis=1)).astype(np.int64)
    event = _event_of(counts)
    group = _starts(n_objects)[event] + _flat(reco, np.int64)
    mc_flat, w = _flat(mc, np.int64), _flat(weight)
    order = np.lexsort((mc_flat, -w, group))
    group, mc_flat = group[order], mc_flat[order]
    first = np.ones(group.size, dtype=bool)
    first[1:] = group[1:] != group[:-1]
    out = np.full(int(n_objects.sum()), -1, dtype=np.int64)
    out[group[first]] = mc_flat[first]
    return ak.unflatten(out.astype(np.int32), n_objects)


def _check_range(path: Path, what: str, index: ak.Array, sizes: ak.Array, *, allow_minus_one: bool) -> None:
    n = ak.broadcast_arrays(sizes, index)[0]
    low = -1 if allow_minus_one else 0
    bad = ak.to_numpy(ak.sum((index < low) | (index >= n), axis=1))
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} index value(s) of {what} point outside their collection "
                         f"(first in event {int(np.flatnonzero(bad)[0])})")


# ------------------------------------------------------------------------------------------------
# Collections
# ------------------------------------------------------------------------------------------------
def _gen(r: _Reader, mc: str) -> dict[str, ak.Array]:
    f32 = np.float32
    px, py, pz = (r.read(_member(mc, f"momentum.{c}")) for c in "xyz")
    mass = r.read(_member(mc, "mass"))
    p2 = ak.values_astype(px, np.float64) ** 2 + ak.values_astype(py, np.float64) ** 2 + \
        ak.values_astype(pz, np.float64) ** 2
    out = {
        "gen_pdgid": ak.values_astype(r.read(_member(mc, "PDG")), np.int32),
        "gen_charge": ak.values_astype(r.read(_member(mc, "charge")), f32),
        "gen_px": ak.values_astype(px, f32),
        "gen_py": ak.values_astype(py, f32),
        "gen_pz": ak.values_astype(pz, f32),
        "gen_energy": ak.values_astype(np.sqrt(p2 + ak.values_astype(mass, np.float64) ** 2), f32),
        "gen_mass": ak.values_astype(mass, f32),
        "gen_status": ak.values_astype(r.read(_member(mc, "generatorStatus")), np.int32),
        "gen_vx": ak.values_astype(r.read(_member(mc, "vertex.x")), f32),
        "gen_vy": ak.values_astype(r.read(_member(mc, "vertex.y")), f32),
        "gen_vz": ak.values_astype(r.read(_member(mc, "vertex.z")), f32),
    }
    if r.has(_member(mc, "parents_begin")) and r.has(_vector(mc, "parents", "index")):
        out["gen_parent_idx"] = first_related(r.read(_member(mc, "parents_begin")),
                                              r.read(_member(mc, "parents_end")),
                                              r.read(_vector(mc, "parents", "index")))
    else:
        out["gen_parent_idx"] = ak.values_astype(ak.zeros_like(out["gen_pdgid"]) - 1, np.int32)
    return out


def _tracks(r: _Reader, names: Edm4hepCollections, n_gen: ak.Array) -> dict[str, ak.Array]:
    t = names.tracks
    begin, end = r.read(_member(t, "trackStates_begin")), r.read(_member(t, "trackStates_end"))
    counts = ak.to_numpy(ak.num(begin, axis=1)).astype(np.int64)
    n_states = ak.num(r.read(_vector(t, "trackStates", "omega")), axis=1)
    _check_range(r.path, f"{t}.trackStates_begin", begin, n_states, allow_minus_one=False)
    _check_range(r.path, f"{t}.trackStates_end", end - 1, n_states, allow_minus_one=False)
    location = r.read(_vector(t, "trackStates", "location"))
    chosen = _chosen_state(begin, end, location)

    def state(member: str) -> ak.Array:
        values = _flat(r.read(_vector(t, "trackStates", member)), np.float32)[chosen]
        return ak.unflatten(values, counts)

    omega = state("omega")
    chi2 = r.read(_member(t, "chi2"))
    reco_end, mc_end = r.link_layout(names.track_links)
    link = names.track_links
    reco = r.read(_vector(link, reco_end, "index"))
    mc = r.read(_vector(link, mc_end, "index"))
    weight = r.read(_member(link, "weight")) if r.has(_member(link, "weight")) else ak.ones_like(reco, dtype=np.float32)
    _check_range(r.path, f"{link} ({reco_end})", reco, ak.num(chi2, axis=1), allow_minus_one=False)
    _check_range(r.path, f"{link} ({mc_end})", mc, n_gen, allow_minus_one=False)
    return {
        "track_gen_idx": _best_link(counts, reco, mc, weight),
        "track_charge": ak.values_astype(np.sign(omega), np.float32),
        "track_omega": omega,
        "track_tanlambda": state("tanLambda"),
        "track_phi": state("phi"),
        "track_d0": state("D0"),
        "track_z0": state("Z0"),
        "track_chi2": ak.values_astype(chi2, np.float32),
        "track_ndf": ak.values_astype(r.read(_member(t, "ndf")), np.int32),
        "track_dedx": ak.values_astype(r.read_or_zeros(_member(t, "dEdx"), chi2), np.float32),
        "track_dedx_error": ak.values_astype(r.read_or_zeros(_member(t, "dEdxError"), chi2), np.float32),
        "track_radius_innermost_hit": ak.values_astype(
            r.read_or_zeros(_member(t, "radiusOfInnermostHit"), chi2), np.float32),
        "track_time": state("time") if r.has(_vector(t, "trackStates", "time")) else ak.zeros_like(omega),
    }


def _subdetector_energies(r: _Reader, c: str, energy: ak.Array) -> tuple[ak.Array, ak.Array, ak.Array]:
    """(ECAL, HCAL, rest) from the cluster's subdetectorEnergies vector; all in ECAL when it is absent."""
    counts = ak.to_numpy(ak.num(energy, axis=1)).astype(np.int64)
    if not (r.has(_member(c, "subdetectorEnergies_begin")) and r.has(_vector(c, "subdetectorEnergies"))):
        return energy, ak.zeros_like(energy), ak.zeros_like(energy)
    b = _flat(r.read(_member(c, "subdetectorEnergies_begin")), np.int64)
    e = _flat(r.read(_member(c, "subdetectorEnergies_end")), np.int64)
    values = r.read(_vector(c, "subdetectorEnergies"))
    flat_values = _flat(values)
    start = _starts(ak.to_numpy(ak.num(values, axis=1)).astype(np.int64))[_event_of(counts)] + b
    n = e - b
    if np.any(start + n > flat_values.size):
        raise ValueError(f"{r.path}: {c}.subdetectorEnergies ranges point outside their vector")
    owner = np.repeat(np.arange(b.size), n)
    position = np.arange(owner.size) - np.repeat(_starts(n), n)
    entries = flat_values[np.repeat(start, n) + position]
    parts = [np.bincount(owner[position == k], weights=entries[position == k], minlength=b.size) for k in (0, 1)]
    rest = np.bincount(owner[position >= 2], weights=entries[position >= 2], minlength=b.size)
    return tuple(ak.unflatten(v.astype(np.float32), counts) for v in (*parts, rest))


def _clusters(r: _Reader, names: Edm4hepCollections, n_gen: ak.Array) -> dict[str, ak.Array]:
    c = names.clusters
    energy = r.read(_member(c, "energy"))
    counts = ak.to_numpy(ak.num(energy, axis=1)).astype(np.int64)
    ecal, hcal, other = _subdetector_energies(r, c, energy)
    if r.has(_member(c, "hits_begin")):
        nhits = r.read(_member(c, "hits_end")) - r.read(_member(c, "hits_begin"))
    else:
        nhits = ak.zeros_like(energy, dtype=np.int32)
    error_branch = next((b for b in (_member(c, "positionError.values[6]"), _member(c, "positionError.values"),
                                   _member(c, "positionError[6]"))
                         if r.has(b)), None)
    if error_branch is not None:
        cov = np.asarray(ak.to_numpy(ak.flatten(r.read(error_branch), axis=1)), dtype=np.float64).reshape(-1, 6)
        sigma = [ak.unflatten(np.sqrt(np.maximum(cov[:, k], 0.0)).astype(np.float32), counts) for k in (0, 2, 5)]
    else:
        sigma = [ak.zeros_like(energy, dtype=np.float32)] * 3
    f32 = np.float32
    link = names.cluster_links
    reco_end, mc_end = r.link_layout(link)
    reco = ak.values_astype(r.read(_vector(link, reco_end, "index")), np.int32)
    mc = ak.values_astype(r.read(_vector(link, mc_end, "index")), np.int32)
    weight = r.read(_member(link, "weight")) if r.has(_member(link, "weight")) else ak.ones_like(reco, dtype=f32)
    _check_range(r.path, f"{link} ({reco_end})", reco, ak.num(energy, axis=1), allow_minus_one=False)
    _check_range(r.path, f"{link} ({mc_end})", mc, n_gen, allow_minus_one=False)
    return {
        "cluster_energy": ak.values_astype(energy, f32),
        "cluster_x": ak.values_astype(r.read(_member(c, "position.x")), f32),
        "cluster_y": ak.values_astype(r.read(_member(c, "position.y")), f32),
        "cluster_z": ak.values_astype(r.read(_member(c, "position.z")), f32),
        "cluster_itheta": ak.values_astype(r.read_or_zeros(_member(c, "iTheta"), energy), f32),
        "cluster_energy_ecal": ak.values_astype(ecal, f32),
        "cluster_energy_hcal": ak.values_astype(hcal, f32),
        "cluster_energy_other": ak.values_astype(other, f32),
        "cluster_nhits": ak.values_astype(nhits, np.int32),
        "cluster_sigma_x": sigma[0],
        "cluster_sigma_y": sigma[1],
        "cluster_sigma_z": sigma[2],
        "calolink_cluster_idx": reco,
        "calolink_gen_idx": mc,
        # The CLIC truth linker stores the particle's share of the cluster energy as the weight.
        "calolink_energy": ak.values_astype(weight * energy[reco], f32),
    }


def _pfos(r: _Reader, p: str, n_tracks: ak.Array, n_clusters: ak.Array) -> dict[str, ak.Array]:
    """The source's PF candidates with the first track and first cluster each one is made of (−1: none)."""
    f32 = np.float32
    energy = r.read(_member(p, "energy"))

    def relation(name: str) -> ak.Array:
        if r.has(_member(p, f"{name}_begin")) and r.has(_vector(p, name, "index")):
            return first_related(r.read(_member(p, f"{name}_begin")), r.read(_member(p, f"{name}_end")),
                                 r.read(_vector(p, name, "index")))
        return ak.values_astype(ak.zeros_like(energy) - 1, np.int32)

    track_idx, cluster_idx = relation("tracks"), relation("clusters")
    _check_range(r.path, f"{p}.tracks", track_idx, n_tracks, allow_minus_one=True)
    _check_range(r.path, f"{p}.clusters", cluster_idx, n_clusters, allow_minus_one=True)
    return {
        "pfo_pdgid": ak.values_astype(r.read(_member(p, "PDG")), np.int32),
        "pfo_charge": ak.values_astype(r.read(_member(p, "charge")), f32),
        "pfo_px": ak.values_astype(r.read(_member(p, "momentum.x")), f32),
        "pfo_py": ak.values_astype(r.read(_member(p, "momentum.y")), f32),
        "pfo_pz": ak.values_astype(r.read(_member(p, "momentum.z")), f32),
        "pfo_energy": ak.values_astype(energy, f32),
        "pfo_track_idx": track_idx,
        "pfo_cluster_idx": cluster_idx,
    }


def open_events_tree(path: Path) -> uproot.TTree:
    """The podio `events` tree of a file; ValueError naming the file otherwise."""
    handle = open_root_file(path)
    try:
        tree = handle[EDM4HEP_TREE]
    except Exception as exc:
        raise ValueError(f"{path}: not a readable EDM4hep file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(tree, uproot.TTree):
        raise ValueError(f"{path}: {EDM4HEP_TREE!r} is not a TTree")  # noqa: TRY004 (a bad file, not a bad call)
    return tree


def read_mc_particles(path: str | Path, *, mc: str = "MCParticles") -> dict[str, ak.Array]:
    """Only the truth particles (gen_* fields, gen_parent_idx), for files without a reconstruction."""
    path = Path(path)
    tree = open_events_tree(path)
    reader = _Reader(path, tree)
    if not reader.has(_member(mc, "PDG")):
        raise ValueError(f"{path}: EDM4hep file lacks the collection {mc}")
    return _gen(reader, mc)


def read_edm4hep(path: str | Path, collections: Edm4hepCollections | None = None) -> ak.Array:
    """One EDM4hep file as a record array [events] with the SIM_* fields (+ gen_parent_idx, pfo_*).

    ValueError naming the file when it is missing, empty, not ROOT, truncated, holds no events, lacks
    required collections (all named in one message), or has relations pointing outside their targets.
    """
    path = Path(path)
    names = collections or Edm4hepCollections()
    tree = open_events_tree(path)
    try:
        reader = _Reader(path, tree)
        missing = missing_collections(reader, names)
        if missing:
            raise ValueError(f"{path}: EDM4hep file lacks the collection(s) needed for elements and targets: "
                             f"{', '.join(missing)}")
        if tree.num_entries == 0:
            raise ValueError(f"{path}: tree {EDM4HEP_TREE!r} holds no events")
        fields = _gen(reader, names.mc)
        n_gen = ak.num(fields["gen_pdgid"], axis=1)
        _check_range(path, f"{names.mc}.parents", fields["gen_parent_idx"], n_gen, allow_minus_one=True)
        fields |= _tracks(reader, names, n_gen)
        fields |= _clusters(reader, names, n_gen)
        if names.pfos and reader.has(_member(names.pfos, "energy")):
            fields |= _pfos(reader, names.pfos, ak.num(fields["track_omega"], axis=1),
                            ak.num(fields["cluster_energy"], axis=1))
    finally:
        tree.file.close()
    n_events = {len(v) for v in fields.values()}
    if len(n_events) != 1:
        raise ValueError(f"{path}: collections hold different numbers of events {sorted(n_events)}")
    return ak.zip(fields, depth_limit=1)

"""An event-level view of Delphes output in the builtin simulation layout (SIM_* fields), for the ntuplizer.

Delphes has no hits and no real track fit. As for Key4HEP, elements are the detector's tracks and
calorimeter clusters, targets come from the truth behind them, and the card's own particle flow is the
baseline. Per card, whatever it writes (first match):

* EFlow cards (CMS, ATLAS, CLIC, ILD, IDEA, FCC-ee, ...): tracks ← `EFlowTrack`; clusters ← `Tower`
  (every calorimeter tower, its full energy) when written, else `EFlowPhoton` + `EFlowNeutralHadron`;
  baseline ← the EFlow objects: each EFlowTrack on its track, each neutral EFlow object on the tower it
  was made from (same edges, `_tower_match`). A tower whose energy the particle flow gave to tracks
  has no baseline object, as a cluster Pandora merged into a track has no PFO of its own.
* PF-candidate cards (JetClass-II's): tracks ← charged `ParticleFlowCandidate`s, clusters ← neutral
  ones, baseline ← the candidates themselves. Candidates with pT = 0 (PUPPI weight 0, η = ±999.9)
  are not elements.
* `Track` + `Tower` only: those, with the rule-based baseline.

Features: helix parameters in the EDM4hep convention, ω = q·0.2998e-3·B/pT [1/mm] with the solenoid
field B (3.8 T, CMS-like cards, unless given), tanλ = sinh η, φ, D0/DZ (mm) when present; χ², ndf and
the innermost-hit radius do not exist in Delphes and are 0; dE/dx is `dNdx` when present. Clusters:
energy, ECAL/HCAL energy from `Eem`/`Ehad`, and the tower's stored X, Y, Z (mm) where the calorimeter
was hit, else a point on a cylinder of radius CALO_RADIUS_MM closed at ±CALO_HALF_LENGTH_MM along (η, φ).

Truth: gen_* are all `Particle` entries (status as stored; the targets use status 1). A track's truth
particle is its `Particle` TRef, a cluster's deposits its `Particles` TRefArray (`delphes_refs`); a
reference branch that is present but unreadable is an error naming it, never "no truth". A deposit's
energy is the referenced particle's energy (Delphes does not store the share of a tower; with its
calorimeters a particle deposits in one tower per calorimeter), which only ranks the clusters a
particle reached. References to particles the file does not store (pile-up) match nothing.

Delphes writes times in seconds; they come out in ns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import awkward as ak
import numpy as np
import uproot

from colliderflow.io.delphes_reader import DELPHES_TREE, GEN_BRANCH, PF_BRANCH
from colliderflow.io.delphes_refs import pz_from_pt_eta, reference_leaf, truth_refs
from colliderflow.io.rootfile import open_root_file

DEFAULT_BFIELD_TESLA: Final = 3.8  # CMS-like Delphes cards
CALO_RADIUS_MM: Final = 1500.0
CALO_HALF_LENGTH_MM: Final = 2307.0
_PT_PER_TESLA_PER_INVERSE_MM: Final = 0.299792458e-3
_SECONDS_TO_NS: Final = 1e9

EFLOW_TRACKS: Final = "EFlowTrack"
EFLOW_CLUSTERS: Final = ("EFlowPhoton", "EFlowNeutralHadron")
TOWERS: Final = "Tower"
TRACKS: Final = "Track"
_EDGES: Final = "Edges[4]"

_GEN_LEAVES: Final = ("fUniqueID", "PID", "Status", "Charge", "Px", "Py", "Pz", "E", "Mass", "X", "Y", "Z")
_TRACK_LEAVES: Final = ("PT", "Eta", "Phi", "Charge", "PID")
_TRACK_OPTIONAL: Final = ("D0", "DZ", "T", "dNdx", "Mass", "P")
_TOWER_LEAVES: Final = ("E", "Eta", "Phi", "Eem", "Ehad")
_TOWER_OPTIONAL: Final = ("T", "NTimeHits", "PID", "Mass", "PT", "X", "Y", "Z", _EDGES)


@dataclass(frozen=True)
class _Layout:
    """Which collections of a card become tracks, clusters and the baseline (pfo_*)."""

    mode: str  # "eflow": EFlow tracks, Tower or EFlow clusters; "pfcands": the PF candidates; "tracks": Track + Tower
    tracks: list[str]
    clusters: list[str]
    pfo_neutrals: list[str]  # neutral PF objects placed on clusters by tower edges (Tower clusters only)
    refs: dict[str, str]  # collection → its truth-reference branch


def _open(path: Path) -> tuple[uproot.TTree, set[str]]:
    handle = open_root_file(path)
    if DELPHES_TREE not in handle:
        handle.close()
        raise ValueError(f"{path}: no {DELPHES_TREE!r} tree")
    tree = handle[DELPHES_TREE]
    return tree, {k.split("/")[-1] for k in tree.keys(recursive=True)}


def _written(collection: str, available: set[str]) -> bool:
    return f"{collection}.PT" in available or f"{collection}.E" in available


def _layout(path: Path, available: set[str]) -> _Layout:
    """The card's collections for tracks, clusters and baseline; ValueError listing everything missing."""
    missing = [f"{GEN_BRANCH}.{leaf}" for leaf in _GEN_LEAVES if f"{GEN_BRANCH}.{leaf}" not in available]
    neutrals = [c for c in EFLOW_CLUSTERS if _written(c, available)]
    towers_usable = _written(TOWERS, available) and f"{TOWERS}.{_EDGES}" in available
    if _written(EFLOW_TRACKS, available) and (neutrals or towers_usable):
        clusters = [TOWERS] if towers_usable else neutrals
        layout = _Layout("eflow", [EFLOW_TRACKS], clusters, neutrals if towers_usable else [], {})
        needed = [f"{EFLOW_TRACKS}.{leaf}" for leaf in _TRACK_LEAVES]
        needed += [f"{c}.{leaf}" for c in {*clusters, *layout.pfo_neutrals} for leaf in _TOWER_LEAVES]
        needed += [f"{c}.{_EDGES}" for c in layout.pfo_neutrals]
    elif _written(PF_BRANCH, available):
        layout = _Layout("pfcands", [PF_BRANCH], [PF_BRANCH], [], {})
        needed = [f"{PF_BRANCH}.{leaf}" for leaf in (*_TRACK_LEAVES, "E", "Eem", "Ehad")]
    elif _written(TRACKS, available) and towers_usable:
        layout = _Layout("tracks", [TRACKS], [TOWERS], [], {})
        needed = [f"{TRACKS}.{leaf}" for leaf in _TRACK_LEAVES] + [f"{TOWERS}.{leaf}" for leaf in _TOWER_LEAVES]
    else:
        missing.append(f"{' + '.join([EFLOW_TRACKS, *EFLOW_CLUSTERS])} (or {TOWERS}), {PF_BRANCH}, "
                       f"or {TRACKS} + {TOWERS}")
        raise ValueError(f"{path}: Delphes tree lacks what the event-level ntuplizer needs: {', '.join(missing)}")
    for collection in {*layout.tracks, *layout.clusters}:
        ref = reference_leaf(collection, available)
        if ref is None:
            missing.append(f"{collection}.Particle(s) (the truth references)")
        else:
            layout.refs[collection] = ref
    missing += [n for n in needed if n not in available]
    if missing:
        raise ValueError(f"{path}: Delphes tree lacks what the event-level ntuplizer needs: {', '.join(missing)}")
    return layout


def _read(path: Path, tree: uproot.TTree, names: list[str]) -> ak.Array:
    try:
        return tree.arrays(names, library="ak")
    except Exception as exc:
        raise ValueError(f"{path}: cannot read the Delphes branches, truncated or corrupt? "
                         f"({type(exc).__name__}: {exc})") from exc


def _flat(array: ak.Array, dtype: type = np.float64) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)


def _refs(path: Path, arrays: ak.Array, layout: _Layout, collections: list[str], gen_uid: ak.Array) -> ak.Array:
    """[events, objects, refs] Particle indices of the objects' truth references, collections concatenated.

    Every collection has its reference branch (checked by `_layout`); one that does not read as a
    TRef/TRefArray is a ValueError naming it. References to particles the file does not store
    (pile-up) match nothing and are left out.
    """
    parts = [truth_refs(str(path), arrays, layout.refs[c], gen_uid)[0] for c in collections]
    return parts[0] if len(parts) == 1 else ak.concatenate(parts, axis=1)


def _position(eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The point where the direction (η, φ) from the origin meets the calorimeter front (barrel or endcap)."""
    sinh = np.sinh(eta)
    r = np.where(np.abs(CALO_RADIUS_MM * sinh) <= CALO_HALF_LENGTH_MM, CALO_RADIUS_MM,
                 CALO_HALF_LENGTH_MM / np.maximum(np.abs(sinh), 1e-12))
    return r * np.cos(phi), r * np.sin(phi), r * sinh


def _select(arrays: ak.Array, collections: list[str], leaf: str, mask: ak.Array | None) -> ak.Array:
    parts = [arrays[f"{c}.{leaf}"] for c in collections]
    joined = parts[0] if len(parts) == 1 else ak.concatenate(parts, axis=1)
    return joined if mask is None else joined[mask]


def _names(layout: _Layout, available: set[str]) -> list[str]:
    names = [f"{GEN_BRANCH}.{leaf}" for leaf in _GEN_LEAVES] + list(layout.refs.values())
    for c in {*layout.tracks, *layout.clusters, *layout.pfo_neutrals}:
        leaves = set(_TRACK_LEAVES if c in layout.tracks else ())
        leaves |= set(_TOWER_LEAVES if c in (*layout.clusters, *layout.pfo_neutrals) else ())
        leaves |= {leaf for leaf in (*_TRACK_OPTIONAL, *_TOWER_OPTIONAL) if f"{c}.{leaf}" in available}
        names += [f"{c}.{leaf}" for leaf in sorted(leaves)]
    return sorted(set(names))


def read_delphes_events(path: str | Path, *, bfield_tesla: float | None = None) -> ak.Array:
    """One Delphes file as a record array [events] with the SIM_* fields and, where the card has a
    particle flow, pfo_* (its objects, the baseline).

    ValueError naming the file when it is missing, empty, not ROOT, not Delphes, truncated, holds no
    events, lacks the collections (all named in one message), or has a truth-reference branch that
    does not read as a reference (named).
    """
    path = Path(path)
    bfield = DEFAULT_BFIELD_TESLA if bfield_tesla is None else float(bfield_tesla)
    tree, available = _open(path)
    try:
        layout = _layout(path, available)
        arrays = _read(path, tree, _names(layout, available))
    finally:
        tree.file.close()
    if len(arrays) == 0:
        raise ValueError(f"{path}: tree {DELPHES_TREE!r} holds no events")
    track_colls, cluster_colls = layout.tracks, layout.clusters

    gen_uid = arrays[f"{GEN_BRANCH}.fUniqueID"]
    # Objects without momentum carry no information and have no helix: in a PUPPI card the candidates
    # weighted to zero are stored with pT = 0 (E = mass, η = ±999.9); they are not elements.
    t_pt_all = _select(arrays, track_colls, "PT", None)
    c_e_all = _select(arrays, cluster_colls, "E", None)
    if layout.mode == "pfcands":
        charge = arrays[f"{PF_BRANCH}.Charge"]
        c_pt_all = arrays[f"{PF_BRANCH}.PT"]
        track_mask, cluster_mask = (charge != 0) & (t_pt_all > 0), (charge == 0) & (c_e_all > 0) & (c_pt_all > 0)
    else:
        track_mask, cluster_mask = t_pt_all > 0, c_e_all > 0

    def optional(colls: list[str], leaf: str, mask: ak.Array | None, like: ak.Array) -> ak.Array:
        if all(f"{c}.{leaf}" in arrays.fields for c in colls):
            return _select(arrays, colls, leaf, mask)
        return ak.zeros_like(like, dtype=np.float32)

    # Tracks.
    t_pt = _select(arrays, track_colls, "PT", track_mask)
    t_counts = ak.to_numpy(ak.num(t_pt, axis=1)).astype(np.int64)
    pt, eta = _flat(t_pt), _flat(_select(arrays, track_colls, "Eta", track_mask))
    q = _flat(_select(arrays, track_colls, "Charge", track_mask))
    if np.any(pt <= 0) or np.any(q == 0):
        raise ValueError(f"{path}: {int(np.sum((pt <= 0) | (q == 0)))} track(s) with pT <= 0 or no charge")
    omega = q * _PT_PER_TESLA_PER_INVERSE_MM * bfield / pt
    t_refs = _refs(path, arrays, layout, track_colls, gen_uid)[track_mask]
    t_gen = ak.fill_none(ak.firsts(t_refs, axis=2), -1)

    def tracks(values: np.ndarray) -> ak.Array:
        return ak.unflatten(np.asarray(values, dtype=np.float32), t_counts)

    fields: dict[str, ak.Array] = {}
    # Truth particles: every Particle, so that reference indices stay valid.
    for out, leaf, dtype in (("gen_pdgid", "PID", np.int32), ("gen_charge", "Charge", np.float32),
                             ("gen_px", "Px", np.float32), ("gen_py", "Py", np.float32),
                             ("gen_pz", "Pz", np.float32), ("gen_energy", "E", np.float32),
                             ("gen_mass", "Mass", np.float32), ("gen_status", "Status", np.int32),
                             ("gen_vx", "X", np.float32), ("gen_vy", "Y", np.float32), ("gen_vz", "Z", np.float32)):
        fields[out] = ak.values_astype(arrays[f"{GEN_BRANCH}.{leaf}"], dtype)
    time = optional(track_colls, "T", track_mask, t_pt) * _SECONDS_TO_NS
    fields |= {
        "track_gen_idx": ak.values_astype(t_gen, np.int32),
        "track_charge": tracks(q),
        "track_omega": tracks(omega),
        "track_tanlambda": tracks(np.sinh(eta)),
        "track_phi": ak.values_astype(_select(arrays, track_colls, "Phi", track_mask), np.float32),
        "track_d0": ak.values_astype(optional(track_colls, "D0", track_mask, t_pt), np.float32),
        "track_z0": ak.values_astype(optional(track_colls, "DZ", track_mask, t_pt), np.float32),
        "track_chi2": tracks(np.zeros(pt.size)),
        "track_ndf": ak.values_astype(tracks(np.zeros(pt.size)), np.int32),
        "track_dedx": ak.values_astype(optional(track_colls, "dNdx", track_mask, t_pt), np.float32),
        "track_dedx_error": tracks(np.zeros(pt.size)),
        "track_radius_innermost_hit": tracks(np.zeros(pt.size)),
        "track_time": ak.values_astype(time, np.float32),
    }

    # Clusters.
    c_e = _select(arrays, cluster_colls, "E", cluster_mask)
    c_counts = ak.to_numpy(ak.num(c_e, axis=1)).astype(np.int64)
    c_eta, c_phi = _flat(_select(arrays, cluster_colls, "Eta", cluster_mask)), \
        _flat(_select(arrays, cluster_colls, "Phi", cluster_mask))
    x, y, z = _position(c_eta, c_phi)
    if layout.mode != "pfcands" and all(f"{c}.{v}" in arrays.fields for c in cluster_colls for v in "XYZ"):
        # Towers store where the calorimeter was hit (mm); a PF candidate's X, Y, Z are its vertex instead.
        stored = [_flat(_select(arrays, cluster_colls, v, cluster_mask)) for v in "XYZ"]
        hit = (stored[0] != 0) | (stored[1] != 0) | (stored[2] != 0)
        x, y, z = (np.where(hit, s, m) for s, m in zip(stored, (x, y, z), strict=True))

    def clusters(values: np.ndarray) -> ak.Array:
        return ak.unflatten(np.asarray(values, dtype=np.float32), c_counts)

    ecal = _flat(_select(arrays, cluster_colls, "Eem", cluster_mask))
    hcal = _flat(_select(arrays, cluster_colls, "Ehad", cluster_mask))
    energy = _flat(c_e)
    zeros = np.zeros(energy.size)
    fields |= {
        "cluster_energy": clusters(energy),
        "cluster_x": clusters(x),
        "cluster_y": clusters(y),
        "cluster_z": clusters(z),
        "cluster_itheta": clusters(2.0 * np.arctan(np.exp(-c_eta))),
        "cluster_energy_ecal": clusters(ecal),
        "cluster_energy_hcal": clusters(hcal),
        "cluster_energy_other": clusters(np.maximum(energy - ecal - hcal, 0.0)),
        "cluster_nhits": ak.values_astype(clusters(zeros), np.int32),
        "cluster_sigma_x": clusters(zeros),
        "cluster_sigma_y": clusters(zeros),
        "cluster_sigma_z": clusters(zeros),
    }

    # Deposits: unique (cluster, particle) pairs of the clusters' references.
    refs = _refs(path, arrays, layout, cluster_colls, gen_uid)[cluster_mask]
    fields |= _deposits(refs, c_counts, fields["gen_energy"])
    if layout.mode != "tracks":
        fields |= _pfos(arrays, layout, track_mask, cluster_mask)
    return ak.zip(fields, depth_limit=1)


def _deposits(refs: ak.Array, c_counts: np.ndarray, gen_energy: ak.Array) -> dict[str, ak.Array]:
    n_events = len(c_counts)
    per_cluster = ak.to_numpy(ak.flatten(ak.num(refs, axis=2), axis=1)).astype(np.int64)
    cluster_local = np.arange(per_cluster.size, dtype=np.int64) - np.repeat(
        np.concatenate([[0], np.cumsum(c_counts)[:-1]]).astype(np.int64), c_counts)
    event = np.repeat(np.repeat(np.arange(n_events, dtype=np.int64), c_counts), per_cluster)
    cluster = np.repeat(cluster_local, per_cluster)
    gen = ak.to_numpy(ak.flatten(refs, axis=None)).astype(np.int64)
    key = np.unique(np.stack([event, cluster, gen], axis=1), axis=0) if gen.size else np.zeros((0, 3), np.int64)
    counts = np.bincount(key[:, 0], minlength=n_events)
    gen_start = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(gen_energy, axis=1)))[:-1]]).astype(np.int64)
    energy = _flat(gen_energy)[gen_start[key[:, 0]] + key[:, 2]] if key.size else np.zeros(0)
    return {
        "calolink_cluster_idx": ak.unflatten(key[:, 1].astype(np.int32), counts),
        "calolink_gen_idx": ak.unflatten(key[:, 2].astype(np.int32), counts),
        "calolink_energy": ak.unflatten(energy.astype(np.float32), counts),
    }


def _tower_match(arrays: ak.Array, towers: str, tower_mask: ak.Array, neutrals: list[str]) -> ak.Array:
    """For each neutral EFlow object, the index among the kept towers it was made from (−1: none).

    An EFlowPhoton / EFlowNeutralHadron is a copy of one calorimeter tower with the charged energy taken
    out: it has that tower's edges. It belongs to the tower with the same edges in the same event that
    has electromagnetic (photons) or hadronic (neutral hadrons) energy — in cards with separate ECAL and
    HCAL towers both may share edges. Several towers matching: the first.
    """
    def keys(collection: str, mask: ak.Array | None) -> tuple[np.ndarray, np.ndarray]:
        edges = arrays[f"{collection}.{_EDGES}"]
        edges = edges if mask is None else edges[mask]
        counts = ak.to_numpy(ak.num(edges, axis=1)).astype(np.int64)
        bits = np.asarray(ak.to_numpy(ak.flatten(edges, axis=1)), dtype=np.float32).view(np.int32).astype(np.int64)
        event = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
        return np.column_stack([event, bits]), counts

    tower_keys, tower_counts = keys(towers, tower_mask)
    local = np.arange(tower_keys.shape[0]) - np.repeat(np.cumsum(tower_counts) - tower_counts, tower_counts)
    eem = _flat(arrays[f"{towers}.Eem"][tower_mask]) > 0
    ehad = _flat(arrays[f"{towers}.Ehad"][tower_mask]) > 0
    # Key columns: event, four edges, kind (1 electromagnetic, 0 hadronic).
    candidates = np.concatenate([np.column_stack([tower_keys[eem], np.ones(eem.sum(), np.int64)]),
                                 np.column_stack([tower_keys[ehad], np.zeros(ehad.sum(), np.int64)])])
    cand_local = np.concatenate([local[eem], local[ehad]])
    out = []
    for collection in neutrals:
        own, counts = keys(collection, None)
        kind = np.full(own.shape[0], 1 if collection == "EFlowPhoton" else 0, dtype=np.int64)
        own = np.column_stack([own, kind])
        _, inverse = np.unique(np.concatenate([candidates, own]), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        first = np.full(inverse.max() + 1 if inverse.size else 0, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, inverse[: len(candidates)], cand_local)
        found = first[inverse[len(candidates):]]
        out.append(ak.unflatten(np.where(found == np.iinfo(np.int64).max, -1, found), counts))
    return ak.concatenate(out, axis=1)


def _pfos(arrays: ak.Array, layout: _Layout, track_mask: ak.Array, cluster_mask: ak.Array) -> dict[str, ak.Array]:
    """The card's PF objects as pfo_* records: tracks first (one per track element), then the neutrals.

    With EFlow clusters (or PF candidates) every neutral object is itself a cluster element; with Tower
    clusters the neutral EFlow objects are placed on the towers they were made from (`_tower_match`),
    and a tower whose energy the particle flow gave to tracks has no object of its own.
    """
    track_colls = layout.tracks
    t_pt = _select(arrays, track_colls, "PT", track_mask)
    t_eta, t_phi = _select(arrays, track_colls, "Eta", track_mask), _select(arrays, track_colls, "Phi", track_mask)
    t_mass = (_select(arrays, track_colls, "Mass", track_mask) if all(f"{c}.Mass" in arrays.fields
              for c in track_colls) else ak.zeros_like(t_pt))
    t_pz = pz_from_pt_eta(t_pt, t_eta)
    t_e = np.sqrt(t_pt**2 + t_pz**2 + t_mass**2)
    t_pid = _select(arrays, track_colls, "PID", track_mask)
    t_q = _select(arrays, track_colls, "Charge", track_mask)

    if layout.pfo_neutrals:
        neutral_colls, neutral_mask = layout.pfo_neutrals, None
        cluster_idx = _tower_match(arrays, layout.clusters[0], cluster_mask, layout.pfo_neutrals)
    else:
        neutral_colls, neutral_mask = layout.clusters, cluster_mask
        cluster_idx = None
    c_e = _select(arrays, neutral_colls, "E", neutral_mask)
    c_eta = _select(arrays, neutral_colls, "Eta", neutral_mask)
    c_phi = _select(arrays, neutral_colls, "Phi", neutral_mask)
    c_pt = c_e / np.cosh(ak.where(abs(c_eta) > 700.0, 700.0, c_eta))
    if layout.mode == "eflow":
        photon = ak.concatenate([ak.full_like(arrays[f"{c}.E"], c == "EFlowPhoton", dtype=bool)
                                 for c in neutral_colls], axis=1)
        c_pid = ak.where(photon, 22, 130)
        c_pid = c_pid if neutral_mask is None else c_pid[neutral_mask]
    else:
        c_pid = _select(arrays, neutral_colls, "PID", neutral_mask)
    if cluster_idx is None:
        cluster_idx = ak.local_index(c_e, axis=1)

    def join(track_values: ak.Array, cluster_values: ak.Array, dtype: type) -> ak.Array:
        return ak.values_astype(ak.concatenate([track_values, cluster_values], axis=1), dtype)

    track_idx = ak.local_index(t_pt, axis=1)
    return {
        "pfo_pdgid": join(t_pid, c_pid, np.int32),
        "pfo_charge": join(t_q, ak.zeros_like(c_e), np.float32),
        "pfo_px": join(t_pt * np.cos(t_phi), c_pt * np.cos(c_phi), np.float32),
        "pfo_py": join(t_pt * np.sin(t_phi), c_pt * np.sin(c_phi), np.float32),
        "pfo_pz": join(t_pz, c_e * np.tanh(c_eta), np.float32),
        "pfo_energy": join(t_e, c_e, np.float32),
        "pfo_track_idx": join(track_idx, ak.zeros_like(c_e, dtype=np.int64) - 1, np.int32),
        "pfo_cluster_idx": join(ak.zeros_like(t_pt, dtype=np.int64) - 1, cluster_idx, np.int32),
    }

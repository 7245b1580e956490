"""A small EDM4hep file in the layout of the Key4HEP CLIC reconstruction, written with uproot.

No public CLIC reconstruction file is small enough to ship, so the EDM4hep reader is tested on this
one: the collections and member names of the CLIC output (MCParticles with parent relations,
SiTracks_Refitted with its TrackState vector, PandoraClusters with subdetector energies, PandoraPFOs,
and the track/cluster truth links), in either link layout. Members are written as `coll.member`
top-level branches (uproot cannot write podio's split sub-branches); the reader accepts both.

Event 0 holds a K0S that decays in flight (status 1, no deposit) into two simulator-created pions, one
of which leaves a track: the target rule must replace the K0S by that pion. Event 1 holds one photon.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

# MCParticles of event 0: index → (PDG, generatorStatus, charge, mass, p, first parent)
EVENT0_MC = [
    (23, 2, 0.0, 91.19, (0.0, 0.0, 0.0), -1),  # 0 Z
    (211, 1, 1.0, 0.13957, (3.0, 4.0, 1.0), 0),  # 1 pi+: track 0 and a deposit in cluster 0
    (22, 1, 0.0, 0.0, (0.0, 5.0, 0.0), 0),  # 2 photon: 10 % of cluster 0, all of cluster 1
    (310, 1, 0.0, 0.497611, (2.0, 0.0, 2.0), 0),  # 3 K0S: decays in flight, no element
    (211, 0, 1.0, 0.13957, (1.5, 0.2, 1.4), 3),  # 4 pi+ from the K0S: track 1
    (-211, 0, -1.0, 0.13957, (0.5, -0.2, 0.6), 3),  # 5 pi- from the K0S: reaches nothing
    (12, 1, 0.0, 0.0, (0.0, 0.0, 3.0), 0),  # 6 neutrino
]
EVENT1_MC = [(22, 1, 0.0, 0.0, (0.0, 0.0, 7.0), -1)]

# Track states: track 0 has (AtFirstHit, AtIP), track 1 only AtIP. (location, D0, phi, omega, Z0, tanLambda, time)
EVENT0_STATES = [
    (2, 9.0, 0.5, 9e-4, 9.0, 0.5, 9.0),
    (1, 0.01, 0.9273, 2.398e-4, 0.02, 0.2, 0.1),
    (1, -0.03, 0.1326, 7.9e-4, 0.04, 0.93, 0.2),
]
CLUSTER_ENERGY = [[10.0, 5.0], [7.0]]
SUBDETECTOR = [[(6.0, 3.0, 1.0), (5.0, 0.0, 0.0)], [(7.0, 0.0, 0.0)]]
CLUSTER_POSITION = [[(900.0, 1200.0, 300.0), (0.0, 1500.0, 0.0)], [(10.0, 0.0, 2307.0)]]
TRACK_LINKS = [[(0, 1, 1.0), (1, 4, 0.7), (1, 5, 0.3)], []]  # (track, mc, weight)
CLUSTER_LINKS = [[(0, 1, 0.9), (0, 2, 0.1), (1, 2, 1.0)], [(0, 0, 1.0)]]  # (cluster, mc, weight)
# PFOs: (PDG, charge, p, energy, tracks, clusters)
PFOS = [
    [(211, 1.0, (3.0, 4.0, 1.0), 5.1, [0], [0]), (22, 0.0, (0.0, 4.8, 0.1), 4.8, [], [1]),
     (211, 1.0, (1.4, 0.2, 1.3), 1.9, [1], [])],
    [(22, 0.0, (0.0, 0.1, 6.9), 6.9, [], [0])],
]
MC_ID, TRACK_ID, CLUSTER_ID = 11, 22, 33


def _rec(fields: dict[str, ak.Array]) -> ak.Array:
    """Per-object records of jagged members (zipped down to the object level only)."""
    return ak.zip(fields, depth_limit=2)


def _jag(rows: list[list], dtype: type) -> ak.Array:
    return ak.values_astype(ak.Array(rows), dtype)


def _relations(per_event: list[list[list[int]]], target_id: int) -> tuple[ak.Array, ak.Array, ak.Array]:
    """begin, end per object and the flat index vector per event, from per-object index lists."""
    begins, ends, vectors = [], [], []
    for objects in per_event:
        lengths = [len(o) for o in objects]
        start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if lengths else []
        begins.append([int(b) for b in start])
        ends.append([int(b) + n for b, n in zip(start, lengths, strict=True)])
        vectors.append([i for o in objects for i in o])
    vector = _rec({"index": _jag(vectors, np.int32),
                     "collectionID": ak.values_astype(ak.zeros_like(_jag(vectors, np.int32)) + target_id, np.uint32)})
    return _jag(begins, np.int32), _jag(ends, np.int32), vector


def write_clic_fixture(path: Path, *, link_layout: str = "from_to", omit: tuple[str, ...] = ()) -> Path:
    """Write the two-event fixture; `link_layout` "from_to" (EDM4hep ≥ 0.99) or "rec_sim" (older).

    `omit` leaves whole collections out (by their CLIC name), to test the missing-collection error.
    """
    reco_end, mc_end = {"from_to": ("from", "to"), "rec_sim": ("rec", "sim")}[link_layout]
    mcs = [EVENT0_MC, EVENT1_MC]
    branches: dict[str, ak.Array] = {}

    parents = [[[m[5]] if m[5] >= 0 else [] for m in ev] for ev in mcs]
    daughters = [[[j for j, d in enumerate(ev) if d[5] == i] for i in range(len(ev))] for ev in mcs]
    p_begin, p_end, p_vec = _relations(parents, MC_ID)
    d_begin, d_end, d_vec = _relations(daughters, MC_ID)
    mc = {
        "PDG": _jag([[m[0] for m in ev] for ev in mcs], np.int32),
        "generatorStatus": _jag([[m[1] for m in ev] for ev in mcs], np.int32),
        "simulatorStatus": _jag([[0 for _ in ev] for ev in mcs], np.int32),
        "charge": _jag([[m[2] for m in ev] for ev in mcs], np.float32),
        "mass": _jag([[m[3] for m in ev] for ev in mcs], np.float64),
        **{f"vertex.{c}": _jag([[0.0 for _ in ev] for ev in mcs], np.float64) for c in "xyz"},
        **{f"momentum.{c}": _jag([[m[4][k] for m in ev] for ev in mcs], np.float32) for k, c in enumerate("xyz")},
        "parents_begin": p_begin, "parents_end": p_end, "daughters_begin": d_begin, "daughters_end": d_end,
    }
    branches["MCParticles"] = _rec(mc)
    branches["_MCParticles_parents"] = p_vec
    branches["_MCParticles_daughters"] = d_vec

    if "SiTracks_Refitted" not in omit:
        states = [EVENT0_STATES, []]
        names = ("location", "D0", "phi", "omega", "Z0", "tanLambda", "time")
        branches["SiTracks_Refitted"] = _rec({
            "type": _jag([[0, 0], []], np.int32),
            "chi2": _jag([[12.5, 3.0], []], np.float32),
            "ndf": _jag([[10, 8], []], np.int32),
            "trackStates_begin": _jag([[0, 2], []], np.int32),
            "trackStates_end": _jag([[2, 3], []], np.int32),
        })
        branches["_SiTracks_Refitted_trackStates"] = _rec({
            n: _jag([[s[k] for s in ev] for ev in states], np.int32 if n == "location" else np.float32)
            for k, n in enumerate(names)})

    if "PandoraClusters" not in omit:
        sub = [[list(c) for c in ev] for ev in SUBDETECTOR]
        s_begin, s_end, _ = _relations([[[0] * len(c) for c in ev] for ev in sub], 0)
        branches["PandoraClusters"] = _rec({
            "energy": _jag(CLUSTER_ENERGY, np.float32),
            **{f"position.{c}": _jag([[p[k] for p in ev] for ev in CLUSTER_POSITION], np.float32)
               for k, c in enumerate("xyz")},
            "iTheta": _jag([[0.3, 1.5], [0.0]], np.float32),
            "subdetectorEnergies_begin": s_begin, "subdetectorEnergies_end": s_end,
            "hits_begin": _jag([[0, 40], [0]], np.int32), "hits_end": _jag([[40, 52], [9]], np.int32),
        })
        branches["_PandoraClusters_subdetectorEnergies"] = _jag([[e for c in ev for e in c] for ev in sub], np.float32)

    pt_b, pt_e, pt_vec = _relations([[p[4] for p in ev] for ev in PFOS], TRACK_ID)
    pc_b, pc_e, pc_vec = _relations([[p[5] for p in ev] for ev in PFOS], CLUSTER_ID)
    branches["PandoraPFOs"] = _rec({
        "PDG": _jag([[p[0] for p in ev] for ev in PFOS], np.int32),
        "charge": _jag([[p[1] for p in ev] for ev in PFOS], np.float32),
        **{f"momentum.{c}": _jag([[p[2][k] for p in ev] for ev in PFOS], np.float32) for k, c in enumerate("xyz")},
        "energy": _jag([[p[3] for p in ev] for ev in PFOS], np.float32),
        "tracks_begin": pt_b, "tracks_end": pt_e, "clusters_begin": pc_b, "clusters_end": pc_e,
    })
    branches["_PandoraPFOs_tracks"] = pt_vec
    branches["_PandoraPFOs_clusters"] = pc_vec

    for link, rows, reco_id in (("SiTracksMCTruthLink", TRACK_LINKS, TRACK_ID),
                                ("ClusterMCTruthLink", CLUSTER_LINKS, CLUSTER_ID)):
        if link in omit:
            continue
        branches[link] = _rec({"weight": _jag([[r[2] for r in ev] for ev in rows], np.float32)})
        for end, col, cid in ((reco_end, 0, reco_id), (mc_end, 1, MC_ID)):
            index = _jag([[r[col] for r in ev] for ev in rows], np.int32)
            branches[f"_{link}_{end}"] = _rec({"index": index,
                                                  "collectionID": ak.values_astype(ak.zeros_like(index) + cid, np.uint32)})

    with uproot.recreate(path) as fh:
        fh.mktree("events", {k: v.type.content for k, v in branches.items()},
                  field_name=lambda outer, inner: f"{outer}.{inner}",
                  counter_name=lambda counted: f"{counted}_size")
        fh["events"].extend(branches)
        fh["podio_metadata"] = {"edm4hep_version": np.array([1], dtype=np.int32)}
    return path

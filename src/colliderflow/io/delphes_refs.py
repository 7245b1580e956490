"""Truth references and momenta of Delphes objects, read the same way for every card.

Delphes links a reconstructed object to the generator particles it came from in one of two ways,
fixed by the object's class (classes/DelphesClasses.h):

* a single `TRef Particle` (Track, and so EFlowTrack; Electron, Muon): uproot reads it as a record
  with the field `ref`, the referenced object's fUniqueID;
* a `TRefArray Particles` (Tower, and so EFlowPhoton / EFlowNeutralHadron; ParticleFlowCandidate,
  Photon, Jet): uproot reads it as a record whose field `refs` lists the fUniqueIDs.

`truth_refs` turns either into [events, objects, refs] indices of the `Particle` branch. A branch that
is present but does not read as a reference is a ValueError naming it: without it every target of
that collection would silently be "no truth". A reference to an object the file does not store
(pile-up particles are not written to `Particle`) is dropped and counted.

Delphes stores η = ±999.9 for objects along the beam axis (pT = 0, e.g. candidates PUPPI weighted to
zero); `pz_from_pt_eta` never turns that into inf or NaN.
"""

from __future__ import annotations

from typing import Final

import awkward as ak
import numpy as np


GEN_BRANCH: Final = "Particle"
SINGLE_REF: Final = "Particle"
# TRef values carry the process-id slot in their top byte; the object number is the low 24 bits.
_UID_MASK: Final = 0x00FFFFFF
REF_ARRAY: Final = "Particles"
# Delphes writes |η| = 999.9 when cos θ = ±1; any real η is far below this.
_BEAM_AXIS_ETA: Final = 999.0


def resolve_refs(uids: ak.Array, refs: ak.Array) -> tuple[ak.Array, int]:
    """Turn [events, jets, refs] TRef values into indices of the objects whose fUniqueID they name.

    `uids` is [events, objects]; a reference is looked up only among its own event's objects. All events
    are done in one sorted search on (event, uid) keys. Returns the index array (unmatched references
    dropped, order kept) and the number dropped.
    """
    n_events = len(uids)
    n_objects = ak.to_numpy(ak.num(uids, axis=1)).astype(np.int64)
    obj_offsets = np.zeros(n_events + 1, dtype=np.int64)
    np.cumsum(n_objects, out=obj_offsets[1:])
    obj_event = np.repeat(np.arange(n_events, dtype=np.int64), n_objects)
    obj_uid = ak.to_numpy(ak.flatten(uids, axis=1)).astype(np.int64) & _UID_MASK
    obj_keys = (obj_event << 32) | obj_uid
    order = np.argsort(obj_keys, kind="stable")
    sorted_keys = obj_keys[order]

    jets_per_event = ak.to_numpy(ak.num(refs, axis=1)).astype(np.int64)
    refs_per_jet = ak.to_numpy(ak.flatten(ak.num(refs, axis=2), axis=1)).astype(np.int64)
    jet_event = np.repeat(np.arange(n_events, dtype=np.int64), jets_per_event)
    ref_event = np.repeat(jet_event, refs_per_jet)
    ref_uid = ak.to_numpy(ak.flatten(refs, axis=None)).astype(np.int64) & _UID_MASK
    ref_keys = (ref_event << 32) | ref_uid
    pos = np.searchsorted(sorted_keys, ref_keys)
    pos_ok = np.minimum(pos, max(len(sorted_keys) - 1, 0))
    found = (
        (pos < len(sorted_keys)) & (sorted_keys[pos_ok] == ref_keys)
        if len(sorted_keys)
        else np.zeros(len(ref_keys), bool)
    )
    local = order[pos_ok[found]] - obj_offsets[ref_event[found]]
    ref_jet = np.repeat(np.arange(len(refs_per_jet)), refs_per_jet)
    kept_per_jet = np.bincount(ref_jet[found], minlength=len(refs_per_jet))
    per_jet = ak.unflatten(local, kept_per_jet)
    return ak.unflatten(per_jet, jets_per_event), int((~found).sum())


def reference_leaf(collection: str, available: set[str]) -> str | None:
    """The truth-reference branch a collection has (`<c>.Particle` or `<c>.Particles`), or None."""
    for leaf in (SINGLE_REF, REF_ARRAY):
        if f"{collection}.{leaf}" in available:
            return f"{collection}.{leaf}"
    return None


def _raw_refs(where: str, name: str, array: ak.Array) -> ak.Array:
    """[events, objects, refs] fUniqueIDs of a TRef or TRefArray branch; ValueError naming it otherwise."""
    fields = array.fields
    if name.endswith(f".{SINGLE_REF}"):
        if "ref" not in fields:
            raise ValueError(f"{where}: {name} is not a TRef uproot can read (type {array.type}); "
                             f"no truth can be attached to {name.split('.')[0]}")
        values = array.ref
        return ak.from_regular(values[:, :, np.newaxis], axis=2)
    if "refs" not in fields:
        raise ValueError(f"{where}: {name} is not a TRefArray uproot can read (type {array.type}); "
                         f"no truth can be attached to {name.split('.')[0]}")
    return array.refs


def truth_refs(where: str, arrays: ak.Array, name: str, gen_uid: ak.Array) -> tuple[ak.Array, int]:
    """Indices into `Particle` of each object's references in branch `name`, and how many matched nothing.

    `where` names the file in errors. Both reference kinds are read; a branch whose values are not
    integers after reading is refused too (a float column under that name would give wrong links).
    """
    raw = _raw_refs(where, name, arrays[name])
    content = ak.flatten(raw, axis=None)
    if not np.issubdtype(ak.to_numpy(content).dtype, np.integer):
        raise ValueError(f"{where}: {name} holds {ak.to_numpy(content).dtype} values, not object references")
    try:
        return resolve_refs(gen_uid, raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: cannot resolve the references of {name} against "
                         f"{GEN_BRANCH}.fUniqueID ({exc})") from exc


def pz_from_pt_eta(pt: ak.Array | np.ndarray, eta: ak.Array | np.ndarray,
                   p: ak.Array | np.ndarray | None = None) -> ak.Array | np.ndarray:
    """pT·sinh η, finite for Delphes' along-the-beam entries (|η| = 999.9).

    Such an entry has pT = 0; its |pz| is the total momentum `p` when the class stores one (Track,
    ParticleFlowCandidate), else 0 — which is exact for the zero vectors of PUPPI-removed candidates.
    """
    beam = abs(eta) >= _BEAM_AXIS_ETA
    safe_eta = ak.where(beam, 0.0, eta) if isinstance(eta, ak.Array) else np.where(beam, 0.0, eta)
    along = np.sign(eta) * p if p is not None else 0.0 * pt
    if isinstance(pt, ak.Array) or isinstance(eta, ak.Array):
        return ak.where(beam, along, pt * np.sinh(safe_eta))
    return np.where(beam, along, pt * np.sinh(safe_eta))

"""Truth → one target particle (or none) per element, following the MLPF CLIC target definition.

Targets are the visible final-state particles (status 1, not neutrinos; where the source records
parents, a non-interacting one is replaced by its interacting simulator-created children, see
`target_mask`). Each is attached to exactly
one element, so that a network predicting one particle per element can in principle reproduce the
event:

* a particle with a track goes to its track (the first one, if a particle made several);
* otherwise to the cluster holding most of its deposited energy (ties: the lower cluster index);
* otherwise it reached no element, and its energy is counted in `gen_unassigned_energy` if it flew
  inside the detector's polar acceptance (|cos θ| ≤ ACCEPTANCE_COS_THETA); outside it (initial-state
  photons along the beam, beam-pipe losses) no detector could have seen it, and it is not counted.

When several particles land on one element their four-momenta are summed into one target, and the
class and charge are those of the most energetic of them (ties: the lower truth index). This is what
makes two photons merged into one cluster a single, heavier photon target.

Class and charge are then remapped by the element that hosts the target, as particleflow's
postprocessing does (`map_charged_to_neutral` / `map_neutral_to_charged` in
mlpf/data/key4hep/postprocessing.py), because only what the element can show is learnable:

* on a cluster: electron or photon → photon, anything else (charged hadron, muon, neutral hadron)
  → neutral hadron, charge 0 (a charged particle without a track looks like a neutral one);
* on a track: photon or neutral hadron → charged hadron (a neutral particle owns a track only as a
  conversion leg or a fake), electrons and muons keep their class. Where the truth charge is 0 the
  target takes the sign of the track's measured charge, so every track-hosted target is charged. jet_idx is the index of the
target jet the particle falls into (see `jet_index`), −1 outside every jet and on empty elements.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numba
import numpy as np

from colliderflow.kinematics import METRIC_DELTA_R, METRIC_MINUS_COS, Momenta, nearest_in_events
from colliderflow.ntuplize.elements import ElementLayout, flat
from colliderflow.schema import N_PARTICLE_FEATURES, NEUTRINO_PDGIDS, PF

CLS_NONE, CLS_CHARGED_HADRON, CLS_NEUTRAL_HADRON, CLS_PHOTON, CLS_ELECTRON, CLS_MUON = range(6)

# Below this pT (GeV) a direction's η is taken at this pT: a particle exactly along the beam keeps a
# large finite η instead of inf, and pT·sinh(η) still gives back its pz.
_PT_FLOOR = 1e-9


def particle_class(pdgid: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """CLASS_NAMES index of truth particles: e and μ by |pdg id|, photons, else by charge."""
    out = np.empty(len(pdgid), dtype=np.int64)
    _particle_class_kernel(np.asarray(pdgid), np.asarray(charge), out)
    return out


@numba.njit(cache=True, nogil=True)
def _particle_class_kernel(pdgid, charge, out):
    for i in range(pdgid.size):
        apdg = abs(pdgid[i])
        if apdg == 11:
            out[i] = CLS_ELECTRON
        elif apdg == 13:
            out[i] = CLS_MUON
        elif apdg == 22:
            out[i] = CLS_PHOTON
        elif charge[i] != 0:
            out[i] = CLS_CHARGED_HADRON
        else:
            out[i] = CLS_NEUTRAL_HADRON


def remap_by_element(cls: np.ndarray, charge: np.ndarray, on_track: np.ndarray, track_charge: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(class, charge) of targets after the particleflow element rule (see the module docstring).

    `on_track` says which targets sit on a track; `track_charge` is the measured charge of that track
    (ignored elsewhere).
    """
    cls = np.asarray(cls, dtype=np.int64)
    on_track = np.asarray(on_track, dtype=bool)
    egamma = (cls == CLS_PHOTON) | (cls == CLS_ELECTRON)
    on_cluster_cls = np.where(egamma, CLS_PHOTON, CLS_NEUTRAL_HADRON)
    neutral = (cls == CLS_PHOTON) | (cls == CLS_NEUTRAL_HADRON)
    on_track_cls = np.where(neutral, CLS_CHARGED_HADRON, cls)
    charge = np.asarray(charge, dtype=np.float64)
    track_charge = np.sign(np.asarray(track_charge, dtype=np.float64))
    on_track_charge = np.where(charge != 0, charge, track_charge)
    return (np.where(on_track, on_track_cls, on_cluster_cls),
            np.where(on_track, on_track_charge, 0.0))


def pt_eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pT, η, φ) of momenta; η stays finite along the beam axis (see _PT_FLOOR)."""
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / np.maximum(pt, _PT_FLOOR)), np.arctan2(py, px)


_NO_INDEX = np.iinfo(np.int64).max

# Polar acceptance of the tracker and calorimeters (CLICdet: down to θ ≈ 8°, arXiv:1812.07337): a truth
# particle beyond it that reached no element is outside the detector, not a reconstruction loss.
ACCEPTANCE_COS_THETA = 0.99


@dataclass(frozen=True)
class Targets:
    rows: np.ndarray  # [total elements, 8] float64, PARTICLE_FEATURES; jet_idx still −1 everywhere
    unassigned_energy: np.ndarray  # [events] GeV of visible truth energy in acceptance that reached no element
    n_visible: int  # visible truth particles in all events
    n_unassigned: int  # of which reached no element inside the acceptance


def _gen_offsets(n_gen: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(n_gen)]).astype(np.int64)


def visible_mask(events: ak.Array) -> np.ndarray:
    """Flat mask over all truth particles: status 1 and not a neutrino."""
    status = flat(events.gen_status, np.int64)
    apdg = np.abs(flat(events.gen_pdgid, np.int64))
    return (status == 1) & ~np.isin(apdg, NEUTRINO_PDGIDS)


def _argmax_per_group(group: np.ndarray, value: np.ndarray, item: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the smallest `item` among the entries of largest `value`; _NO_INDEX for empty groups.

    One compiled pass (numpy's ufunc.at, the alternative without sorting, is several times slower);
    the inputs need no particular order.
    """
    best = np.full(n_groups, _NO_INDEX, dtype=np.int64)
    _argmax_per_group_kernel(group, value, item, np.full(n_groups, -np.inf), best)
    return best


@numba.njit(cache=True, nogil=True)
def _argmax_per_group_kernel(group, value, item, top, best):
    for i in range(group.size):
        g = group[i]
        if value[i] > top[g] or (value[i] == top[g] and item[i] < best[g]):
            top[g] = value[i]
            best[g] = item[i]


def _min_per_group(group: np.ndarray, item: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group, the smallest `item`; _NO_INDEX for empty groups."""
    best = np.full(n_groups, _NO_INDEX, dtype=np.int64)
    _min_per_group_kernel(group, item, best)
    return best


@numba.njit(cache=True, nogil=True)
def _min_per_group_kernel(group, item, best):
    for i in range(group.size):
        best[group[i]] = min(best[group[i]], item[i])


def main_cluster_of_particles(events: ak.Array, layout: ElementLayout) -> np.ndarray:
    """Flat element index of the cluster holding each truth particle's largest deposit (ties: the lower
    cluster index); −1 for a particle that deposited nothing. Flat over the particles of all events."""
    n_gen = ak.to_numpy(ak.num(events.gen_pdgid, axis=1)).astype(np.int64)
    gen_off = _gen_offsets(n_gen)
    n_link = ak.to_numpy(ak.num(events.calolink_energy, axis=1)).astype(np.int64)
    link_event = np.repeat(np.arange(layout.n_events, dtype=np.int64), n_link)
    energy = flat(events.calolink_energy)
    keep = energy > 0
    gen = gen_off[link_event[keep]] + flat(events.calolink_gen_idx, np.int64)[keep]
    cluster = layout.cluster_offsets[link_event[keep]] + flat(events.calolink_cluster_idx, np.int64)[keep]
    best = _argmax_per_group(gen, energy[keep], layout.cluster_pos[cluster], int(gen_off[-1]))
    return np.where(best != _NO_INDEX, best, -1)


def element_of_particle(events: ak.Array, layout: ElementLayout) -> np.ndarray:
    """Flat element index of every truth particle (−1: neither a track nor a deposit)."""
    n_gen = ak.to_numpy(ak.num(events.gen_pdgid, axis=1)).astype(np.int64)
    gen_off = _gen_offsets(n_gen)
    n_total = int(gen_off[-1])

    # The first track of the particle, which wins over any deposit.
    track_gen = flat(events.track_gen_idx, np.int64)
    real = track_gen >= 0
    by_track = _min_per_group(gen_off[layout.track_event[real]] + track_gen[real], layout.track_pos[real], n_total)
    return np.where(by_track != _NO_INDEX, by_track, main_cluster_of_particles(events, layout))


SIMULATOR_CREATED_STATUS = 0  # generatorStatus of particles the detector simulation created


def target_mask(events: ak.Array, elem: np.ndarray) -> np.ndarray:
    """Flat mask of the target particles: visible status-1 particles, with the MLPF replacement rule.

    A status-1 particle that reached no element (non-interacting: it decayed in flight, or converted,
    before leaving a track or a deposit) is replaced by its direct children created by the simulator
    (status 0) that did reach an element. Only sources with a parent relation (gen_parent_idx, e.g.
    EDM4hep) can apply it; the builtin source stores final-state particles only, so nothing changes
    there. A non-interacting particle without interacting children stays a (lost) target.
    """
    visible = visible_mask(events)
    if "gen_parent_idx" not in events.fields:
        return visible
    n_gen = ak.to_numpy(ak.num(events.gen_pdgid, axis=1)).astype(np.int64)
    gen_off = _gen_offsets(n_gen)
    gen_event = np.repeat(np.arange(n_gen.size, dtype=np.int64), n_gen)
    parent = flat(events.gen_parent_idx, np.int64)
    status = flat(events.gen_status, np.int64)
    apdg = np.abs(flat(events.gen_pdgid, np.int64))
    interacting = elem >= 0
    child = (status == SIMULATOR_CREATED_STATUS) & interacting & (parent >= 0) & ~np.isin(apdg, NEUTRINO_PDGIDS)
    parent_flat = np.where(child, gen_off[gen_event] + np.maximum(parent, 0), 0)
    child &= visible[parent_flat] & ~interacting[parent_flat]
    replaced = np.zeros(visible.size, dtype=bool)
    replaced[parent_flat[child]] = True
    return (visible & ~replaced) | child


def assign_targets(events: ak.Array, layout: ElementLayout) -> Targets:
    """Target rows for every element of every event, and the energy that reached no element."""
    n_gen = ak.to_numpy(ak.num(events.gen_pdgid, axis=1)).astype(np.int64)
    gen_event = np.repeat(np.arange(layout.n_events, dtype=np.int64), n_gen)
    elem = element_of_particle(events, layout)
    visible = target_mask(events, elem)

    energy = flat(events.gen_energy)
    px, py, pz = flat(events.gen_px), flat(events.gen_py), flat(events.gen_pz)
    p = np.sqrt(px * px + py * py + pz * pz)
    inside = np.abs(pz) <= ACCEPTANCE_COS_THETA * p
    lost = visible & (elem < 0) & inside
    unassigned = np.bincount(gen_event[lost], weights=energy[lost], minlength=layout.n_events)

    sel = np.flatnonzero(visible & (elem >= 0))
    e = elem[sel]
    total = layout.total
    px = np.bincount(e, weights=flat(events.gen_px)[sel], minlength=total)
    py = np.bincount(e, weights=flat(events.gen_py)[sel], minlength=total)
    pz = np.bincount(e, weights=flat(events.gen_pz)[sel], minlength=total)
    esum = np.bincount(e, weights=energy[sel], minlength=total)

    # The most energetic particle of each element (ties: the lower truth index) gives class and charge.
    lead_gen = _argmax_per_group(e, energy[sel], sel, total)
    lead_elem = np.flatnonzero(lead_gen != _NO_INDEX)
    lead_gen = lead_gen[lead_elem]
    charge = flat(events.gen_charge)[lead_gen]

    px, py, pz = px[lead_elem], py[lead_elem], pz[lead_elem]
    pt = np.hypot(px, py)
    safe_pt = np.maximum(pt, _PT_FLOOR)
    along_beam = pt == 0
    block = np.empty((lead_elem.size, N_PARTICLE_FEATURES), dtype=np.float64)
    # Remap by the hosting element: a flat element index that is some track's position is a track.
    track_slot = np.full(total, -1, dtype=np.int64)
    track_slot[layout.track_pos] = np.arange(layout.track_pos.size, dtype=np.int64)
    slot = track_slot[lead_elem]
    on_track = slot >= 0
    measured = np.zeros(lead_elem.size)
    measured[on_track] = flat(events.track_charge)[slot[on_track]]
    cls, charge = remap_by_element(particle_class(flat(events.gen_pdgid, np.int64)[lead_gen], charge),
                                   charge, on_track, measured)
    block[:, PF["cls_id"]] = cls
    block[:, PF["charge"]] = charge
    block[:, PF["pt"]] = pt
    block[:, PF["eta"]] = np.arcsinh(pz / safe_pt)
    block[:, PF["sin_phi"]] = np.where(along_beam, 0.0, py / safe_pt)
    block[:, PF["cos_phi"]] = np.where(along_beam, 1.0, px / safe_pt)
    block[:, PF["energy"]] = esum[lead_elem]
    block[:, PF["jet_idx"]] = -1
    rows = np.zeros((total, N_PARTICLE_FEATURES), dtype=np.float64)
    rows[:, PF["jet_idx"]] = -1
    rows[lead_elem] = block
    return Targets(rows, unassigned, int(visible.sum()), int(lost.sum()))


def block_momenta(rows: np.ndarray, layout: ElementLayout) -> Momenta:
    """The particles (cls_id != 0) of flat [total, 8] rows, event by event.

    The same particles as `kinematics.particles_from_block` on the unflattened block, computed on flat numpy.
    """
    keep = rows[:, PF["cls_id"]] != 0
    element_event = np.repeat(np.arange(layout.n_events, dtype=np.int64), layout.n_elements)
    counts = np.bincount(element_event[keep], minlength=layout.n_events).astype(np.int64)
    chosen = rows[keep]
    phi = np.arctan2(chosen[:, PF["sin_phi"]], chosen[:, PF["cos_phi"]])
    return Momenta(chosen[:, PF["pt"]], chosen[:, PF["eta"]], phi, chosen[:, PF["energy"]], counts)


def block_particles(rows: np.ndarray, layout: ElementLayout) -> ak.Array:
    """`block_momenta` as records (pt, eta, phi, energy) [events, particles]."""
    return block_momenta(rows, layout).records()


def visible_momenta(events: ak.Array) -> Momenta:
    """Visible truth particles (pt, eta, phi, energy), event by event, for gen jets and MET."""
    visible = visible_mask(events)
    n_gen = ak.to_numpy(ak.num(events.gen_pdgid, axis=1)).astype(np.int64)
    gen_event = np.repeat(np.arange(len(n_gen), dtype=np.int64), n_gen)
    counts = np.bincount(gen_event[visible], minlength=len(n_gen)).astype(np.int64)
    pt, eta, phi = pt_eta_phi(flat(events.gen_px)[visible], flat(events.gen_py)[visible],
                              flat(events.gen_pz)[visible])
    return Momenta(pt, eta, phi, flat(events.gen_energy)[visible], counts)


def visible_particles(events: ak.Array) -> ak.Array:
    """`visible_momenta` as records (pt, eta, phi, energy) [events, particles]."""
    return visible_momenta(events).records()


def _unit_vectors(eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inv_cosh = 1.0 / np.cosh(eta)
    return np.cos(phi) * inv_cosh, np.sin(phi) * inv_cosh, np.tanh(eta)


def jet_index(rows: np.ndarray, offsets: np.ndarray, jets: ak.Array | Momenta, *, algorithm: str, radius: float,
              phi: np.ndarray | None = None) -> np.ndarray:
    """Per element row, the index of the nearest jet whose axis is within `radius`, else −1.

    `rows` are the flat [total elements, 8] particle rows of all events, event i owning
    rows[offsets[i]:offsets[i + 1]]; `jets` are [events, jets] records (eta, phi) or `Momenta`,
    indices count within the event. For ee_genkt the distance is the opening angle (the algorithm's
    own measure), for antikt ΔR in (η, φ). This is a definition of membership in its own right, not
    the clustering's constituent lists: it also places the baseline candidates, which were never
    clustered, and where two jets overlap a particle goes to the closer axis. Rows with cls_id 0 get −1.
    `phi`, if given, is arctan2(sin_phi, cos_phi) of the rows with cls_id != 0 (`block_momenta` has it).
    """
    out = np.full(rows.shape[0], -1, dtype=np.int64)
    valid = np.flatnonzero(rows[:, PF["cls_id"]] != 0)
    n_events = offsets.size - 1
    if isinstance(jets, Momenta):
        n_jets, jet_eta, jet_phi = jets.counts, jets.eta.astype(np.float64), jets.phi.astype(np.float64)
    else:
        n_jets, jet_eta, jet_phi = ak.to_numpy(ak.num(jets.eta, axis=1)), flat(jets.eta), flat(jets.phi)
    n_jets = np.asarray(n_jets, dtype=np.int64)
    jet_event = np.repeat(np.arange(n_events, dtype=np.int64), n_jets)
    jet_first = np.concatenate([[0], np.cumsum(n_jets)[:-1]]).astype(np.int64)
    elem_event = np.repeat(np.arange(n_events, dtype=np.int64), np.diff(offsets))[valid]
    eta = rows[valid, PF["eta"]]
    if phi is None:
        phi = np.arctan2(rows[valid, PF["sin_phi"]], rows[valid, PF["cos_phi"]])
    if algorithm == "ee_genkt":
        # Nearest in opening angle = largest cosine; −cos serves as the distance, −cos R as its limit.
        e, j = _unit_vectors(eta, phi), _unit_vectors(jet_eta, jet_phi)
        best = nearest_in_events(elem_event, np.arccos(e[2]), e, jet_event, np.arccos(j[2]), j,
                                 metric=METRIC_MINUS_COS, window=radius, max_distance=-np.cos(radius))
    else:
        best = nearest_in_events(elem_event, eta, (eta, phi), jet_event, jet_eta, (jet_eta, jet_phi),
                                 metric=METRIC_DELTA_R, window=radius, max_distance=radius)
    found = best >= 0
    out[valid[found]] = best[found] - jet_first[jet_event[best[found]]]
    return out

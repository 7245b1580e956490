"""Array kernels on many events at once: particle blocks → four-vectors, jets, MET, jet matching.

Shared by the ntuplizer (gen and target jets) and the evaluation (jets from predicted and baseline
particles), so that every set of jets in the project is built the same way. The e+e- clustering is a
compiled copy of FastJet's own procedure (same jets to the bit, without a Python object per particle),
and the per-event nearest-neighbour search used for track–cluster links and jet membership is compiled
too: both used to cost more than reading and writing a shard.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import awkward as ak
import numba
import numpy as np

from colliderflow.schema import PF

_ALGORITHMS = ("ee_genkt", "antikt")
# The project's event-jet definition, written once: the ntuplizer's gen and target jets (ntuplize.jets in
# the shipped configs), the evaluation's jets from predicted particles, and the defaults below.
EVENT_JETS: Final[Mapping[str, Any]] = MappingProxyType(
    {"algorithm": "ee_genkt", "radius": 0.4, "p": -1.0, "min_pt": 5.0}
)


def particles_from_block(block: ak.Array) -> ak.Array:
    """Particles of a per-element block ([events, elements, 8]) with cls_id != 0, as (pt, eta, phi, energy)."""
    cls_id = block[:, :, PF["cls_id"]]
    keep = block[cls_id != 0]
    phi = np.arctan2(keep[:, :, PF["sin_phi"]], keep[:, :, PF["cos_phi"]])
    return ak.zip(
        {
            "pt": keep[:, :, PF["pt"]],
            "eta": keep[:, :, PF["eta"]],
            "phi": phi,
            "energy": keep[:, :, PF["energy"]],
        }
    )


def _to_cartesian(particles: ak.Array) -> dict[str, ak.Array]:
    pt, eta, phi = particles.pt, particles.eta, particles.phi
    return {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": pt * np.sinh(eta),
        "E": particles.energy,
    }


def missing_et(particles: ak.Array) -> np.ndarray:
    """|−Σ pT| per event, GeV: shape [events]."""
    c = _to_cartesian(particles)
    return np.hypot(ak.to_numpy(ak.sum(c["px"], axis=1)), ak.to_numpy(ak.sum(c["py"], axis=1))).astype(np.float32)


@contextlib.contextmanager
def stdout_fd_silenced() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: FastJet's C++ banner bypasses Python's sys.stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class Momenta:
    """Four-vectors (pt, eta, phi, energy) of many events as flat columns; event i owns the next counts[i].

    The flat form of the [events, particles] records the rest of this module takes: the ntuplizer
    builds particles and jets this way, without a detour through awkward.
    """

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray
    counts: np.ndarray  # int64 [events]

    @classmethod
    def from_records(cls, records: ak.Array) -> Momenta:
        flat = ak.flatten(records, axis=1)
        columns = (ak.to_numpy(flat[name]) for name in ("pt", "eta", "phi", "energy"))
        return cls(*columns, ak.to_numpy(ak.num(records, axis=1)).astype(np.int64))

    @classmethod
    def concatenate(cls, parts: list[Momenta]) -> Momenta:
        """The events of all parts, one part after the other."""
        fields = ("pt", "eta", "phi", "energy", "counts")
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in fields))

    @property
    def n_events(self) -> int:
        return self.counts.size

    def events(self, start: int, stop: int) -> Momenta:
        """Events start..stop−1."""
        first, last = int(self.counts[:start].sum()), int(self.counts[:stop].sum())
        return Momenta(self.pt[first:last], self.eta[first:last], self.phi[first:last], self.energy[first:last],
                       self.counts[start:stop])

    def records(self) -> ak.Array:
        """As [events, particles] records (pt, eta, phi, energy)."""
        columns = {"pt": self.pt, "eta": self.eta, "phi": self.phi, "energy": self.energy}
        return ak.zip({k: ak.unflatten(v, self.counts) for k, v in columns.items()})

    def cartesian(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(px, py, pz, E) in float64, computed in the columns' own precision first (as `_to_cartesian`)."""
        f64 = np.float64
        pt = self.pt
        return (np.asarray(pt * np.cos(self.phi), dtype=f64), np.asarray(pt * np.sin(self.phi), dtype=f64),
                np.asarray(pt * np.sinh(self.eta), dtype=f64), np.asarray(self.energy, dtype=f64))

    def missing_et(self) -> np.ndarray:
        """|−Σ pT| per event as float32, the same numbers as `missing_et` on the records.

        For float64 columns bincount adds each event's terms in order in float64, as awkward's sum
        does, so the sums agree to the bit; other precisions go through the records.
        """
        if not (self.pt.dtype == self.phi.dtype == np.float64):
            return missing_et(self.records())
        px, py, _, _ = self.cartesian()
        return missing_et_cartesian(px, py, self.counts)


def cluster_jets(
    particles: ak.Array, *, algorithm: str = EVENT_JETS["algorithm"], radius: float = EVENT_JETS["radius"],
    p: float = EVENT_JETS["p"], min_pt: float = EVENT_JETS["min_pt"]
) -> ak.Array:
    """Cluster each event's particles; returns jets as records (pt, eta, phi, energy).

    `particles` has fields pt, eta, phi, energy (GeV, rad). ee_genkt uses the generalised-kT exponent
    `p` (−1 is anti-kT-like) with angular radius `radius`; antikt is the hadron-collider algorithm.
    Jets are sorted by descending pT within each event. See `cluster` for how.
    """
    _check_algorithm(algorithm)
    n_events = len(particles)
    if n_events == 0 or ak.sum(ak.num(particles, axis=1)) == 0:
        empty = ak.Array([[]] * n_events)
        return ak.zip({"pt": empty, "eta": empty, "phi": empty, "energy": empty})
    jets = cluster(Momenta.from_records(particles), algorithm=algorithm, radius=radius, p=p, min_pt=min_pt)
    return jets.records()


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"jet algorithm {algorithm!r} is not one of {_ALGORITHMS}")


def cluster(particles: Momenta, *, algorithm: str = EVENT_JETS["algorithm"], radius: float = EVENT_JETS["radius"],
            p: float = EVENT_JETS["p"], min_pt: float = EVENT_JETS["min_pt"]) -> Momenta:
    """Jets of each event's particles, as float32 `Momenta`: the same jets as `cluster_jets`."""
    return cluster_cartesian(*particles.cartesian(), particles.counts, algorithm=algorithm, radius=radius, p=p,
                             min_pt=min_pt)


def cluster_cartesian(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray, counts: np.ndarray, *,
                      algorithm: str = EVENT_JETS["algorithm"], radius: float = EVENT_JETS["radius"],
    p: float = EVENT_JETS["p"], min_pt: float = EVENT_JETS["min_pt"]
                      ) -> Momenta:
    """Jets of flat float64 four-momenta (`Momenta.cartesian`), event i owning the next counts[i].

    Both algorithms go through FastJet, all events in one call (its awkward interface): gen and target
    jets of a file are one clustering. Jets below `min_pt` are dropped; the rest are sorted by descending
    pT (ties keep FastJet's order).
    """
    _check_algorithm(algorithm)
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    columns = [np.ascontiguousarray(v, dtype=np.float64) for v in (px, py, pz, energy)]
    jet_columns, jet_counts = _fastjet_cluster(*columns, offsets, algorithm=algorithm, radius=radius, p=p,
                                               min_pt=min_pt)
    return _jet_momenta(*jet_columns, jet_counts)


def missing_et_cartesian(px: np.ndarray, py: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """|−Σ pT| per event as float32 from flat float64 px, py: the same numbers as `missing_et`.

    bincount adds each event's terms in order in float64, as awkward's sum does, so the sums agree to
    the bit.
    """
    counts = np.asarray(counts, dtype=np.int64)
    event = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    return np.hypot(np.bincount(event, weights=px, minlength=counts.size),
                    np.bincount(event, weights=py, minlength=counts.size)).astype(np.float32)


def _fastjet_cluster(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray, offsets: np.ndarray, *,
                     algorithm: str, radius: float, p: float, min_pt: float) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    import fastjet  # imported lazily: costly, and only clustering needs it

    if offsets[-1] == 0:
        return tuple(np.zeros(0) for _ in range(4)), np.zeros(offsets.size - 1, dtype=np.int64)
    if algorithm == "ee_genkt":
        jetdef = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, radius, p)
    else:
        jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    content = ak.contents.RecordArray([ak.contents.NumpyArray(v) for v in (px, py, pz, energy)],
                                      ["px", "py", "pz", "E"], parameters={"__record__": "Momentum4D"})
    vectors = ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))
    with stdout_fd_silenced():
        jets = fastjet.ClusterSequence(vectors, jetdef).inclusive_jets(min_pt=min_pt)
    columns = tuple(ak.to_numpy(ak.flatten(jets[name], axis=1)).astype(np.float64) for name in ("px", "py", "pz", "E"))
    return columns, ak.to_numpy(ak.num(jets, axis=1)).astype(np.int64)


def _jet_momenta(px: np.ndarray, py: np.ndarray, pz: np.ndarray, energy: np.ndarray, counts: np.ndarray
                 ) -> Momenta:
    """(pt, eta, phi, E) of jet four-momenta, pT-descending within each event (stable), as float32."""
    pt = np.hypot(px, py)
    # eta of a jet with pt == 0 is undefined; such jets are below any min_pt and never reach here.
    eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    event = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    order = np.lexsort((-pt, event))
    f32 = np.float32
    return Momenta(pt[order].astype(f32), eta[order].astype(f32), phi[order].astype(f32),
                   energy[order].astype(f32), counts)


# ------------------------------------------------------------------------------------------------
# Nearest neighbours within an event, compiled (element ↔ jet, track ↔ cluster)
# ------------------------------------------------------------------------------------------------
# Distance measures of `nearest_in_events` (integer codes, so the compiled kernel can branch on them).
METRIC_DELTA_R2: Final = 0
METRIC_DELTA_R: Final = 1
METRIC_MINUS_COS: Final = 2
# Keys are folded into one sortable float: event · KEY_SPAN + key. Keys are clipped to ±KEY_LIMIT, so the
# windows of different events never overlap.
KEY_LIMIT: Final = 100.0
KEY_SPAN: Final = 1000.0


def nearest_in_events(query_event: np.ndarray, query_key: np.ndarray, query_coords: tuple[np.ndarray, ...],
                      ref_event: np.ndarray, ref_key: np.ndarray, ref_coords: tuple[np.ndarray, ...], *,
                      metric: int, window: float, max_distance: float) -> np.ndarray:
    """Per query, the index of the nearest reference of its event with distance < max_distance, else −1.

    The compiled counterpart of the readable `nearest_within` the tests hold it to (tests/nearest_reference.py),
    with the same answers: references are candidates when their key lies within ±window of the query's
    (compared on the same folded event·KEY_SPAN + key values), ties go to the lower reference index. Instead of expanding all pairs it
    sorts each event's references by key and walks through the window only, so references must come
    event by event (ref_event sorted).
    Coordinates are per metric: METRIC_DELTA_R2 and METRIC_DELTA_R take (η, φ), METRIC_MINUS_COS
    takes unit vectors (x, y, z); ΔR² = Δη² + Δφ², ΔR = hypot(Δη, Δφ), −cos = −(u·v).
    """
    best = np.full(query_event.size, -1, dtype=np.int64)
    if query_event.size == 0 or ref_event.size == 0:
        return best
    if not window < (KEY_SPAN - 2 * KEY_LIMIT) / 2:
        raise ValueError(f"nearest_in_events: window {window} is too wide to keep events apart")
    if np.any(np.diff(ref_event) < 0):
        raise ValueError("nearest_in_events: references must come event by event")
    ref_comb = ref_event.astype(np.float64) * KEY_SPAN + np.clip(ref_key, -KEY_LIMIT, KEY_LIMIT)
    centre = query_event.astype(np.float64) * KEY_SPAN + np.clip(query_key, -KEY_LIMIT, KEY_LIMIT)
    events = np.arange(int(max(query_event.max(), ref_event.max())) + 1)
    ref_start = np.searchsorted(ref_event, events, side="left")
    ref_stop = np.searchsorted(ref_event, events, side="right")
    q = [np.ascontiguousarray(c, dtype=np.float64) for c in query_coords]
    r = [np.ascontiguousarray(c, dtype=np.float64) for c in ref_coords]
    if len(q) == 2:
        q.append(q[0])
        r.append(r[0])
    order = _order_within_events(ref_comb, ref_start, ref_stop)
    _nearest_kernel(np.ascontiguousarray(query_event, dtype=np.int64), centre - window, centre + window, *q,
                    ref_start, ref_stop, ref_comb[order], order, *r, metric, float(max_distance), best)
    return best


@numba.njit(cache=True, nogil=True)
def _order_within_events(ref_comb, ref_start, ref_stop):
    """Indices that sort each event's references by their folded key (an insertion sort: events are small)."""
    order = np.arange(ref_comb.size)
    for ev in range(ref_start.size):
        for i in range(ref_start[ev] + 1, ref_stop[ev]):
            item = order[i]
            key = ref_comb[item]
            j = i - 1
            while j >= ref_start[ev] and ref_comb[order[j]] > key:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = item
    return order


@numba.njit(cache=True, nogil=True, inline="always")
def _wrapped_delta_phi(a, b):
    """a − b wrapped as `pairs.delta_phi` wraps it."""
    d = a - b
    if d > np.pi:
        return d - 2 * np.pi
    if d < -np.pi:
        return d + 2 * np.pi
    return d


@numba.njit(cache=True, nogil=True)
def _nearest_kernel(q_event, q_low, q_high, qa, qb, qc, ref_start, ref_stop, sorted_comb, order, ra, rb, rc, metric,
                    max_distance, best):
    """Per query: walk its event's references in key order through the window, keeping the nearest
    candidate (the lower reference index on ties). Events hold few references: a linear walk, whose
    branches the CPU predicts, beats a binary search."""
    for q in range(q_event.size):
        ev = q_event[q]
        low = q_low[q]
        high = q_high[q]
        first = ref_start[ev]
        while first < ref_stop[ev] and not sorted_comb[first] >= low:
            first += 1
        last = first
        while last < ref_stop[ev] and sorted_comb[last] <= high:
            last += 1
        found = -1
        best_dist = 0.0
        for k in range(first, last):
            r = order[k]
            if metric == METRIC_MINUS_COS:
                dist = -(qa[q] * ra[r] + qb[q] * rb[r] + qc[q] * rc[r])
            else:
                deta = qa[q] - ra[r]
                dphi = _wrapped_delta_phi(qb[q], rb[r])
                dist = deta * deta + dphi * dphi if metric == METRIC_DELTA_R2 else math.hypot(deta, dphi)
            if dist < max_distance and (found < 0 or dist < best_dist or (dist == best_dist and r < found)):
                found = r
                best_dist = dist
        best[q] = found


def jets_to_block(jets: ak.Array) -> ak.Array:
    """Jets as records → [events, jets, 4] rows of (pt, eta, phi, energy), the stored layout."""
    return ak.concatenate(
        [jets.pt[:, :, None], jets.eta[:, :, None], jets.phi[:, :, None], jets.energy[:, :, None]], axis=2
    )


def jets_from_block(block: ak.Array) -> ak.Array:
    """The stored [events, jets, 4] layout → records with fields pt, eta, phi, energy."""
    return ak.zip({"pt": block[:, :, 0], "eta": block[:, :, 1], "phi": block[:, :, 2], "energy": block[:, :, 3]})


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """ΔR with Δφ wrapped into [−π, π)."""
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def match_jets(reco: ak.Array, gen: ak.Array, *, max_dr: float = 0.1) -> tuple[ak.Array, ak.Array]:
    """For every gen jet, the pT of the closest reco jet within `max_dr` (None where there is none).

    Returns (gen jets that found a match, matched reco jets), both [events, matches]. Each gen jet takes
    its nearest reco jet; with ΔR < 0.1 two gen jets sharing one reco jet is vanishingly rare and kept.
    """
    pairs = ak.cartesian({"gen": gen, "reco": reco}, axis=1, nested=True)
    dr = delta_r(pairs.gen.eta, pairs.gen.phi, pairs.reco.eta, pairs.reco.phi)
    best = ak.argmin(dr, axis=2, keepdims=True)
    best_dr = ak.firsts(dr[best], axis=2)
    best_reco = ak.firsts(pairs.reco[best], axis=2)
    ok = ak.fill_none(best_dr < max_dr, False)
    return gen[ok], best_reco[ok]

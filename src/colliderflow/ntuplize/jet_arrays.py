"""Flat numpy views of per-event records and of jets: the arrays the jet builder (`ntuplize.jets`) works on.

A per-event awkward list becomes one numpy array per field plus per-event offsets (`Flat`); jets become
(event, counts, global member indices) (`JetSet`), and after JetClass-II's constituent filter, per-jet
kinematics with their kept constituents (`Jets`). Everything is vectorised: no loop over particles or jets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import awkward as ak
import numpy as np

FAR_ETA: Final = 1e5  # η given to a massless direction along the beam (pT = 0): beyond every |η| cut


@dataclass(frozen=True)
class Flat:
    """Per-event records flattened: one numpy array per field, plus the per-event offsets."""

    offsets: np.ndarray
    data: dict[str, np.ndarray]

    @property
    def n_events(self) -> int:
        return len(self.offsets) - 1


def require_fields(records: ak.Array, required: Sequence[str], what: str) -> None:
    missing = [f for f in required if f not in records.fields]
    if missing:
        raise ValueError(f"{what}: missing fields {missing} (have {records.fields})")


def flatten(records: ak.Array, required: Sequence[str], optional: Mapping[str, float], what: str) -> Flat:
    """Flat arrays of the fields the builder uses; a non-finite momentum is refused, not silently dropped."""
    require_fields(records, required, what)
    counts = ak.to_numpy(ak.num(records, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    data = {}
    for name in (*required, *optional):
        if name in records.fields:
            data[name] = np.asarray(ak.to_numpy(ak.flatten(records[name], axis=1)))
        else:
            data[name] = np.full(offsets[-1], optional[name])
    for name in ("px", "py", "pz", "energy"):
        bad = ~np.isfinite(data[name])
        if bad.any():
            event = int(np.searchsorted(offsets, np.flatnonzero(bad)[0], side="right") - 1)
            raise ValueError(f"{what}: non-finite {name} ({int(bad.sum())} values, first in event {event})")
    return Flat(offsets, data)


@dataclass(frozen=True)
class JetSet:
    """Jets as (event, list of global particle indices)."""

    event: np.ndarray  # [jets]
    counts: np.ndarray  # [jets]
    members: np.ndarray  # [sum(counts)] global indices into a Flat


def jet_set_from(constituents: ak.Array, particles: Flat, what: str) -> JetSet:
    if len(constituents) != particles.n_events:
        raise ValueError(f"{what}: {len(constituents)} events of jets for {particles.n_events} events of particles")
    jets_per_event = ak.to_numpy(ak.num(constituents, axis=1)).astype(np.int64)
    counts = ak.to_numpy(ak.flatten(ak.num(constituents, axis=2), axis=1)).astype(np.int64)
    local = ak.to_numpy(ak.flatten(constituents, axis=None)).astype(np.int64)
    event = np.repeat(np.arange(len(jets_per_event), dtype=np.int64), jets_per_event)
    member_event = np.repeat(event, counts)
    sizes = np.diff(particles.offsets)[member_event]
    if np.any((local < 0) | (local >= sizes)):
        raise ValueError(f"{what}: constituent indices outside their event's particle list")
    return JetSet(event, counts, local + particles.offsets[member_event])


def eta_phi(px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.copysign(FAR_ETA, pz))
    return pt, eta, np.arctan2(py, px)


def wrap_phi(dphi: np.ndarray) -> np.ndarray:
    return (dphi + np.pi) % (2 * np.pi) - np.pi


@dataclass(frozen=True)
class Jets:
    """Jets after the constituent filter: kinematics per jet, kept constituents in jet order."""

    event: np.ndarray
    n: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    energy: np.ndarray
    member_jet: np.ndarray  # jet id of each kept constituent
    members: np.ndarray  # global particle index of each kept constituent
    member_pt: np.ndarray


def filtered_jets(jets: JetSet, particles: Flat, *, max_abs_eta: float, max_abs_pz: float) -> Jets:
    """Drop unphysical constituents (JetClass-II's rule: pT > 0, |η| ≤ max_abs_eta, |pz| ≤ max_abs_pz in GeV)
    and sum the rest into the jet four-vector."""
    d = particles.data
    px, py, pz, energy = (d[k][jets.members].astype(np.float64) for k in ("px", "py", "pz", "energy"))
    pt, eta, _ = eta_phi(px, py, pz)
    keep = (pt > 0) & (np.abs(eta) <= max_abs_eta) & (np.abs(pz) <= max_abs_pz)
    n_jets = len(jets.event)
    member_jet = np.repeat(np.arange(n_jets, dtype=np.int64), jets.counts)[keep]
    sums = [np.bincount(member_jet, weights=v[keep], minlength=n_jets) for v in (px, py, pz, energy)]
    jpt, jeta, jphi = eta_phi(*sums[:3])
    return Jets(
        event=jets.event,
        n=np.bincount(member_jet, minlength=n_jets),
        pt=jpt,
        eta=jeta,
        phi=jphi,
        energy=sums[3],
        member_jet=member_jet,
        members=jets.members[keep],
        member_pt=pt[keep],
    )


def ordered_members(jets: Jets, rank_of_jet: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constituents of the jets that became rows, grouped by row and sorted by descending pT.

    Returns (global particle indices, row of each, counts per row).
    """
    rank = rank_of_jet[jets.member_jet]
    used = rank >= 0
    order = np.lexsort((-jets.member_pt[used], rank[used]))
    rows = rank[used][order]
    return jets.members[used][order], rows, np.bincount(rows, minlength=n_rows)

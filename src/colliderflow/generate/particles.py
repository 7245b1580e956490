"""Truth particles of many events as flat arrays, and the PDG ids the detector treats specially.

Everything downstream of the generator works on all particles of a batch of events at once. Keeping
the particles as one flat array per quantity plus a per-event count (rather than awkward lists) lets
the detector kernels loop over plain arrays, and makes the per-event structure explicit where it
matters: in the `event` index and when the branches are written.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np

# Particles that shower electromagnetically (photons, electrons) and minimum-ionising muons.
PHOTON_PDGID = 22
ELECTRON_ABS_PDGID = 11
MUON_ABS_PDGID = 13


@dataclass(frozen=True)
class GenParticles:
    """Final-state truth particles of `n_events` events; per-particle arrays are event-major.

    Momenta in GeV, production vertex in mm, production time in ns. Derived arrays (event index, pT…)
    are computed once and cached, since tracker and calorimeter both need them; the arrays must
    therefore not be modified in place.
    """

    counts: np.ndarray  # int64 [n_events]: particles per event
    event_weight: np.ndarray  # float64 [n_events]
    pdgid: np.ndarray  # int32 [n]
    charge: np.ndarray  # float64 [n], units of e
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    energy: np.ndarray
    mass: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray
    vt: np.ndarray  # production time, ns

    def __post_init__(self) -> None:
        n = int(np.sum(self.counts))
        if len(self.event_weight) != len(self.counts):
            raise ValueError(f"event_weight has {len(self.event_weight)} entries for {len(self.counts)} events")
        for f in fields(self):
            if f.name in ("counts", "event_weight"):
                continue
            if len(getattr(self, f.name)) != n:
                raise ValueError(
                    f"gen particle array {f.name!r} has {len(getattr(self, f.name))} entries, the counts say {n}"
                )

    @property
    def n_events(self) -> int:
        return len(self.counts)

    @property
    def n_particles(self) -> int:
        return len(self.pdgid)

    @cached_property
    def event(self) -> np.ndarray:
        """The event index of every particle."""
        return np.repeat(np.arange(self.n_events), self.counts)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Start of every event in the flat arrays, with the total appended (length n_events + 1)."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @cached_property
    def local_index(self) -> np.ndarray:
        """The index of every particle inside its own event (what the *_gen_idx branches store)."""
        return np.arange(self.n_particles) - np.repeat(self.offsets[:-1], self.counts)

    @cached_property
    def pt(self) -> np.ndarray:
        return np.sqrt(self.px * self.px + self.py * self.py)  # np.hypot (libm's, correctly rounded) is slower

    @cached_property
    def p(self) -> np.ndarray:
        return np.sqrt(self.px**2 + self.py**2 + self.pz**2)

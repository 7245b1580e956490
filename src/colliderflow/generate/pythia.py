"""Run Pythia 8 for one process and hand back the final-state particles of many events as flat arrays.

Extraction goes through `Pythia.nextBatch`, which fills an awkward array of whole event records in C++;
selecting the final state and slicing out the needed columns is then a handful of vectorised operations
on the record's buffers. For e+e- -> t tbar at 380 GeV that is ~1500 events/s on one core, against ~700
when `pythia.event` is read particle by particle from Python (and ~1650 for Pythia's event loop alone).

The simulation output holds only the final state, which cannot say which jet came from a top or a Higgs.
`hard_process` therefore also cuts a small truth record out of the same event records (resonance decay
chains and quarks, see its docstring) for the `hard_*` branches that jet labelling reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import awkward as ak
import numpy as np

from colliderflow.generate.particles import GenParticles
from colliderflow.generate.processes import quiet_settings, run_settings, seed_settings
from colliderflow.generate.records import Collection
from colliderflow.schema import HARD_BRANCHES

# Pythia's Random:seed range.
PYTHIA_SEED_MIN = 0
PYTHIA_SEED_MAX = 900_000_000

# Pythia stores production times in mm/c; the simulation output uses ns.
SPEED_OF_LIGHT_MM_PER_NS = 299.792458

# How many times in a row nextBatch may return no event before the run is declared broken.
_MAX_EMPTY_BATCHES = 10


def _import_pythia() -> Any:
    try:
        import pythia8mc
    except ImportError as exc:  # the package is a declared dependency; this is for broken installs
        raise ValueError("the builtin generator needs the pythia8mc package (pip install pythia8mc==8.317.2)") from exc
    return pythia8mc


class PythiaGenerator:
    """One initialised Pythia instance for one process, seed and beam energy.

    Events come out in the order Pythia makes them, so the same (process, sqrt_s, seed, options) and the
    same sequence of `generate` calls give the same particles. `options` are the sample options of a pp
    process (`processes.pp_option_settings`: pthat_min, mpi); e+e- processes take none.
    """

    def __init__(self, process: str, *, sqrt_s: float, seed: int, options: Mapping[str, Any] | None = None) -> None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer, got {seed!r}")  # noqa: TRY004
        if not PYTHIA_SEED_MIN <= int(seed) <= PYTHIA_SEED_MAX:
            raise ValueError(f"seed {seed} is outside Pythia's range [{PYTHIA_SEED_MIN}, {PYTHIA_SEED_MAX}]")
        if not np.isfinite(sqrt_s) or sqrt_s <= 0:
            raise ValueError(f"sqrt_s must be a positive energy in GeV, got {sqrt_s!r}")
        self.process = process
        self.settings: tuple[str, ...] = (
            *run_settings(process, float(sqrt_s), options),
            *seed_settings(int(seed)),
            *quiet_settings(),
        )
        pythia8mc = _import_pythia()
        self._pythia = pythia8mc.Pythia("", False)
        for line in self.settings:
            if not self._pythia.readString(line):
                raise ValueError(f"Pythia rejected the setting {line!r}")
        if not self._pythia.init():
            raise ValueError(f"Pythia failed to initialise process {process!r} at sqrt_s={sqrt_s} GeV")
        # Charges of every PDG id met so far, sorted by id for a vectorised lookup.
        self._known_ids = np.zeros(0, dtype=np.int32)
        self._known_charges = np.zeros(0, dtype=np.float64)

    def cross_section_pb(self) -> float:
        """The generated cross-section estimate so far (Pythia reports mb)."""
        return float(self._pythia.infoPython().sigmaGen()) * 1e9

    def next_records(self, n_events: int) -> ak.Array:
        """`n_events` raw Pythia event records (awkward), retrying events Pythia aborts."""
        if n_events < 0:
            raise ValueError(f"n_events must be >= 0, got {n_events}")
        parts = []
        have = 0
        empty = 0
        while have < n_events:
            run = self._pythia.nextBatch(n_events - have, "skip")
            if len(run) == 0:
                empty += 1
                if empty >= _MAX_EMPTY_BATCHES:
                    raise ValueError(f"Pythia keeps failing to generate {self.process!r} events")
                continue
            empty = 0
            parts.append(run)
            have += len(run)
        if not parts:
            return ak.Array([])
        return parts[0] if len(parts) == 1 else ak.concatenate(parts)

    def generate(self, n_events: int) -> GenParticles:
        """The final-state particles of the next `n_events` events."""
        return self.final_state(self.next_records(n_events))

    def generate_with_hard(self, n_events: int) -> tuple[GenParticles, Collection]:
        """The final state and the `hard_*` truth record (see `hard_process`) of the next `n_events` events."""
        records = self.next_records(n_events)
        return self.final_state(records), hard_process(records)

    def final_state(self, records: ak.Array) -> GenParticles:
        """Flat arrays of the final-state (status > 0) particles of `records`."""
        n_events = len(records)
        if n_events == 0:
            empty_f = np.zeros(0)
            return GenParticles(
                counts=np.zeros(0, np.int64),
                event_weight=empty_f,
                pdgid=np.zeros(0, np.int32),
                charge=empty_f,
                px=empty_f,
                py=empty_f,
                pz=empty_f,
                energy=empty_f,
                mass=empty_f,
                vx=empty_f,
                vy=empty_f,
                vz=empty_f,
                vt=empty_f,
            )
        table, bounds = _particle_table(records)
        final = _numpy(table, "status") > 0
        # Final-state particles per event, from a running count of the mask at the event boundaries.
        running = np.concatenate([[0], np.cumsum(final)])
        counts = running[bounds[1:]] - running[bounds[:-1]]

        momentum = table.content("p")
        vertex = _vertex_columns(table.content("vProd"), final)
        pdgid = _numpy(table, "id")[final].astype(np.int32)
        weights = ak.to_numpy(ak.fill_none(ak.firsts(records["info"]["weights"], axis=1), 1.0))
        return GenParticles(
            counts=counts.astype(np.int64),
            event_weight=np.asarray(weights, dtype=np.float64),
            pdgid=pdgid,
            charge=self._charges(pdgid),
            px=_numpy(momentum, "px")[final],
            py=_numpy(momentum, "py")[final],
            pz=_numpy(momentum, "pz")[final],
            energy=_numpy(momentum, "e")[final],
            mass=_numpy(table, "m")[final],
            vx=vertex["px"],
            vy=vertex["py"],
            vz=vertex["pz"],
            vt=vertex["e"] / SPEED_OF_LIGHT_MM_PER_NS,
        )

    def _charges(self, pdgid: np.ndarray) -> np.ndarray:
        """Electric charges from Pythia's particle table, asking Pythia once per id ever seen."""
        if len(self._known_ids) > 0:
            pos_clipped = np.minimum(np.searchsorted(self._known_ids, pdgid), len(self._known_ids) - 1)
            known = self._known_ids[pos_clipped] == pdgid
        else:
            known = np.zeros(len(pdgid), dtype=bool)
        if not np.all(known):
            table = self._pythia.particleData
            new_ids = np.unique(pdgid[~known])
            new_charges = np.array([float(table.charge(int(pid))) for pid in new_ids], dtype=np.float64)
            ids = np.concatenate([self._known_ids, new_ids])
            order = np.argsort(ids, kind="stable")
            self._known_ids = ids[order]
            self._known_charges = np.concatenate([self._known_charges, new_charges])[order]
            pos_clipped = np.searchsorted(self._known_ids, pdgid)
        return self._known_charges[pos_clipped]


def _particle_table(records: ak.Array) -> tuple[ak.contents.Content, np.ndarray]:
    """All events' particle records as one flat table, with each event's [start, stop) offsets into it.

    Work on the particle table itself: slicing awkward records field by field costs more than Pythia's
    own event generation for a t tbar event.
    """
    prt = ak.to_layout(records["prt"])
    if not isinstance(prt, ak.contents.ListOffsetArray):
        prt = prt.to_ListOffsetArray64(True)
    bounds = np.asarray(prt.offsets.data, dtype=np.int64)
    return prt.content[bounds[0] : bounds[-1]], bounds - bounds[0]


def _numpy(record: ak.contents.Content, field: str) -> np.ndarray:
    """One numeric field of a record layout as a numpy array (a view where awkward allows)."""
    return np.asarray(record.content(field).to_backend_array())


def _vertex_columns(vprod: ak.contents.Content, keep: np.ndarray) -> dict[str, np.ndarray]:
    """Production vertex columns of the kept particles; a vertex Pythia never set (None) is the origin."""
    if isinstance(vprod, ak.contents.IndexedOptionArray):
        index = np.asarray(vprod.index.data)[keep]
        valid = index >= 0
        inner = vprod.content
        out = {}
        for c in ("px", "py", "pz", "e"):
            values = np.zeros(len(index))
            values[valid] = _numpy(inner, c)[index[valid]]
            out[c] = values
        return out
    if isinstance(vprod, ak.contents.RecordArray):
        return {c: _numpy(vprod, c)[keep] for c in ("px", "py", "pz", "e")}
    # Any other option layout: let awkward do the general (slower) thing.
    array = ak.Array(vprod)
    return {c: np.asarray(ak.to_numpy(ak.fill_none(array[c], 0.0)))[keep] for c in ("px", "py", "pz", "e")}


# --------------------------------------------------------------------------------------------------
# The hard-process record: what jet labels need from the full event record.
# --------------------------------------------------------------------------------------------------
# Particles whose decay chains are kept whole: top, τ, Z, W, H and the BSM bosons (Z', W', H2, A, H±).
HARD_CHAIN_PDGIDS: Final = (6, 15, 23, 24, 25, 32, 33, 34, 35, 36, 37)
# Quarks (d, u, s, c, b) kept for the QCD labels when they are last copies above this pT (GeV); a QCD
# labelling threshold below it would silently miss quarks.
HARD_QUARK_MIN_PT: Final = 1.0
_QUARK_PDGIDS: Final = (1, 2, 3, 4, 5)


def hard_process(records: ak.Array) -> Collection:
    """The truth record jet labels need, as a Collection of HARD_BRANCHES, in Pythia's order.

    Kept: every copy of the particles in HARD_CHAIN_PDGIDS with all their daughters, so that decay
    chains (t → W b → q q̄' b, H → b b̄, τ → hadrons ν) can be followed through the copies; and quarks that
    are last copies (no daughter of the same id) with pT ≥ HARD_QUARK_MIN_PT, for the quark content of
    QCD jets. Indices are re-numbered into the kept list: a contiguous daughter range of a chain particle
    stays contiguous, because all of its members are kept and the order is preserved. Other kept
    particles get no daughters (d1 = d2 = -1): their daughters are shower copies and hadrons that are
    not stored. The convention is Pythia's with -1 for none (`jet_labels.GenRecord`).
    """
    n_events = len(records)
    if n_events == 0:
        return Collection(counts=np.zeros(0, np.int64), columns=_empty_hard_columns())
    table, bounds = _particle_table(records)
    counts = np.diff(bounds)
    event = np.repeat(np.arange(n_events), counts)
    base = bounds[:-1][event]
    pid = _numpy(table, "id").astype(np.int64)
    local_d1, local_d2 = (_numpy(table, k).astype(np.int64) for k in ("daughter1", "daughter2"))
    mother1 = _numpy(table, "mother1").astype(np.int64)
    momentum = table.content("p")
    px, py = _numpy(momentum, "px"), _numpy(momentum, "py")
    n = len(pid)

    # Global daughter indices; Pythia: d1 = 0 none, d2 = 0 or d2 = d1 one, d2 > d1 a range, else two.
    has_d = local_d1 > 0
    g1 = np.where(has_d, base + local_d1, -1)
    single = has_d & ((local_d2 == 0) | (local_d2 == local_d1))
    g2 = np.where(has_d & ~single & (local_d2 > 0), base + local_d2, -1)
    g2 = np.where(single, g1, g2)

    chain = np.isin(np.abs(pid), HARD_CHAIN_PDGIDS)
    # Daughters of chain particles: ranges by a difference array, the two-daughter case directly.
    is_range = chain & (g2 > g1)
    marks = np.zeros(n + 1, np.int64)
    np.add.at(marks, g1[is_range], 1)
    np.add.at(marks, g2[is_range] + 1, -1)
    daughter_of_chain = np.cumsum(marks[:n]) > 0
    for ends in (g1, g2):
        daughter_of_chain[ends[chain & (ends >= 0)]] = True

    same_id_daughter = np.zeros(n, bool)
    for ends in (g1, g2):
        ok = ends >= 0
        same_id_daughter[ok] |= pid[ends[ok]] == pid[ok]
    quark = np.isin(np.abs(pid), _QUARK_PDGIDS) & ~same_id_daughter & (np.hypot(px, py) >= HARD_QUARK_MIN_PT)
    keep = chain | daughter_of_chain | quark

    # Re-numbering: position among the kept particles of the same event, -1 for dropped ones.
    running = np.cumsum(keep) - 1
    first_kept = np.concatenate([[0], np.cumsum(keep)])[bounds[:-1]]
    new_local = np.where(keep, running - first_kept[event], -1)

    def remap(g: np.ndarray) -> np.ndarray:
        return np.where(g >= 0, new_local[np.maximum(g, 0)], -1)

    d1 = np.where(chain, remap(g1), -1)
    d2 = np.where(chain, remap(g2), -1)
    d2 = np.where(chain & (g2 == g1), -1, d2)  # one daughter: d2 = -1
    m1 = remap(np.where(mother1 > 0, base + mother1, -1))

    f32, i32 = np.float32, np.int32
    columns = {
        "hard_pdgid": pid[keep].astype(i32),
        "hard_status": _numpy(table, "status")[keep].astype(i32),
        "hard_px": px[keep].astype(f32),
        "hard_py": py[keep].astype(f32),
        "hard_pz": _numpy(momentum, "pz")[keep].astype(f32),
        "hard_energy": _numpy(momentum, "e")[keep].astype(f32),
        "hard_mass": _numpy(table, "m")[keep].astype(f32),
        "hard_mother1": m1[keep].astype(i32),
        "hard_d1": d1[keep].astype(i32),
        "hard_d2": d2[keep].astype(i32),
    }
    return Collection(counts=np.bincount(event[keep], minlength=n_events).astype(np.int64), columns=columns)


def _empty_hard_columns() -> dict[str, np.ndarray]:
    floats = {"hard_px", "hard_py", "hard_pz", "hard_energy", "hard_mass"}
    return {b: np.zeros(0, np.float32 if b in floats else np.int32) for b in HARD_BRANCHES}

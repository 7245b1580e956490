"""Small builtin-layout simulation files for tests and benchmarks, written with uproot.

Two ways to make events: `EventBuilder` for hand-made events whose every number a test can predict,
and `random_events` for many events with realistic multiplicities (≈ 60 elements per event), generated
vectorised so that a 10k-event file takes a second. Both end in `write_sim`, which writes the exact
schema.SIM_* branches into a TTree named `events` (plus uproot's counter branches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from colliderflow.schema import (
    SIM_CALOLINK_BRANCHES,
    SIM_CLUSTER_BRANCHES,
    SIM_GEN_BRANCHES,
    SIM_TRACK_BRANCHES,
)

BFIELD = 4.0
K_PT = 0.299792458e-3  # GeV per (T · 1/mm of curvature)
CALO_R = 1500.0  # mm
CALO_Z = 2307.0
CALO_HOLE = 260.0  # mm, endcap inner radius

_INT_BRANCHES = {"gen_pdgid", "gen_status", "track_gen_idx", "track_ndf", "cluster_nhits",
                 "calolink_cluster_idx", "calolink_gen_idx"}
_COLLECTIONS = {"gen": SIM_GEN_BRANCHES, "track": SIM_TRACK_BRANCHES, "cluster": SIM_CLUSTER_BRANCHES,
                "calolink": SIM_CALOLINK_BRANCHES}


def omega_of(pt: float | np.ndarray, charge: float | np.ndarray) -> Any:
    """Signed curvature (1/mm) of a track of transverse momentum pt in the 4 T field; sign = charge."""
    return np.sign(charge) * K_PT * BFIELD / pt


def calo_position(px: Any, py: Any, pz: Any, charge: Any) -> tuple[Any, Any, Any]:
    """Where a particle from the origin meets the calorimeter front (R = 1.5 m, |z| = 2.3 m), mm.

    Written independently of the ntuplizer's extrapolation (path lengths rather than turning angles),
    so that tests can compare the two.

    Charged particles follow the helix of the 4 T field (positive ones bend clockwise seen from +z);
    one that never reaches the calorimeter, or enters the endcap hole (r < 260 mm), gets NaN.
    """
    px, py, pz, charge = (np.asarray(v, dtype=np.float64) for v in (px, py, pz, charge))
    pt = np.hypot(px, py)
    phi0 = np.arctan2(py, px)
    tan_l = pz / pt
    w = np.where(charge != 0, K_PT * BFIELD / pt, 0.0)
    # Transverse path to the barrel (never, for a looper) and to the endcap; neutrals (w = 0) go straight.
    with np.errstate(divide="ignore", invalid="ignore"):
        loops = CALO_R * w / 2 > 1
        s_barrel = np.where(w > 0, 2 * np.arcsin(np.minimum(CALO_R * w / 2, 1.0)) / np.where(w > 0, w, 1), CALO_R)
        s_barrel = np.where(loops, np.inf, s_barrel)
        s_endcap = np.where(tan_l != 0, CALO_Z / np.abs(tan_l), np.inf)
    s = np.minimum(s_barrel, s_endcap)  # inf: never reaches the calorimeter (positions come out NaN)
    alpha = s * w
    r = np.where(w > 0, 2 * np.abs(np.sin(alpha / 2)) / np.where(w > 0, w, 1), s)
    phi = phi0 - np.sign(charge) * alpha / 2
    lost = ~np.isfinite(s) | ((s_endcap < s_barrel) & (r < CALO_HOLE))
    nan = np.where(lost, np.nan, 1.0)
    return r * np.cos(phi) * nan, r * np.sin(phi) * nan, s * tan_l * nan


@dataclass
class EventBuilder:
    """One hand-made event: add particles, then tracks and clusters that point at them."""

    columns: dict[str, list[Any]] = field(default_factory=lambda: {
        b: [] for b in SIM_GEN_BRANCHES + SIM_TRACK_BRANCHES + SIM_CLUSTER_BRANCHES + SIM_CALOLINK_BRANCHES})

    def particle(self, pdgid: int, charge: float, px: float, py: float, pz: float, mass: float = 0.0,
                 status: int = 1) -> int:
        """Add a truth particle; returns its index."""
        c = self.columns
        c["gen_pdgid"].append(pdgid)
        c["gen_charge"].append(charge)
        c["gen_px"].append(px)
        c["gen_py"].append(py)
        c["gen_pz"].append(pz)
        c["gen_energy"].append(float(np.sqrt(px**2 + py**2 + pz**2 + mass**2)))
        c["gen_mass"].append(mass)
        c["gen_status"].append(status)
        for b in ("gen_vx", "gen_vy", "gen_vz"):
            c[b].append(0.0)
        return len(c["gen_pdgid"]) - 1

    def track(self, gen_idx: int, **overrides: float) -> int:
        """Add the perfect track of truth particle `gen_idx` (overrides replace any branch value)."""
        c = self.columns
        px, py, pz = c["gen_px"][gen_idx], c["gen_py"][gen_idx], c["gen_pz"][gen_idx]
        pt = float(np.hypot(px, py))
        charge = c["gen_charge"][gen_idx]
        values = {
            "track_gen_idx": gen_idx,
            "track_charge": charge,
            "track_omega": float(omega_of(pt, charge)),
            "track_tanlambda": pz / pt,
            "track_phi": float(np.arctan2(py, px)),
            "track_d0": 0.01,
            "track_z0": -0.02,
            "track_chi2": 12.5,
            "track_ndf": 9,
            "track_dedx": 3.1e-7,
            "track_dedx_error": 1.5e-8,
            "track_radius_innermost_hit": 31.0,
            "track_time": 0.25,
        }
        values.update(overrides)
        for b in SIM_TRACK_BRANCHES:
            c[b].append(values[b])
        return len(c["track_omega"]) - 1

    def cluster(self, deposits: dict[int, float], *, ecal_fraction: float, position_of: int | None = None,
                position: tuple[float, float, float] | None = None, nhits: int = 25) -> int:
        """Add a cluster holding `deposits` {truth index: GeV}; placed where `position_of` hits the calorimeter."""
        c = self.columns
        energy = float(sum(deposits.values()))
        if position is None:
            g = position_of if position_of is not None else next(iter(deposits))
            x, y, z = calo_position(c["gen_px"][g], c["gen_py"][g], c["gen_pz"][g], c["gen_charge"][g])
            position = (float(x), float(y), float(z))
        idx = len(c["cluster_energy"])
        values = {
            "cluster_energy": energy,
            "cluster_x": position[0],
            "cluster_y": position[1],
            "cluster_z": position[2],
            "cluster_itheta": float(np.arctan2(np.hypot(position[0], position[1]), position[2])),
            "cluster_energy_ecal": energy * ecal_fraction,
            "cluster_energy_hcal": energy * (1 - ecal_fraction),
            "cluster_energy_other": 0.0,
            "cluster_nhits": nhits,
            "cluster_sigma_x": 10.0,
            "cluster_sigma_y": 11.0,
            "cluster_sigma_z": 12.0,
        }
        for b in SIM_CLUSTER_BRANCHES:
            c[b].append(values[b])
        for g, e in deposits.items():
            c["calolink_cluster_idx"].append(idx)
            c["calolink_gen_idx"].append(g)
            c["calolink_energy"].append(e)
        return idx


def events_to_arrays(events: list[EventBuilder]) -> dict[str, ak.Array | np.ndarray]:
    """Hand-made events → {branch: array} in the schema's types."""
    out: dict[str, Any] = {
        "event_number": np.arange(len(events), dtype=np.int64),
        "event_weight": np.ones(len(events), dtype=np.float32),
    }
    for branch in SIM_GEN_BRANCHES + SIM_TRACK_BRANCHES + SIM_CLUSTER_BRANCHES + SIM_CALOLINK_BRANCHES:
        dtype = np.int32 if branch in _INT_BRANCHES else np.float32
        lists = [ev.columns[branch] for ev in events]
        counts = np.array([len(x) for x in lists], dtype=np.int64)
        content = np.array([v for x in lists for v in x], dtype=dtype)
        out[branch] = ak.unflatten(content, counts)
    return out


def write_sim(path: Path, arrays: dict[str, Any], *, drop: tuple[str, ...] = ()) -> Path:
    """Write {branch: array} as the builtin layout's TTree `events`, leaving out the `drop` branches."""
    tree: dict[str, Any] = {}
    for b in ("event_number", "event_weight"):
        if b not in drop:
            tree[b] = np.asarray(arrays[b])
    for name, branches in _COLLECTIONS.items():
        kept = {b[len(name) + 1:]: arrays[b] for b in branches if b not in drop}
        if kept:
            tree[name] = ak.zip(kept)
    with uproot.recreate(path) as fh:
        fh.mktree("events", {k: (v.dtype if isinstance(v, np.ndarray) else v.type.content)
                             for k, v in tree.items()})
        fh["events"].extend(tree)
    return path


# --------------------------------------------------------------------------------------------------
# Many realistic-looking events, vectorised
# --------------------------------------------------------------------------------------------------
_KINDS = np.array([211, 22, 130, 11, 13, 12])
_KIND_P = np.array([0.55, 0.28, 0.10, 0.03, 0.02, 0.02])
_KIND_CHARGED = np.array([True, False, False, True, True, False])
_KIND_MASS = np.array([0.13957, 0.0, 0.4976, 0.000511, 0.10566, 0.0])
_KIND_ECAL = np.array([0.3, 0.97, 0.25, 0.95, 0.3, 0.0])


def random_events(n_events: int, *, seed: int = 1, mean_particles: float = 40.0,
                  merge_probability: float = 0.1) -> dict[str, Any]:
    """{branch: array} of `n_events` synthetic events, ≈ 60 elements per event at the default mean.

    Particle kinds and energies are drawn at random, directions mostly around a few jet axes per
    event; charged particles within |η| < 2.4
    and pT > 0.2 GeV get a smeared track, every particle but muons, neutrinos and loopers within
    |η| < 3 deposits all its energy into a cluster (a share `merge_probability` into the previous deposit's
    cluster of the same event), muons leave a 1 GeV MIP cluster.
    """
    rng = np.random.default_rng(seed)
    n_part = rng.poisson(mean_particles - 5, n_events) + 5
    total = int(n_part.sum())
    event = np.repeat(np.arange(n_events), n_part)
    kind = rng.choice(len(_KINDS), size=total, p=_KIND_P)
    sign = np.where(rng.random(total) < 0.5, -1, 1)
    pdgid = _KINDS[kind] * np.where(_KIND_CHARGED[kind] | (kind == 5), sign, 1)
    charge = np.where(_KIND_CHARGED[kind], np.where(_KINDS[kind] == 211, sign, -sign), 0).astype(np.float64)
    p = np.exp(rng.uniform(np.log(0.3), np.log(40.0), total))
    # Most particles come in 2–6 collimated sprays (σ ≈ 0.15 rad around an axis), the rest anywhere.
    n_jets = np.minimum(2 + rng.poisson(1.5, n_events), 6)
    axis_theta = np.arccos(rng.uniform(-0.9, 0.9, (n_events, 6)))
    axis_phi = rng.uniform(-np.pi, np.pi, (n_events, 6))
    jet = (rng.random(total) * n_jets[event]).astype(np.int64)
    in_jet = rng.random(total) < 0.85
    theta_j = axis_theta[event, jet]
    theta = np.where(in_jet, theta_j + 0.15 * rng.standard_normal(total), np.arccos(rng.uniform(-0.99, 0.99, total)))
    theta = np.clip(theta, 0.15, np.pi - 0.15)
    phi = np.where(in_jet, axis_phi[event, jet] + 0.15 * rng.standard_normal(total) / np.sin(theta_j),
                   rng.uniform(-np.pi, np.pi, total))
    phi = np.arctan2(np.sin(phi), np.cos(phi))
    cos_t = np.cos(theta)
    sin_t = np.sin(theta)
    px, py, pz = p * sin_t * np.cos(phi), p * sin_t * np.sin(phi), p * cos_t
    mass = _KIND_MASS[kind]
    energy = np.sqrt(p**2 + mass**2)
    pt = p * sin_t
    eta = np.arctanh(cos_t)

    starts = np.concatenate([[0], np.cumsum(n_part)[:-1]])
    local = np.arange(total) - starts[event]

    # Tracks.
    has_track = (charge != 0) & (np.abs(eta) < 2.4) & (pt > 0.2)
    t_gen = np.flatnonzero(has_track)
    t_event = event[t_gen]
    t_pt = pt[t_gen] * (1 + 1e-3 * rng.standard_normal(t_gen.size))
    tracks = {
        "track_gen_idx": local[t_gen],
        "track_charge": charge[t_gen],
        "track_omega": charge[t_gen] * K_PT * BFIELD / t_pt,
        "track_tanlambda": pz[t_gen] / pt[t_gen],
        "track_phi": phi[t_gen] + 1e-4 * rng.standard_normal(t_gen.size),
        "track_d0": 0.01 * rng.standard_normal(t_gen.size),
        "track_z0": 0.02 * rng.standard_normal(t_gen.size),
        "track_chi2": rng.chisquare(10, t_gen.size),
        "track_ndf": np.full(t_gen.size, 10),
        "track_dedx": rng.normal(3e-7, 2e-8, t_gen.size),
        "track_dedx_error": np.full(t_gen.size, 1.5e-8),
        "track_radius_innermost_hit": rng.uniform(30, 60, t_gen.size),
        "track_time": rng.normal(0, 0.05, t_gen.size),
    }

    # Clusters: deposits, some merged into the previous deposit's cluster of the same event.
    muon = np.abs(pdgid) == 13
    px_calo, py_calo, pz_calo = calo_position(px, py, pz, charge)
    reaches = np.isfinite(px_calo) & np.isfinite(pz_calo)
    deposits = (kind != 5) & (np.abs(eta) < 3.0) & reaches
    d_gen = np.flatnonzero(deposits)
    d_event = event[d_gen]
    d_energy = np.where(muon[d_gen], 1.0, energy[d_gen] * rng.normal(1.0, 0.05, d_gen.size).clip(0.5))
    first_in_event = np.ones(d_gen.size, dtype=bool)
    first_in_event[1:] = d_event[1:] != d_event[:-1]
    new_cluster = first_in_event | (rng.random(d_gen.size) >= merge_probability)
    d_cluster = np.cumsum(new_cluster) - 1  # global cluster id of each deposit
    n_clusters_total = int(d_cluster[-1] + 1) if d_cluster.size else 0
    c_event = d_event[new_cluster]
    c_first = np.concatenate([[0], np.cumsum(np.bincount(c_event, minlength=n_events))[:-1]])
    cx, cy, cz = px_calo[d_gen], py_calo[d_gen], pz_calo[d_gen]
    c_energy = np.bincount(d_cluster, weights=d_energy, minlength=n_clusters_total)
    c_ecal = np.bincount(d_cluster, weights=d_energy * _KIND_ECAL[kind[d_gen]], minlength=n_clusters_total)

    def weighted(v: np.ndarray) -> np.ndarray:
        return np.bincount(d_cluster, weights=d_energy * v, minlength=n_clusters_total) / c_energy

    x, y, z = weighted(cx), weighted(cy), weighted(cz)
    clusters = {
        "cluster_energy": c_energy,
        "cluster_x": x,
        "cluster_y": y,
        "cluster_z": z,
        "cluster_itheta": np.arctan2(np.hypot(x, y), z),
        "cluster_energy_ecal": c_ecal,
        "cluster_energy_hcal": (c_energy - c_ecal) * 0.95,
        "cluster_energy_other": (c_energy - c_ecal) * 0.05,
        "cluster_nhits": np.bincount(d_cluster, minlength=n_clusters_total) * 20,
        "cluster_sigma_x": rng.uniform(5, 50, n_clusters_total),
        "cluster_sigma_y": rng.uniform(5, 50, n_clusters_total),
        "cluster_sigma_z": rng.uniform(5, 50, n_clusters_total),
    }
    links = {
        "calolink_cluster_idx": d_cluster - c_first[d_event],
        "calolink_gen_idx": local[d_gen],
        "calolink_energy": d_energy,
    }
    gen = {
        "gen_pdgid": pdgid, "gen_charge": charge, "gen_px": px, "gen_py": py, "gen_pz": pz,
        "gen_energy": energy, "gen_mass": mass, "gen_status": np.ones(total),
        "gen_vx": np.zeros(total), "gen_vy": np.zeros(total), "gen_vz": np.zeros(total),
    }
    out: dict[str, Any] = {
        "event_number": np.arange(n_events, dtype=np.int64),
        "event_weight": np.ones(n_events, dtype=np.float32),
    }
    for values, ev in ((gen, event), (tracks, t_event), (clusters, c_event), (links, d_event)):
        counts = np.bincount(ev, minlength=n_events)
        for b, v in values.items():
            dtype = np.int32 if b in _INT_BRANCHES else np.float32
            out[b] = ak.unflatten(np.asarray(v).astype(dtype), counts)
    return out

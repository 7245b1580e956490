"""Secondaries made in the tracker material: photon conversions and nuclear interactions of hadrons.

The material between the beam and the ECAL face (TrackerConfig.material_*) is taken as spread uniformly
over the tracker cylinder, so the amount a particle crosses is proportional to its straight-line path
through it: x/X0 at normal incidence, growing as 1/sin θ in the barrel (endcap-bound particles stop
counting at the tracker's end). With μ the interaction coefficient per mm of path, a particle's first
interaction lies at a depth d ~ Exp(μ) into the material, and it interacts iff d is shorter than its
material path L, i.e. with probability 1 − exp(−μ L). Drawn without one random number per particle:
the particles' optical depths τ = μ L are laid end to end on one axis, on which a unit-rate Poisson
process is drawn (exponential gaps); a particle interacts where the process has a point inside its
segment, at the first such point. By the process's independence on disjoint segments and its
memorylessness this is exactly the per-particle law, with about Σ τ + (number of interactions)
random numbers instead of one per particle.

* A photon converts with μ = 7/9 per X0 (the high-energy pair-production length). The pair shares the
  energy with the complete-screening Bethe–Heitler spectrum dσ/dx ∝ 1 − 4/3 x(1 − x), drawn by
  rejection; both legs fly along the photon (opening angle ~ m_e/E, neglected) from the conversion point.
* A hadron (charged or neutral, not e, μ, γ or ν) interacts with μ = 1 per λI. It ends there; its
  energy goes to two secondaries: a charged primary gives a pion of its charge and a neutron, a neutral
  one a π+π− pair. The kinetic energy above the two masses is shared uniformly, and the pair gets
  opposite transverse kicks (Gaussian, TrackerConfig.nuclear_kick_gev per axis) about the primary's
  direction at the interaction, so momentum is conserved across the kick and energy in total. Hadrons
  with too little energy for the pair are left alone.

Charged primaries follow their helix to the interaction point (transverse path = 3D path × sin θ) and
the secondaries start with the primary's direction there. V0s (K0S, Λ) need nothing here: Pythia
decays them at lifetime-sampled vertices inside the decay cylinder (`processes.beam_settings`), and the
tracker starts their daughters' helices at those vertices.

Everything is vectorised numpy over the particles of a batch; the random numbers come from the
detector's Generator in a fixed order, so a batch is reproducible from its state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numba
import numpy as np

from colliderflow.generate.geometry import DetectorConfig, TrackerConfig
from colliderflow.generate.helix import BatchGeometry, curvature_per_mm
from colliderflow.generate.particles import ELECTRON_ABS_PDGID, MUON_ABS_PDGID, PHOTON_PDGID, GenParticles
from colliderflow.generate.records import interleave_columns, interleave_mask
from colliderflow.schema import NEUTRINO_PDGIDS

# Pair production: attenuation per radiation length at high energy (PDG, "Passage of particles").
PAIR_PER_RADIATION_LENGTH = 7.0 / 9.0
ELECTRON_MASS_GEV = 0.000510999
PION_MASS_GEV = 0.13957
NEUTRON_MASS_GEV = 0.939565
PION_PDGID, NEUTRON_PDGID = 211, 2112
_SPEED_OF_LIGHT_MM_PER_NS = 299.792458


@dataclass(frozen=True)
class Secondaries:
    """What the tracker material did to a batch's particles.

    `particles` are the detector-made secondaries, event-major; `parent` is the flat index (into the
    batch's truth particles) each comes from. `stopped` marks the truth particles that ended in the
    material (converted photons, interacting hadrons): they reach no calorimeter. `end_path` is, per
    truth particle, the transverse path (mm) at which it ended (inf if it did not).
    """

    particles: GenParticles
    parent: np.ndarray
    stopped: np.ndarray
    end_path: np.ndarray
    converted: np.ndarray  # mask over the truth particles: photons that converted
    interacted: np.ndarray  # mask over the truth particles: hadrons with a nuclear interaction


@numba.njit(cache=True, nogil=True)
def _path_to_radius(vx: float, vy: float, ux: float, uy: float, r: float) -> float:
    """Forward 3D path along the unit direction u from (vx, vy) to the cylinder of radius r (0 if
    outside it, inf along the beam)."""
    ut2 = ux * ux + uy * uy
    if ut2 <= 0.0:
        return math.inf
    b = (vx * ux + vy * uy) / ut2
    disc = b * b - (vx * vx + vy * vy - r * r) / ut2
    return max(-b + math.sqrt(max(disc, 0.0)), 0.0)


@numba.njit(cache=True, nogil=True)
def _interaction_kernel(rng, pdgid, charge, mass, energy, px, py, pz, vx, vy, vz, r_in, r_out, half_z,
                        per_mm_conversion, per_mm_nuclear, converted, interacted, path):
    """Per particle in order: is it a candidate (a photon above the pair threshold; a hadron above its
    secondaries' masses), its material path, and whether and where it interacts (the
    Poisson process on the optical-depth axis, module doc). Fills the masks and the 3D path from the
    vertex to the interaction.

    One compiled pass: the numpy form needed a dozen temporaries over every particle of the batch,
    for the ~1 % that interact.
    """
    axis = 0.0  # optical depth of the candidates so far
    arrival = -math.log1p(-rng.random())  # the process's next point on the axis
    for i in range(pdgid.shape[0]):
        apdg = abs(pdgid[i])
        if apdg == PHOTON_PDGID:
            if energy[i] <= 2.0 * ELECTRON_MASS_GEV:
                continue
            per_mm = per_mm_conversion
        elif apdg == ELECTRON_ABS_PDGID or apdg == MUON_ABS_PDGID or apdg in NEUTRINO_PDGIDS:
            continue
        else:
            threshold = PION_MASS_GEV + NEUTRON_MASS_GEV if charge[i] != 0.0 else 2.0 * PION_MASS_GEV
            if mass[i] <= 0.9 * PION_MASS_GEV or energy[i] <= threshold:
                continue
            per_mm = per_mm_nuclear
        if per_mm <= 0.0:
            continue
        p = math.sqrt(px[i] * px[i] + py[i] * py[i] + pz[i] * pz[i])
        if p <= 0.0:
            continue
        ux, uy, uz = px[i] / p, py[i] / p, pz[i] / p
        to_end_z = (math.copysign(half_z, uz) - vz[i]) / uz if uz != 0.0 else math.inf
        exit_path = min(_path_to_radius(vx[i], vy[i], ux, uy, r_out), max(to_end_z, 0.0))
        entry = min(_path_to_radius(vx[i], vy[i], ux, uy, r_in), exit_path)
        if exit_path <= entry:
            continue
        segment_end = axis + per_mm * (exit_path - entry)
        if arrival < segment_end:
            if apdg == PHOTON_PDGID:
                converted[i] = True
            else:
                interacted[i] = True
            path[i] = entry + (arrival - axis) / per_mm
            # Later points inside this segment do not matter; the process restarts at its end.
            arrival = segment_end - math.log1p(-rng.random())
        axis = segment_end


def _bethe_heitler_fraction(rng: np.random.Generator, n: int) -> np.ndarray:
    """Energy fractions of the electron, drawn from 1 − 4/3 x(1 − x) on [0, 1] by rejection (vectorised)."""
    x = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        trial = rng.random(todo.size)
        accept = rng.random(todo.size) < 1.0 - 4.0 / 3.0 * trial * (1.0 - trial)
        x[todo[accept]] = trial[accept]
        todo = todo[~accept]
    return x


def _perpendicular_basis(ux: np.ndarray, uy: np.ndarray, uz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to the unit vectors u and to each other, as [n, 3] arrays."""
    u = np.stack([ux, uy, uz], axis=1)
    helper = np.zeros_like(u)
    along_z = np.abs(uz) > 0.9
    helper[along_z, 0] = 1.0
    helper[~along_z, 2] = 1.0
    e1 = np.cross(u, helper)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(u, e1)


def _particles(event: np.ndarray, n_events: int, columns: dict[str, np.ndarray]) -> tuple[GenParticles, np.ndarray]:
    """Secondaries (columns flat, in any order) as event-major GenParticles, and the order used."""
    order = np.argsort(event, kind="stable")
    counts = np.bincount(event, minlength=n_events).astype(np.int64)
    taken = {name: values[order] for name, values in columns.items()}
    return GenParticles(counts=counts, event_weight=np.ones(n_events), **taken), order


def simulate_secondaries(gen: GenParticles, detector: DetectorConfig, rng: np.random.Generator) -> Secondaries:
    """Conversions and nuclear interactions of the batch `gen` in the tracker material (module doc)."""
    t = detector.tracker
    span = t.outer_radius_mm - t.material_inner_radius_mm
    n = gen.n_particles
    converted, interacted = np.zeros((2, n), dtype=bool)
    path, end_path = np.empty((2, n))  # one allocation: first touches of fresh memory are costly
    _interaction_kernel(
        rng, gen.pdgid, gen.charge, gen.mass, gen.energy, gen.px, gen.py, gen.pz, gen.vx, gen.vy, gen.vz,
        float(t.material_inner_radius_mm), float(t.outer_radius_mm), float(t.half_length_mm),
        PAIR_PER_RADIATION_LENGTH * t.material_radiation_lengths / span, t.material_interaction_lengths / span,
        converted, interacted, path,
    )  # fmt: skip
    stopped = converted | interacted
    idx = np.flatnonzero(stopped)
    p = np.sqrt(gen.px[idx] ** 2 + gen.py[idx] ** 2 + gen.pz[idx] ** 2)
    pt = gen.pt[idx]
    sin_theta = pt / p
    end_path.fill(np.inf)
    end_path[idx] = np.where(interacted[idx], path[idx] * sin_theta, np.inf)

    # Where and in which direction: straight for photons, along the helix for charged hadrons.
    s = path[idx] * sin_theta  # transverse path
    k = curvature_per_mm(gen.charge[idx], pt, float(detector.b_field_t))
    phi0 = np.arctan2(gen.py[idx], gen.px[idx])
    half = 0.5 * k * s
    chord = s * np.sinc(half / np.pi)
    x = gen.vx[idx] + chord * np.cos(phi0 - half)
    y = gen.vy[idx] + chord * np.sin(phi0 - half)
    z = gen.vz[idx] + path[idx] * gen.pz[idx] / p
    t_ns = gen.vt[idx] + path[idx] / _SPEED_OF_LIGHT_MM_PER_NS
    phi = phi0 - k * s
    ux, uy, uz = sin_theta * np.cos(phi), sin_theta * np.sin(phi), gen.pz[idx] / p
    energy = gen.energy[idx]
    is_conv = converted[idx]

    # Conversions: e-, e+ along the photon.
    frac = _bethe_heitler_fraction(rng, int(is_conv.sum()))
    e_conv = energy[is_conv]
    leg_e = np.concatenate([frac * e_conv, (1.0 - frac) * e_conv])
    leg_e = np.maximum(leg_e, ELECTRON_MASS_GEV)
    leg_p = np.sqrt(leg_e * leg_e - ELECTRON_MASS_GEV**2)
    conv_rows = np.tile(np.flatnonzero(is_conv), 2)
    leg_pdg = np.repeat([ELECTRON_ABS_PDGID, -ELECTRON_ABS_PDGID], is_conv.sum())
    leg_charge = np.repeat([-1.0, 1.0], is_conv.sum())

    # Nuclear interactions: (pion of the primary's charge, neutron) or (pi+, pi-).
    nuc = np.flatnonzero(~is_conv)
    q = gen.charge[idx][nuc]
    n_nuc = nuc.size
    m_a = np.full(n_nuc, PION_MASS_GEV)
    m_b = np.where(q != 0, NEUTRON_MASS_GEV, PION_MASS_GEV)
    kinetic = energy[nuc] - m_a - m_b
    share = rng.random(n_nuc)
    e_a, e_b = m_a + share * kinetic, m_b + (1.0 - share) * kinetic
    p_a, p_b = np.sqrt(e_a * e_a - m_a * m_a), np.sqrt(e_b * e_b - m_b * m_b)
    kick = t.nuclear_kick_gev * rng.standard_normal((n_nuc, 2))
    # The kick cannot exceed either momentum: scale it down where it would.
    kick_size = np.maximum(np.hypot(kick[:, 0], kick[:, 1]), 1e-300)
    kick *= (np.minimum(kick_size, 0.9 * np.minimum(p_a, p_b)) / kick_size)[:, None]
    e1, e2 = _perpendicular_basis(ux[nuc], uy[nuc], uz[nuc])
    kvec = kick[:, :1] * e1 + kick[:, 1:] * e2
    kt2 = np.sum(kvec * kvec, axis=1)
    along = np.stack([ux[nuc], uy[nuc], uz[nuc]], axis=1)
    mom_a = np.sqrt(p_a * p_a - kt2)[:, None] * along + kvec
    mom_b = np.sqrt(p_b * p_b - kt2)[:, None] * along - kvec
    nuc_pdg = np.concatenate([np.where(q != 0, PION_PDGID * np.sign(q), PION_PDGID).astype(np.int64),
                              np.where(q != 0, NEUTRON_PDGID, -PION_PDGID)])
    nuc_charge = np.concatenate([np.where(q != 0, q, 1.0), np.where(q != 0, 0.0, -1.0)])

    conv_dir = np.stack([ux, uy, uz], axis=1)[conv_rows]
    rows = np.concatenate([conv_rows, np.tile(nuc, 2)])
    mom = np.concatenate([leg_p[:, None] * conv_dir, mom_a, mom_b])
    parent = idx[rows]
    columns = {
        "pdgid": np.concatenate([leg_pdg, nuc_pdg]).astype(np.int32),
        "charge": np.concatenate([leg_charge, nuc_charge]),
        "px": mom[:, 0], "py": mom[:, 1], "pz": mom[:, 2],
        "energy": np.concatenate([leg_e, e_a, e_b]),
        "mass": np.concatenate([np.full(leg_e.size, ELECTRON_MASS_GEV), m_a, m_b]),
        "vx": x[rows], "vy": y[rows], "vz": z[rows], "vt": t_ns[rows],
    }  # fmt: skip
    particles, order = _particles(gen.event[parent], gen.n_events, columns)
    return Secondaries(particles=particles, parent=parent[order], stopped=stopped, end_path=end_path,
                       converted=converted, interacted=interacted)


def surviving_with_secondaries(
    gen: GenParticles, sec: Secondaries, geometry: BatchGeometry, sec_geometry: BatchGeometry
) -> tuple[GenParticles, BatchGeometry, np.ndarray, np.ndarray]:
    """The particles that reach the calorimeter: in each event the truth particles that did not stop in
    the material, then the secondaries; their `helix.BatchGeometry` (taken from `geometry`, `gen`'s,
    and `sec_geometry`, the secondaries', rather than computed again); for each, the flat truth index
    it stands for (its own, or its parent's, so that deposits are recorded against a truth particle),
    and whether it is a secondary."""
    kept = ~sec.stopped
    kept_counts = gen.counts - np.bincount(gen.event[sec.stopped], minlength=gen.n_events)
    is_secondary = interleave_mask(kept_counts, sec.particles.counts)
    names = ("pdgid", "charge", "px", "py", "pz", "energy", "mass", "vx", "vy", "vz", "vt")
    geometry_names = tuple(f.name for f in fields(BatchGeometry))
    primary = {n: getattr(gen, n) for n in names}
    primary.update({f"geometry_{n}": getattr(geometry, n) for n in geometry_names})
    primary["truth"] = np.arange(gen.n_particles)
    secondary = {n: getattr(sec.particles, n) for n in names}
    secondary.update({f"geometry_{n}": getattr(sec_geometry, n) for n in geometry_names})
    secondary["truth"] = sec.parent.astype(np.int64)
    joined = interleave_columns(primary, secondary, is_secondary, keep_a=kept)
    reaching = GenParticles(counts=kept_counts + sec.particles.counts, event_weight=gen.event_weight,
                            **{n: joined[n] for n in names})
    reaching_geometry = BatchGeometry(**{n: joined[f"geometry_{n}"] for n in geometry_names})
    truth = joined["truth"]
    return reaching, reaching_geometry, truth, is_secondary

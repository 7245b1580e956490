"""Parametric ECAL + HCAL: one sampled shower per particle, merged into clusters by cell.

Every visible particle that reaches the calorimeter showers from its impact point on the ECAL front
face (barrel r = 1.5 m, endcaps |z| = 2.307 m with a 260 mm beam hole): charged particles follow their
helix and must reach the face on their outgoing half-turn (curlers leave nothing), neutral ones a
straight line; neutrinos leave nothing. The total measured energy is smeared with the resolution of
the species' calorimetry (EM 15 %/sqrt(E) (+) 1 %, hadronic 50 %/sqrt(E) (+) 5 %, of E; E - m for
baryons, E + m for antibaryons); the shower then places that energy at a dozen or so sampled points:

* Electromagnetic (photons, electrons): depths from the Gamma profile in radiation lengths with
  t_max = ln(E / E_c) ± 0.5, fluctuating shower by shower; lateral distances from
  2 r R² / (r² + R²)² with 90 % inside the ECAL's effective Molière radius. Points behind the 22 X0
  ECAL are HCAL energy (longitudinal leakage).
* Hadrons: the first interaction at an exponential depth in interaction lengths (so 1 - e^-1 of them
  start in the 1 lambda_I ECAL); a charged hadron ionises like a MIP before it; from there an EM part
  (Groom's π0 fraction, fluctuating) showers compactly and the hadronic rest follows a Gamma profile
  in lambda_I with a wide lateral profile. Energy behind the HCAL leaks out.
* Muons: MIP deposits (log-normal) spread along their path through ECAL and HCAL.

ECAL and HCAL energies are sums over the points in each; the deposit's position is the points'
energy-weighted centroid and its spread their variance, so cluster shapes are computed, not assigned.
Parameters and their sources: docs/detector.md.

Merging is what makes this more than smearing: each shower leaves a fragment (a hadron shower also its
satellites, points beyond `hadron_fragment_radius_mm` from its axis), and cells.py clusters the
fragments by nearest-neighbour adjacency of the CLICdet cells they occupy (5.1 mm ECAL cells, 30 mm
HCAL tiles), so nearby showers become a single cluster, the confusion that particle flow has to undo,
and a hadron shower's halo can become a cluster of its own. noise.py adds clusters of cell noise.

A cluster's energy is the sum of its deposits (ECAL + HCAL; "other" is always 0 here), its position
and iTheta (the particles' polar angle, smeared by 0.01 / 0.05 rad) energy-weighted, its spread the
energy-weighted rms of all the sampled points of its fragments, and its hit count Poisson with 40 hits
per GeV in the ECAL, 15 in the HCAL (at least 1; above 30 expected hits its normal approximation).
Clusters below `cluster_energy_min_gev` (0.1 GeV) are dropped with their truth links; a particle with
fragments in one cluster has one link, with their summed energy.

The per-particle work is one compiled pass (written with numpy arrays, its temporaries made the
calorimeter about twice as slow), without reference counting (see showers.py; its scratch arrays are
passed in); random numbers come from the caller's numpy Generator in particle order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from colliderflow.generate.cells import cluster_fragments
from colliderflow.generate.geometry import DetectorConfig
from colliderflow.generate.helix import (
    C_GEV_PER_TESLA_METRE,
    STRAIGHT_CURVATURE,
    BatchGeometry,
    circle_geometry,
    circle_path_to_radius,
    line_path_to_radius,
    transverse_position,
)
from colliderflow.generate.noise import merge_clusters, noise_clusters
from colliderflow.generate.particles import ELECTRON_ABS_PDGID, MUON_ABS_PDGID, PHOTON_PDGID, GenParticles
from colliderflow.generate.records import Collection, counts_per_event
from colliderflow.generate.showers import (
    N_SUMS,
    S_ECAL,
    S_HCAL,
    S_L,
    S_W,
    S_X,
    S_XX,
    S_Y,
    S_YY,
    S_Z,
    S_ZZ,
    axis_basis,
    em_shower,
    hadron_shower,
    muon_shower,
)
from colliderflow.generate.tracker import particle_geometry
from colliderflow.numba_cache import cached_njit
from colliderflow.schema import NEUTRINO_PDGIDS, SIM_CLUSTER_BRANCHES

# Deposit kinds.
KIND_EM = 0
KIND_HADRON = 1
KIND_MIP = 2

_MM_PER_M = 1000.0
_NU_E, _NU_MU, _NU_TAU = NEUTRINO_PDGIDS


@dataclass(frozen=True)
class Deposits:
    """The calorimeter fragments of the particles that reached the calorimeter (flat, in particle order):
    one per shower, plus a hadron shower's satellites right after its core."""

    gen_index: np.ndarray  # int64, flat index into the GenParticles batch
    event: np.ndarray  # int64
    kind: np.ndarray  # int8, KIND_*
    e_ecal: np.ndarray  # GeV
    e_hcal: np.ndarray  # GeV
    x: np.ndarray  # mm, energy-weighted centroid of the shower's sampled points
    y: np.ndarray
    z: np.ndarray
    itheta: np.ndarray  # rad
    var_x: np.ndarray  # mm², energy-weighted variance of the sampled points about the centroid
    var_y: np.ndarray
    var_z: np.ndarray
    lateral_mean: np.ndarray  # mm, energy-weighted mean distance of the points from the shower axis
    satellite: np.ndarray  # bool: a satellite fragment of a hadron shower (its core is another deposit)

    @property
    def energy(self) -> np.ndarray:
        return self.e_ecal + self.e_hcal


class CalorimeterParams(NamedTuple):
    """A detector's calorimeter settings flattened to floats, the form the compiled kernel takes."""

    b_field_t: float
    ecal_barrel_radius_mm: float
    ecal_endcap_z_mm: float
    ecal_endcap_inner_radius_mm: float
    em_stochastic: float
    em_constant: float
    hadron_stochastic: float
    hadron_constant: float
    mip_ecal_gev: float
    mip_hcal_gev: float
    mip_log_width: float
    ecal_thickness_mm: float
    ecal_radiation_lengths: float
    ecal_interaction_lengths: float
    ecal_hcal_gap_mm: float
    hcal_thickness_mm: float
    hcal_interaction_lengths: float
    hcal_radiation_length_mm: float
    em_critical_energy_gev: float
    em_profile_b: float
    em_tmax_log_fluctuation: float
    ecal_moliere_radius_mm: float
    hadron_em_fraction_e0_gev: float
    hadron_em_fraction_k: float
    hadron_em_fraction_spread: float
    hadron_profile_scale: float
    hadron_lateral_radius_mm: float
    em_spots: float
    hadron_em_spots: float
    hadron_spots: float
    em_spot_shape: float
    hadron_spot_shape: float
    em_position_resolution_mm: float
    hadron_position_resolution_mm: float
    em_itheta_resolution: float
    hadron_itheta_resolution: float
    hadron_fragment_radius_mm: float
    hcal_cell_mm: float


def calorimeter_params(detector: DetectorConfig) -> CalorimeterParams:
    c = detector.calorimeter
    return CalorimeterParams(
        b_field_t=float(detector.b_field_t),
        **{name: float(getattr(c, name)) for name in CalorimeterParams._fields if name != "b_field_t"},
    )


@cached_njit(nogil=True)
def impact_point(x0, y0, z0, cos0, sin0, tl, k, barrel_r, endcap_z, hole_r):
    """(x, y, z, reached): where a trajectory first meets the ECAL front face.

    A charged particle must get there on its outgoing half-turn: one that curls up inside the barrel
    radius deposits nothing (in a real tracker it would spiral, lose energy in the material and, at
    best, leave scattered hits in an endcap). Particles leaving through the endcap hole reach nothing.
    A particle made beyond the face (a late decay of a long-lived neutral, whose parent would have
    showered there) deposits where the line from the origin to its production point meets the face.
    """
    dist, base = 0.0, 0.0
    if abs(k) >= STRAIGHT_CURVATURE:
        _, dist, base = circle_geometry(x0, y0, cos0, sin0, k)
    return impact_point_on_circle(x0, y0, z0, cos0, sin0, tl, k, math.sqrt(x0 * x0 + y0 * y0), dist, base, barrel_r,
                                  endcap_z, hole_r)


@cached_njit(nogil=True)
def impact_point_on_circle(x0, y0, z0, cos0, sin0, tl, k, r0, dist, base, barrel_r, endcap_z, hole_r):
    """`impact_point` given r0 = hypot(x0, y0) and the circle's dist and base (`helix.circle_geometry`,
    unused for a straight line), which the caller already has."""
    if r0 >= barrel_r or abs(z0) >= endcap_z:
        scale = min(barrel_r / r0 if r0 > 0.0 else math.inf, endcap_z / abs(z0) if z0 != 0.0 else math.inf)
        return x0 * scale, y0 * scale, z0 * scale, True
    if math.isinf(tl):
        # pT = 0 (the lepton PDF's collinear ISR photons have exactly that): no transverse motion, so
        # straight along z to an endcap, reached only outside its hole. The transverse path below would
        # send it to the barrel with z = ±inf.
        return x0, y0, math.copysign(endcap_z, tl), r0 >= hole_r
    max_path = math.pi / abs(k) if k != 0.0 else math.inf
    if abs(k) < STRAIGHT_CURVATURE:
        s_barrel = line_path_to_radius(x0, y0, cos0, sin0, barrel_r)
    else:
        s_barrel = circle_path_to_radius(k, dist, base, barrel_r)
    s_endcap = -1.0
    if tl != 0.0:
        s_endcap = ((endcap_z if tl > 0 else -endcap_z) - z0) / tl
    through_endcap = s_endcap > 0.0 and (s_barrel <= 0.0 or s_endcap < s_barrel)
    s = s_endcap if through_endcap else s_barrel
    if s <= 0.0 or s > max_path:
        return x0, y0, z0, False
    x, y = transverse_position(x0, y0, cos0, sin0, k, s)
    return x, y, z0 + s * tl, not (through_endcap and math.sqrt(x * x + y * y) < hole_r)


@cached_njit(nogil=True, _nrt=False)  # calls helix and showers kernels: numba_cache explains why not njit(cache=True)
def _deposit_kernel(
    rng,
    params,
    pdgid,
    charge,
    px,
    py,
    pz,
    energy,
    mass,
    vx,
    vy,
    vz,
    pt_all,
    r0_all,
    dist_all,
    base_all,
    gen_index,
    kind_out,
    e_ecal,
    e_hcal,
    x_out,
    y_out,
    z_out,
    itheta,
    var_x,
    var_y,
    var_z,
    lateral_mean,
    satellite,
    sums,
    sat_sums,
    buf,
    satellites,
):
    """Fill the output arrays with the fragments of every reaching visible particle; returns how many.

    pt_all, r0_all, dist_all and base_all are the particles' `helix.BatchGeometry`; sums, sat_sums, buf
    and satellites are scratch (`_scratch`).
    """
    curvature_per_inv_pt = C_GEV_PER_TESLA_METRE * params.b_field_t / _MM_PER_M
    n = 0
    for i in range(pdgid.shape[0]):
        a = abs(pdgid[i])
        if a == _NU_E or a == _NU_MU or a == _NU_TAU:
            continue
        pt = pt_all[i]
        if pt > 0.0:
            cos0, sin0, tl = px[i] / pt, py[i] / pt, pz[i] / pt
        else:
            cos0, sin0, tl = 1.0, 0.0, math.inf if pz[i] > 0 else -math.inf
        k = charge[i] * curvature_per_inv_pt / pt if (charge[i] != 0.0 and pt > 0.0) else 0.0
        x, y, z, reached = impact_point_on_circle(
            vx[i],
            vy[i],
            vz[i],
            cos0,
            sin0,
            tl,
            k,
            r0_all[i],
            dist_all[i],
            base_all[i],
            params.ecal_barrel_radius_mm,
            params.ecal_endcap_z_mm,
            params.ecal_endcap_inner_radius_mm,
        )
        if not reached:
            continue

        if pdgid[i] == PHOTON_PDGID or a == ELECTRON_ABS_PDGID:
            kind = KIND_EM
        elif a == MUON_ABS_PDGID:
            kind = KIND_MIP
        else:
            kind = KIND_HADRON
        em = kind == KIND_EM
        position_sigma = params.em_position_resolution_mm if em else params.hadron_position_resolution_mm
        # The shower axis: from the production point through the impact point (its cell is the deposit's).
        ux, uy, uz = x - vx[i], y - vy[i], z - vz[i]
        norm = math.sqrt(ux * ux + uy * uy + uz * uz)
        if norm > 0.0:
            ux, uy, uz = ux / norm, uy / norm, uz / norm
        else:
            p_abs = math.sqrt(px[i] ** 2 + py[i] ** 2 + pz[i] ** 2)
            ux, uy, uz = px[i] / p_abs, py[i] / p_abs, pz[i] / p_abs
        x = x + position_sigma * rng.standard_normal()
        y = y + position_sigma * rng.standard_normal()
        z = z + position_sigma * rng.standard_normal()
        sums[:] = 0.0
        n_sat = 0
        ax, ay, az, bx, by, bz = axis_basis(ux, uy, uz)
        u = (ux, uy, uz, ax, ay, az, bx, by, bz)
        if kind == KIND_MIP:
            muon_shower(rng, params, energy[i] - mass[i], x, y, z, u, sums)
        elif kind == KIND_EM:
            sigma = math.sqrt(params.em_stochastic * params.em_stochastic / energy[i] + params.em_constant**2)
            measured = max(energy[i] * (1.0 + sigma * rng.standard_normal()), 0.0)
            # Electrons start their shower half a radiation length earlier than photons (PDG: C = -0.5, +0.5).
            shift = -0.5 if a == ELECTRON_ABS_PDGID else 0.5
            em_shower(rng, params, measured, shift, 0.0, x, y, z, u, int(params.em_spots), sums, buf)
        else:
            # Baryons keep their rest mass, antibaryons annihilate it as well.
            baryon = 1.0 if (a % 10000) >= 1000 and a < 1000000 else 0.0
            available = energy[i] - baryon * (1.0 if pdgid[i] > 0 else -1.0) * mass[i]
            sigma = math.sqrt(params.hadron_stochastic**2 / max(available, 1e-12) + params.hadron_constant**2)
            measured = max(available * (1.0 + sigma * rng.standard_normal()), 0.0)
            n_sat = hadron_shower(rng, params, measured, charge[i] != 0.0, x, y, z, u, sums, buf, satellites,
                                  sat_sums)
        itheta_sigma = params.em_itheta_resolution if em else params.hadron_itheta_resolution
        theta = math.atan2(pt, pz[i]) + itheta_sigma * rng.standard_normal()
        # The shower's core first, then its satellites.
        for f in range(-1, n_sat):
            row = sums if f < 0 else satellites[f]
            ecal, hcal, weight = row[S_ECAL], row[S_HCAL], row[S_W]
            if ecal + hcal <= 0.0 or weight <= 0.0:
                continue
            gen_index[n] = i
            kind_out[n] = kind
            e_ecal[n] = ecal
            e_hcal[n] = hcal
            mx, my, mz = row[S_X] / weight, row[S_Y] / weight, row[S_Z] / weight
            x_out[n], y_out[n], z_out[n] = mx, my, mz
            var_x[n] = max(row[S_XX] / weight - mx * mx, 0.0)
            var_y[n] = max(row[S_YY] / weight - my * my, 0.0)
            var_z[n] = max(row[S_ZZ] / weight - mz * mz, 0.0)
            lateral_mean[n] = row[S_L] / weight
            itheta[n] = theta
            satellite[n] = f >= 0
            n += 1
    return n


def _scratch(params: CalorimeterParams) -> tuple[np.ndarray, ...]:
    """The deposit kernel's scratch: a shower's sums, a satellite's sums, spot weights, satellites' sums."""
    return (np.zeros(N_SUMS), np.zeros(N_SUMS),
            np.empty(max(int(params.em_spots), int(params.hadron_spots), int(params.hadron_em_spots), 1)),
            np.empty((max(int(params.hadron_spots), 1), N_SUMS)))  # fmt: skip


def simulate_deposits(gen: GenParticles, detector: DetectorConfig, rng: np.random.Generator,
                      geometry: BatchGeometry | None = None) -> Deposits:
    """The smeared deposit of every visible particle of `gen` that reaches the calorimeter.

    `geometry` is `gen`'s `helix.BatchGeometry` if the caller has it (it is computed otherwise).
    """
    geometry = geometry or particle_geometry(gen, detector)
    params = calorimeter_params(detector)
    # Room for every hadron's satellites (np.empty: pages that are never written cost nothing).
    n = gen.n_particles * (1 + max(int(params.hadron_spots), 0))
    gen_index = np.empty(n, dtype=np.int64)
    kind = np.empty(n, dtype=np.int8)
    values = {name: np.empty(n) for name in ("e_ecal", "e_hcal", "x", "y", "z", "itheta", "var_x", "var_y", "var_z",
                                           "lateral_mean")}
    satellite = np.empty(n, dtype=np.bool_)
    n_dep = _deposit_kernel(
        rng,
        params,
        gen.pdgid,
        gen.charge,
        gen.px,
        gen.py,
        gen.pz,
        gen.energy,
        gen.mass,
        gen.vx,
        gen.vy,
        gen.vz,
        geometry.pt,
        geometry.r0,
        geometry.dist,
        geometry.base,
        gen_index,
        kind,
        *values.values(),
        satellite,
        *_scratch(params),
    )
    gen_index = gen_index[:n_dep]
    return Deposits(
        gen_index=gen_index,
        event=gen.event[gen_index],
        kind=kind[:n_dep],
        **{name: v[:n_dep] for name, v in values.items()},
        satellite=satellite[:n_dep],
    )


# Above this many expected hits, the hit count is drawn from the normal approximation of the Poisson
# distribution (its relative skew, 1 / sqrt(mean), is below 20 %), which is several times cheaper.
_POISSON_NORMAL_ABOVE = 30.0


@numba.njit(cache=True, nogil=True)
def _build_clusters(
    rng, order, cluster_sorted, event, gen_local, e_ecal, e_hcal, x, y, z, itheta, var_x, var_y, var_z,
    energy_min, ecal_hits_per_gev, hcal_hits_per_gev, values, nhits, cluster_event,
    link_cluster, link_gen, link_energy, link_event,
):  # fmt: skip
    """Fill the cluster outputs (values: one column per entry of SIM_CLUSTER_BRANCHES, nhits excepted)
    for the clusters above `energy_min` and their truth links, from deposits sorted into clusters (see
    cells.cluster_fragments); returns (clusters, links) written. A particle whose core and satellites
    share a cluster gets one link with their summed energy.

    One streaming pass over each cluster's contiguous run of deposits: no per-cluster table is built,
    as fresh memory costs more here (page faults) than the arithmetic.
    """
    n_kept = 0
    n_links = 0
    previous_event = -1
    in_event = 0
    n = order.shape[0]
    start = 0
    while start < n:
        c = cluster_sorted[start]
        stop = start
        s_ecal = s_hcal = s_x = s_y = s_z = s_xx = s_yy = s_zz = s_itheta = 0.0
        while stop < n and cluster_sorted[stop] == c:
            d = order[stop]
            w = e_ecal[d] + e_hcal[d]
            s_ecal += e_ecal[d]
            s_hcal += e_hcal[d]
            s_x += w * x[d]
            s_y += w * y[d]
            s_z += w * z[d]
            # Second moments of all the cluster's sampled points: each deposit's centroid and spread.
            s_xx += w * (x[d] * x[d] + var_x[d])
            s_yy += w * (y[d] * y[d] + var_y[d])
            s_zz += w * (z[d] * z[d] + var_z[d])
            s_itheta += w * itheta[d]
            stop += 1
        energy = s_ecal + s_hcal
        if energy < energy_min or energy <= 0.0:
            start = stop
            continue
        ev = event[order[start]]
        if ev != previous_event:
            previous_event = ev
            in_event = 0  # clusters are numbered within their event (they come event-major)
        mx, my, mz = s_x / energy, s_y / energy, s_z / energy
        values[0, n_kept] = energy
        values[1, n_kept] = mx
        values[2, n_kept] = my
        values[3, n_kept] = mz
        values[4, n_kept] = s_itheta / energy
        values[5, n_kept] = s_ecal
        values[6, n_kept] = s_hcal
        values[7, n_kept] = 0.0  # no energy outside ECAL and HCAL in this model
        # Spread: the energy-weighted rms of all sampled shower points of the cluster.
        values[8, n_kept] = math.sqrt(max(s_xx / energy - mx * mx, 0.0))
        values[9, n_kept] = math.sqrt(max(s_yy / energy - my * my, 0.0))
        values[10, n_kept] = math.sqrt(max(s_zz / energy - mz * mz, 0.0))
        # A Poisson-like number of hits, at least 1 (written out here: a call would incref the Generator).
        expected = ecal_hits_per_gev * s_ecal + hcal_hits_per_gev * s_hcal
        if expected < _POISSON_NORMAL_ABOVE:
            nhits[n_kept] = max(1, rng.poisson(expected))
        else:
            nhits[n_kept] = max(1, int(expected + math.sqrt(expected) * rng.standard_normal() + 0.5))
        cluster_event[n_kept] = ev
        # Links, in particle order within the cluster (the sort is stable).
        for j in range(start, stop):
            d = order[j]
            if j > start and gen_local[d] == gen_local[order[j - 1]]:  # the same particle's next fragment
                link_energy[n_links - 1] += e_ecal[d] + e_hcal[d]
                continue
            link_cluster[n_links] = in_event
            link_gen[n_links] = gen_local[d]
            link_energy[n_links] = e_ecal[d] + e_hcal[d]
            link_event[n_links] = ev
            n_links += 1
        in_event += 1
        n_kept += 1
        start = stop
    return n_kept, n_links


# The float columns `_build_clusters` fills, in the order of its `values` rows.
_CLUSTER_VALUES = tuple(name for name in SIM_CLUSTER_BRANCHES if name != "cluster_nhits")


def cluster_deposits(
    deposits: Deposits, gen: GenParticles, detector: DetectorConfig, rng: np.random.Generator
) -> tuple[Collection, Collection]:
    """(clusters, truth links) from the deposits of a batch of events: SIM_CLUSTER / SIM_CALOLINK columns."""
    calo = detector.calorimeter
    order, cluster_sorted, n_clusters = cluster_fragments(
        deposits.event, deposits.x, deposits.y, deposits.z, deposits.e_ecal, deposits.e_hcal, deposits.lateral_mean,
        deposits.satellite, calo,
    )
    n_deposits = len(order)
    values = np.empty((len(_CLUSTER_VALUES), n_clusters), dtype=np.float32)
    nhits = np.empty(n_clusters, dtype=np.int32)
    cluster_event = np.empty(n_clusters, dtype=np.int64)
    link_cluster = np.empty(n_deposits, dtype=np.int32)
    link_gen = np.empty(n_deposits, dtype=np.int32)
    link_energy = np.empty(n_deposits, dtype=np.float32)
    link_event = np.empty(n_deposits, dtype=np.int64)
    n_kept, n_links = _build_clusters(
        rng, order, cluster_sorted, deposits.event, gen.local_index[deposits.gen_index], deposits.e_ecal,
        deposits.e_hcal, deposits.x, deposits.y, deposits.z, deposits.itheta, deposits.var_x, deposits.var_y,
        deposits.var_z,
        float(calo.cluster_energy_min_gev), float(calo.ecal_hits_per_gev), float(calo.hcal_hits_per_gev),
        values, nhits, cluster_event, link_cluster, link_gen, link_energy, link_event,
    )  # fmt: skip
    columns = {name: values[i, :n_kept] for i, name in enumerate(_CLUSTER_VALUES)}
    columns["cluster_nhits"] = nhits[:n_kept]
    clusters = Collection(
        counts=counts_per_event(cluster_event[:n_kept], gen.n_events),
        columns={name: columns[name] for name in SIM_CLUSTER_BRANCHES},
    )
    links = Collection(
        counts=counts_per_event(link_event[:n_links], gen.n_events),
        columns={
            "calolink_cluster_idx": link_cluster[:n_links],
            "calolink_gen_idx": link_gen[:n_links],
            "calolink_energy": link_energy[:n_links],
        },
    )
    return clusters, links


def simulate_calorimeter(
    gen: GenParticles, detector: DetectorConfig, rng: np.random.Generator, geometry: BatchGeometry | None = None
) -> tuple[Collection, Collection]:
    """Clusters and (cluster, particle) energy links for a batch of events (`geometry`: see simulate_deposits).

    Each event's noise clusters (noise.py, no truth link) follow its particles' clusters.
    """
    clusters, links = cluster_deposits(simulate_deposits(gen, detector, rng, geometry), gen, detector, rng)
    noise = noise_clusters(gen.n_events, detector.calorimeter, rng)
    if noise.n_rows:
        clusters = merge_clusters(clusters, noise)
    return clusters, links

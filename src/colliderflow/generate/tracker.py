"""Parametric silicon tracker: which charged particles become tracks, and their smeared helix parameters.

Hits are counted by intersecting each particle's helix with the barrel layers and endcap disks of the
tracker (outgoing half-turn only), so that the number of degrees of freedom and the radius of the
innermost hit respond to the production vertex and the direction the way a real tracker's would. The
resolutions are the usual parametrisations (see TrackerConfig), applied to the parameters EDM4hep's
TrackState stores at the point of closest approach (PCA) to the beam line.

The whole per-particle chain (acceptance, geometry, efficiency, smearing) is one compiled pass over the
particles of a batch: written with numpy arrays, its temporaries made the same work about twice as
slow. The random numbers come from the caller's numpy Generator, drawn in particle order, so a batch is
reproducible from the Generator's state.

dE/dx is a Bethe-Bloch-like shape (minimum at beta*gamma ~ 3.4, relativistic rise saturating at ~1.26
times the minimum) scaled to the most probable MIP loss in silicon, with a Gaussian 7 % resolution of
the truncated mean; its error is that 7 %. The track time is the production time smeared by 0.1 ns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from colliderflow.generate.geometry import DetectorConfig, TrackerConfig
from colliderflow.generate.helix import (
    C_GEV_PER_TESLA_METRE,
    STRAIGHT_CURVATURE,
    BatchGeometry,
    Helices,
    batch_geometry,
    circle_geometry,
    closest_approach_on_circle,
    line_path_to_radius,
    transverse_position,
    turn_to_radius,
)
from colliderflow.generate.particles import GenParticles
from colliderflow.generate.records import Collection, counts_per_event
from colliderflow.numba_cache import cached_njit

# A track fit with n two-dimensional hits has 2 n - 5 degrees of freedom (5 helix parameters).
HELIX_PARAMETERS = 5
MEASUREMENTS_PER_HIT = 2
_MM_PER_M = 1000.0

# dE/dx shape: constant inside the logarithm, chosen so the minimum sits at beta*gamma ~ 3.4, and the
# beta*gamma above which the relativistic rise saturates (density effect), at ~1.26x the minimum.
_BETHE_LOG_CONSTANT = 10.0
_BETHE_SATURATION = 30.0
_BETHE_MIN_BETA_GAMMA = 0.05


@numba.njit(cache=True, nogil=True)
def bethe_shape(beta_gamma: float) -> float:
    """A Bethe-Bloch-like dE/dx(beta*gamma), unnormalised: 1/beta^2 at low momentum, then a saturating
    logarithmic rise."""
    bg = max(beta_gamma, _BETHE_MIN_BETA_GAMMA)
    inv_beta2 = 1.0 + 1.0 / (bg * bg)
    return inv_beta2 * (_BETHE_LOG_CONSTANT + 2.0 * math.log(min(bg, _BETHE_SATURATION))) - 1.0


# Normalisation: the shape's minimum is the minimum-ionising value (found with the uncompiled function,
# so that importing this module compiles nothing).
DEDX_MINIMUM = min(bethe_shape.py_func(float(bg)) for bg in np.geomspace(0.5, 50.0, 2001))


@numba.njit(cache=True, nogil=True)
def dedx_mean(p: float, mass: float, mip_gev_per_mm: float) -> float:
    """Mean specific ionisation (GeV/mm) of a particle of momentum `p` and `mass` (GeV)."""
    beta_gamma = p / mass if mass > 0 else math.inf
    return mip_gev_per_mm * bethe_shape(beta_gamma) / DEDX_MINIMUM


class TrackerParams(NamedTuple):
    """A detector's tracker settings flattened to floats, the form the compiled kernels take."""

    b_field_t: float
    cos_theta_max: float
    pt_min_gev: float
    min_hits: float
    outer_radius_mm: float
    half_length_mm: float
    efficiency_plateau: float
    efficiency_low_pt_drop: float
    efficiency_low_pt_scale_gev: float
    displaced_radius_mm: float
    displaced_efficiency_factor: float
    inv_pt_resolution_const: float
    inv_pt_resolution_ms: float
    angle_resolution_const: float
    angle_resolution_ms: float
    impact_resolution_const_mm: float
    impact_resolution_ms_mm: float
    time_resolution_ns: float
    dedx_mip_gev_per_mm: float
    dedx_relative_resolution: float


def tracker_params(detector: DetectorConfig) -> TrackerParams:
    t = detector.tracker
    return TrackerParams(
        b_field_t=float(detector.b_field_t),
        **{name: float(getattr(t, name)) for name in TrackerParams._fields if name != "b_field_t"},
    )


def particle_geometry(gen: GenParticles, detector: DetectorConfig) -> BatchGeometry:
    """The helix numbers of `gen`'s particles that tracker and calorimeter share (`helix.BatchGeometry`)."""
    return batch_geometry(px=gen.px, py=gen.py, charge=gen.charge, vx=gen.vx, vy=gen.vy, pt=gen.pt,
                          b_field_t=float(detector.b_field_t))


def _surfaces(tracker: TrackerConfig) -> tuple[np.ndarray, ...]:
    """Layer radii and half-lengths sorted by radius; disk |z|, r_min, r_max sorted by |z| (the kernel
    stops at the first surface out of reach)."""
    layers = np.asarray(tracker.barrel_layers_mm, dtype=np.float64).reshape(-1, 2)
    layers = layers[np.argsort(layers[:, 0])]
    disks = np.asarray(tracker.disks_mm, dtype=np.float64).reshape(-1, 3)
    disks = disks[np.argsort(disks[:, 0])]
    return (
        np.ascontiguousarray(layers[:, 0]),
        np.ascontiguousarray(layers[:, 1]),
        np.ascontiguousarray(disks[:, 0]),
        np.ascontiguousarray(disks[:, 1]),
        np.ascontiguousarray(disks[:, 2]),
    )


@cached_njit(nogil=True, _nrt=False)  # no refcounting of its arrays on each call (see showers.py)
def _count_hits(x0, y0, z0, cos0, sin0, tl, k, r0, dist, base, layer_r, layer_half_z, disk_z, disk_rmin,
                disk_rmax, disk_rmax_max, s_end):
    """(hits, innermost hit radius) of one helix on the outgoing half-turn; bounds decide most surfaces
    without trigonometry, the exact crossing is computed only when they do not.

    r0 = hypot(x0, y0); dist and base describe the circle (`helix.circle_geometry`, unused for a
    straight line): the caller has them already, so they are not computed twice. disk_rmax_max is
    disk_rmax.max(), the same for every helix. s_end is the transverse path after which the particle
    ends (a nuclear interaction, `secondaries`; inf if it does not): surfaces beyond it have no hit.
    """
    half_pi = 0.5 * math.pi
    abs_tl = abs(tl)
    abs_z0 = abs(z0)
    straight = abs(k) < STRAIGHT_CURVATURE
    outward = x0 * cos0 + y0 * sin0 >= 0.0
    big_r, max_path, cx, cy = 0.0, math.inf, 0.0, 0.0
    r_half_turn = math.nan  # computed when first needed (it costs a hypot)
    if not straight:
        rho = 1.0 / k
        big_r = abs(rho)
        cx = x0 + rho * sin0
        cy = y0 - rho * cos0
        max_path = math.pi * big_r
    n_hits = 0
    inner = math.inf
    r_end = math.inf
    if s_end < math.inf:
        # Within the outgoing half-turn the radius grows with the path: no layer beyond r_end is reached.
        x_end, y_end = transverse_position(x0, y0, cos0, sin0, k, s_end)
        r_end = math.sqrt(x_end * x_end + y_end * y_end)
        max_path = min(max_path, s_end)
    for j in range(layer_r.shape[0]):
        r = layer_r[j]
        if r > r_end:
            break
        half_z = layer_half_z[j]
        if straight:
            s = line_path_to_radius(x0, y0, cos0, sin0, r)
            if s <= 0.0 or abs(z0 + s * tl) > half_z:
                continue
        else:
            if r > dist + big_r:
                break  # beyond the farthest point of the circle, as are all larger layers
            if r > r0 and not outward and math.isnan(r_half_turn):
                # After half a turn the particle is diametrically opposite its start, at 2 c - v.
                r_half_turn = math.hypot(2.0 * cx - x0, 2.0 * cy - y0)
            if r > r0 and (outward or r <= r_half_turn):
                # The particle then crosses r within the half-turn (moving outwards, its radius grows
                # until the farthest point; moving inwards, it is already growing again at the half-turn
                # and has passed r there), after a path between r - r0 and (pi / 2)(r + r0), since the
                # chord of at most half a turn is at least 2 / pi of the arc. Decide from these bounds on
                # z when they suffice.
                if abs_z0 + half_pi * (r + r0) * abs_tl <= half_z:
                    n_hits += 1
                    inner = min(inner, r)
                    continue
                if (r - r0) * abs_tl - abs_z0 > half_z:
                    continue
            turn = turn_to_radius(big_r, dist, base, r)
            s = turn * big_r
            if turn <= 0.0 or s > max_path or abs(z0 + s * tl) > half_z:
                continue
        n_hits += 1
        inner = min(inner, r)
    if tl != 0.0 and disk_z.shape[0] > 0:
        side = 1.0 if tl > 0 else -1.0
        inv_tl = 1.0 / tl
        # Beyond this path even the chord's lower bound puts the particle outside every disk.
        s_beyond_disks = half_pi * (disk_rmax_max + r0)
        for j in range(disk_z.shape[0]):
            s = (side * disk_z[j] - z0) * inv_tl
            if s <= 0.0:
                continue
            if s > max_path or s > s_beyond_disks:
                break  # disks are sorted by |z|: the others are farther along the path
            # The chord after path s lies between s max(2 / pi, 1 - (k s)^2 / 24) and s, and the radius
            # within r0 of the chord: most disks are decided without trigonometry.
            r_low = s * max(2.0 / math.pi, 1.0 - (k * s) ** 2 / 24.0) - r0
            r_high = s + r0
            if r_low > disk_rmax[j] or r_high < disk_rmin[j]:
                continue
            if r_low >= disk_rmin[j] and r_high <= disk_rmax[j] and r_low >= inner:
                n_hits += 1  # certainly on the disk, and not the innermost hit
                continue
            x, y = transverse_position(x0, y0, cos0, sin0, k, s)
            r = math.sqrt(x * x + y * y)
            if r < disk_rmin[j] or r > disk_rmax[j]:
                continue
            n_hits += 1
            inner = min(inner, r)
    return n_hits, inner


@dataclass(frozen=True)
class TrackGeometry:
    """What the tracker geometry gives each helix: number of hits, innermost hit radius (mm; inf if none)
    and the true helix parameters at the PCA (d0, z0 in mm, phi in rad)."""

    hits: np.ndarray
    innermost: np.ndarray
    d0: np.ndarray
    z0: np.ndarray
    phi: np.ndarray


def trace_tracks(helices: Helices, tracker: TrackerConfig) -> TrackGeometry:
    """Hits, innermost hit and PCA parameters of each helix, without efficiency or smearing."""
    n = len(helices)
    out = TrackGeometry(
        hits=np.zeros(n, dtype=np.int32),
        innermost=np.full(n, np.inf),
        d0=np.empty(n),
        z0=np.empty(n),
        phi=np.empty(n),
    )
    _trace_kernel(
        helices.x0,
        helices.y0,
        helices.z0,
        np.cos(helices.phi0),
        np.sin(helices.phi0),
        np.ascontiguousarray(helices.tan_lambda),
        np.ascontiguousarray(helices.curvature),
        *_surfaces(tracker),
        out.hits,
        out.innermost,
        out.d0,
        out.z0,
        out.phi,
    )
    return out


@cached_njit(nogil=True)
def _trace_kernel(
    x0,
    y0,
    z0,
    cos0,
    sin0,
    tan_lambda,
    curvature,
    layer_r,
    layer_half_z,
    disk_z,
    disk_rmin,
    disk_rmax,
    hits,
    innermost,
    d0,
    z0_pca,
    phi_pca,
):
    disk_rmax_max = disk_rmax.max() if disk_rmax.shape[0] > 0 else 0.0
    for i in range(x0.shape[0]):
        k = curvature[i]
        dist, base = 0.0, 0.0
        if abs(k) >= STRAIGHT_CURVATURE:
            _, dist, base = circle_geometry(x0[i], y0[i], cos0[i], sin0[i], k)
        hits[i], innermost[i] = _count_hits(
            x0[i], y0[i], z0[i], cos0[i], sin0[i], tan_lambda[i], k, math.sqrt(x0[i] * x0[i] + y0[i] * y0[i]), dist,
            base, layer_r, layer_half_z, disk_z, disk_rmin, disk_rmax, disk_rmax_max, math.inf,
        )  # fmt: skip
        d0[i], z0_pca[i], phi_pca[i] = closest_approach_on_circle(
            x0[i], y0[i], z0[i], cos0[i], sin0[i], tan_lambda[i], k, dist
        )


@numba.njit(cache=True, nogil=True, _nrt=False)
def tracking_efficiency(pt: float, production_radius: float, tracker: TrackerParams) -> float:
    """Probability that a track in the acceptance is found: a plateau, lower at low pT and when displaced."""
    eff = tracker.efficiency_plateau - tracker.efficiency_low_pt_drop * math.exp(
        -(pt - tracker.pt_min_gev) / tracker.efficiency_low_pt_scale_gev
    )
    if production_radius > tracker.displaced_radius_mm:
        eff *= tracker.displaced_efficiency_factor
    return min(max(eff, 0.0), 1.0)


@numba.njit(cache=True, nogil=True, _nrt=False)
def inv_pt_resolution(pt: float, sin_theta: float, tracker: TrackerParams) -> float:
    """sigma(1/pT) in 1/GeV: constant (+) multiple-scattering term."""
    return math.hypot(tracker.inv_pt_resolution_const, tracker.inv_pt_resolution_ms / (pt * sin_theta))


@cached_njit(nogil=True)  # calls helix kernels: numba_cache explains why not njit(cache=True)
def _track_kernel(
    rng,
    params,
    px,
    py,
    pz,
    charge,
    mass,
    vx,
    vy,
    vz,
    vt,
    pt_all,
    r0_all,
    dist_all,
    base_all,
    layer_r,
    layer_half_z,
    disk_z,
    disk_rmin,
    disk_rmax,
    end_path,
    gen_index,
    out_charge,
    omega,
    tan_lambda,
    phi,
    d0,
    z0,
    chi2,
    ndf,
    dedx,
    innermost,
    time,
):
    """Fill the output arrays with the found tracks, in particle order; returns how many were found.

    pt_all, r0_all, dist_all and base_all are the particles' `helix.BatchGeometry`; end_path the
    transverse path at which each particle ends (inf: it crosses the whole tracker).
    """
    n_found = 0
    curvature_per_inv_pt = C_GEV_PER_TESLA_METRE * params.b_field_t / _MM_PER_M
    disk_rmax_max = disk_rmax.max() if disk_rmax.shape[0] > 0 else 0.0
    for i in range(px.shape[0]):
        q = charge[i]
        if q == 0.0:
            continue
        pt = pt_all[i]
        if pt <= params.pt_min_gev:
            continue
        p = math.sqrt(pt * pt + pz[i] * pz[i])
        if abs(pz[i] / p) >= params.cos_theta_max:
            continue
        r0 = r0_all[i]
        if r0 >= params.outer_radius_mm or abs(vz[i]) >= params.half_length_mm:
            continue
        cos0 = px[i] / pt
        sin0 = py[i] / pt
        tl = pz[i] / pt
        k = q * curvature_per_inv_pt / pt
        hits, inner = _count_hits(
            vx[i], vy[i], vz[i], cos0, sin0, tl, k, r0, dist_all[i], base_all[i], layer_r, layer_half_z, disk_z,
            disk_rmin, disk_rmax, disk_rmax_max, end_path[i],
        )  # fmt: skip
        found = rng.random() < tracking_efficiency(pt, r0, params)
        if hits < params.min_hits or not found:
            continue

        true_d0, true_z0, true_phi = closest_approach_on_circle(vx[i], vy[i], vz[i], cos0, sin0, tl, k, dist_all[i])
        sin_theta = pt / p
        # Curvature: smear the signed 1/pT; the measured charge is its sign.
        kappa = q / pt + inv_pt_resolution(pt, sin_theta, params) * rng.standard_normal()
        # Angles: a point-resolution term and multiple scattering. tan(lambda) = cot(theta) moves by
        # (1 + tan(lambda)^2) per radian of theta.
        angle_sigma = math.hypot(params.angle_resolution_const, params.angle_resolution_ms / (p * math.sqrt(sin_theta)))
        tl_meas = tl + angle_sigma * (1.0 + tl * tl) * rng.standard_normal()
        phi_meas = true_phi + angle_sigma * rng.standard_normal() + math.pi
        phi_meas = phi_meas - 2.0 * math.pi * math.floor(phi_meas / (2.0 * math.pi)) - math.pi
        ms_over_p = params.impact_resolution_ms_mm / p
        sin_theta_15 = sin_theta * math.sqrt(sin_theta)
        d0_sigma = math.hypot(params.impact_resolution_const_mm, ms_over_p / sin_theta_15)
        z0_sigma = math.hypot(params.impact_resolution_const_mm, ms_over_p / (sin_theta_15 * sin_theta))
        n_dof = MEASUREMENTS_PER_HIT * hits - HELIX_PARAMETERS

        gen_index[n_found] = i
        out_charge[n_found] = 1.0 if kappa >= 0.0 else -1.0
        omega[n_found] = kappa * curvature_per_inv_pt
        tan_lambda[n_found] = tl_meas
        phi[n_found] = phi_meas
        d0[n_found] = true_d0 + d0_sigma * rng.standard_normal()
        z0[n_found] = true_z0 + z0_sigma * rng.standard_normal()
        chi2[n_found] = rng.chisquare(float(max(n_dof, 1)))
        ndf[n_found] = n_dof
        dedx[n_found] = dedx_mean(p, mass[i], params.dedx_mip_gev_per_mm) * max(
            1.0 + params.dedx_relative_resolution * rng.standard_normal(), 0.0
        )
        innermost[n_found] = inner
        time[n_found] = vt[i] + params.time_resolution_ns * rng.standard_normal()
        n_found += 1
    return n_found


def simulate_tracks(gen: GenParticles, detector: DetectorConfig, rng: np.random.Generator,
                    geometry: BatchGeometry | None = None, *, end_path: np.ndarray | None = None,
                    truth_index: np.ndarray | None = None) -> Collection:
    """Tracks (SIM_TRACK_BRANCHES columns) of the charged particles of `gen` that the tracker finds.

    `geometry` is `gen`'s `helix.BatchGeometry` if the caller has it (it is computed otherwise).
    `end_path` is the transverse path (mm) after which each particle stops (a nuclear interaction; inf
    or None: never). `truth_index` is what track_gen_idx records for each particle (default: its own
    index in its event; detector-made secondaries record their truth parent's).
    """
    geometry = geometry or particle_geometry(gen, detector)
    n = gen.n_particles
    if end_path is None:
        end_path = np.full(n, np.inf)
    f32 = np.float32
    gen_index, ndf = np.empty((2, n), dtype=np.int64)  # one allocation (see below)
    # The kernel writes the output columns directly (float32), rows of one block: fresh memory is costly
    # (page faults), one allocation per column more so.
    names = ("charge", "omega", "tanlambda", "phi", "d0", "z0", "chi2", "dedx", "innermost", "time")
    cols = dict(zip(names, np.empty((len(names), n), dtype=f32), strict=True))
    n_found = _track_kernel(
        rng,
        tracker_params(detector),
        gen.px,
        gen.py,
        gen.pz,
        gen.charge,
        gen.mass,
        gen.vx,
        gen.vy,
        gen.vz,
        gen.vt,
        geometry.pt,
        geometry.r0,
        geometry.dist,
        geometry.base,
        *_surfaces(detector.tracker),
        np.ascontiguousarray(end_path, dtype=np.float64),
        gen_index,
        cols["charge"],
        cols["omega"],
        cols["tanlambda"],
        cols["phi"],
        cols["d0"],
        cols["z0"],
        cols["chi2"],
        ndf,
        cols["dedx"],
        cols["innermost"],
        cols["time"],
    )
    keep = gen_index[:n_found]
    event = gen.event[keep]

    def column(name: str) -> np.ndarray:
        return cols[name][:n_found]

    dedx = column("dedx")
    columns = {
        "track_gen_idx": (keep - gen.offsets[event] if truth_index is None else truth_index[keep]).astype(np.int32),
        "track_charge": column("charge"),
        "track_omega": column("omega"),
        "track_tanlambda": column("tanlambda"),
        "track_phi": column("phi"),
        "track_d0": column("d0"),
        "track_z0": column("z0"),
        "track_chi2": column("chi2"),
        "track_ndf": ndf[:n_found].astype(np.int32),
        "track_dedx": dedx,
        "track_dedx_error": (detector.tracker.dedx_relative_resolution * dedx).astype(f32),
        "track_radius_innermost_hit": column("innermost"),
        "track_time": column("time"),
    }
    return Collection(counts=counts_per_event(event, gen.n_events), columns=columns)

"""Sampled shower profiles: where a particle's calorimeter energy goes, point by point.

Each function adds energy-carrying points of one shower to running sums (ECAL and HCAL energy, total
weight, first and second moments of the positions), from which the calorimeter builds a deposit's
centroid and spread. Depths are tracked in interaction lengths behind the ECAL face and converted to
millimetres through the ECAL, the gap and the HCAL (`CalorimeterParams`, see calorimeter.py and
docs/detector.md for the numbers and their sources). Compiled with numba; random numbers come from the
caller's numpy Generator.

The functions are compiled without numba's reference counting (`_nrt=False`): they allocate nothing, and
with it every call increfs and decrefs the Generator and the scratch arrays it is passed (atomic
operations), which was half the calorimeter's time. A function here that needs to allocate, or a
Generator method that does (poisson), cannot be compiled this way.
"""

from __future__ import annotations

import math

import numba
# Running sums of a shower's sampled points: ECAL and HCAL energy, total weight, first and second moments,
# and the energy-weighted distance from the shower axis (the lateral size the cells see).
S_ECAL, S_HCAL, S_W, S_X, S_Y, S_Z, S_XX, S_YY, S_ZZ, S_L = range(10)
N_SUMS = 10


@numba.njit(cache=True, nogil=True, _nrt=False)
def axis_basis(ux, uy, uz):
    """Two unit vectors perpendicular to the unit shower axis (ux, uy, uz) and to each other."""
    if abs(uz) < 0.9:
        ax, ay, az = -uy, ux, 0.0
    else:
        ax, ay, az = 0.0, -uz, uy
    an = math.sqrt(ax * ax + ay * ay + az * az)
    ax, ay, az = ax / an, ay / an, az / an
    return ax, ay, az, uy * az - uz * ay, uz * ax - ux * az, ux * ay - uy * ax


@numba.njit(cache=True, nogil=True, _nrt=False)
def _add_point(params, sums, e, depth_lambda, depth_mm, x, y, z, u, lateral_mm, rng):
    """Deposit `e` GeV at `depth_mm` along the axis, `lateral_mm` off it in a random direction.

    `depth_lambda` (interaction lengths from the ECAL face) decides the sub-detector: the ECAL up to its
    depth, then the HCAL; beyond the HCAL the energy leaks out and is lost.
    """
    if depth_lambda >= params.ecal_interaction_lengths + params.hcal_interaction_lengths:
        return
    if depth_lambda < params.ecal_interaction_lengths:
        sums[S_ECAL] += e
    else:
        sums[S_HCAL] += e
    c, s = _azimuth(rng)
    _add_at(sums, e, depth_mm, x, y, z, u, lateral_mm * c, lateral_mm * s)
    sums[S_L] += e * lateral_mm


@numba.njit(cache=True, nogil=True, _nrt=False)
def _azimuth(rng):
    """(cos, sin) of a uniform random azimuth: a normalised pair of normals, no trigonometry (cheaper)."""
    while True:
        a, b = rng.standard_normal(), rng.standard_normal()
        norm = math.sqrt(a * a + b * b)
        if norm > 1e-12:
            return a / norm, b / norm


@numba.njit(cache=True, nogil=True, _nrt=False)
def _add_at(sums, e, depth_mm, x, y, z, u, c, s):
    """The position sums of `_add_point` for a point offset by (c, s) mm along the two transverse axes."""
    # u: the axis and its two perpendicular unit vectors (`axis_basis`).
    ux, uy, uz, ax, ay, az, bx, by, bz = u
    px_ = x + depth_mm * ux + c * ax + s * bx
    py_ = y + depth_mm * uy + c * ay + s * by
    pz_ = z + depth_mm * uz + c * az + s * bz
    sums[S_W] += e
    sums[S_X] += e * px_
    sums[S_Y] += e * py_
    sums[S_Z] += e * pz_
    sums[S_XX] += e * px_ * px_
    sums[S_YY] += e * py_ * py_
    sums[S_ZZ] += e * pz_ * pz_


@numba.njit(cache=True, nogil=True, _nrt=False)
def _lambda_to_mm(params, depth_lambda):
    """Distance (mm) behind the ECAL face of a depth in interaction lengths (ECAL, gap, HCAL)."""
    if depth_lambda < params.ecal_interaction_lengths:
        return depth_lambda / params.ecal_interaction_lengths * params.ecal_thickness_mm
    return (params.ecal_thickness_mm + params.ecal_hcal_gap_mm
            + (depth_lambda - params.ecal_interaction_lengths) / params.hcal_interaction_lengths
            * params.hcal_thickness_mm)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _x0_in_lambda(params, depth_lambda):
    """One radiation length in interaction lengths, in the sub-detector at `depth_lambda`."""
    if depth_lambda < params.ecal_interaction_lengths:
        return params.ecal_interaction_lengths / params.ecal_radiation_lengths
    return params.hcal_radiation_length_mm * params.hcal_interaction_lengths / params.hcal_thickness_mm


@numba.njit(cache=True, nogil=True, _nrt=False)
def _lateral(rng, radius90_mm):
    """A radial distance from f(r) = 2 r R² / (r² + R²)², with 90 % of the energy inside radius90 (= 3 R)."""
    u = min(rng.random(), 0.995)
    return radius90_mm / 3.0 * math.sqrt(u / (1.0 - u))


@numba.njit(cache=True, nogil=True, _nrt=False)
def _spot_weights(rng, n, shape, w):
    """Fill w[:n] with Gamma(shape) energy shares summing to 1 (w is the caller's scratch buffer).

    `shape` is an integer, so each draw is -log of a product of uniforms: one logarithm per point.
    """
    total = 0.0
    k = max(int(shape), 1)
    for j in range(n):
        prod = 1.0
        for _ in range(k):
            prod *= 1.0 - rng.random()  # in (0, 1]
        w[j] = -math.log(max(prod, 1e-300))
        total += w[j]
    if total <= 0.0:  # every point drew u = 1 exactly: share equally
        for j in range(n):
            w[j] = 1.0
        total = float(n)
    for j in range(n):
        w[j] /= total
    return w


@numba.njit(cache=True, nogil=True, _nrt=False)
def _gamma_constants(shape):
    """(d, c) of Marsaglia and Tsang's Gamma(shape) sampler for shape > 1, computed once per shower."""
    d = shape - 1.0 / 3.0
    return d, 1.0 / math.sqrt(9.0 * d)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _gamma(rng, d, c):
    """One standard Gamma draw with `_gamma_constants` (shape > 1): numpy's own algorithm, drawing the same
    random numbers and returning the same values as rng.gamma(shape), without recomputing d and c."""
    while True:
        while True:
            x = rng.standard_normal()
            v = 1.0 + c * x
            if v > 0.0:
                break
        v = v * v * v
        u = rng.random()
        if u < 1.0 - 0.0331 * (x * x) * (x * x):
            return d * v
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v


@numba.njit(cache=True, nogil=True, _nrt=False)
def em_shower(rng, params, e, shift, start_lambda, x, y, z, u, n_spots, sums, buf):
    """An electromagnetic shower of `e` GeV starting `start_lambda` behind the ECAL face.

    Longitudinal: points at depths t (radiation lengths) from the Gamma profile dE/dt ∝ t^(a-1) e^(-bt)
    with t_max = (a - 1) / b = ln(E / E_c) + shift, t_max fluctuating log-normally shower by shower.
    Lateral: `_lateral` with the ECAL's effective Molière radius.
    """
    if e <= 0.0:
        return
    b = params.em_profile_b
    tmax = max(math.log(max(e, 1e-6) / params.em_critical_energy_gev) + shift, 0.5)
    tmax *= math.exp(params.em_tmax_log_fluctuation * rng.standard_normal())
    a = b * tmax + 1.0
    w = _spot_weights(rng, n_spots, params.em_spot_shape, buf)
    gamma_d, gamma_c = _gamma_constants(a)
    scale = 1.0 / b
    for j in range(n_spots):
        t = scale * _gamma(rng, gamma_d, gamma_c)
        depth_lambda = start_lambda
        # Walk through the sub-detectors: radiation lengths are shorter (in lambda) in the ECAL.
        in_ecal = params.ecal_radiation_lengths * (1.0 - start_lambda / params.ecal_interaction_lengths)
        if start_lambda < params.ecal_interaction_lengths and t <= in_ecal:
            depth_lambda = start_lambda + t * _x0_in_lambda(params, start_lambda)
        elif start_lambda < params.ecal_interaction_lengths:
            depth_lambda = params.ecal_interaction_lengths + (t - in_ecal) * _x0_in_lambda(
                params, params.ecal_interaction_lengths)
        else:
            depth_lambda = start_lambda + t * _x0_in_lambda(params, start_lambda)
        _add_point(params, sums, e * w[j], depth_lambda, _lambda_to_mm(params, depth_lambda), x, y, z, u,
                   _lateral(rng, params.ecal_moliere_radius_mm), rng)


@numba.njit(cache=True, nogil=True, _nrt=False)
def hadron_shower(rng, params, e, charged, x, y, z, u, sums, buf, satellites, sat_sums):
    """A hadron shower of `e` GeV: first interaction, MIP track before it, EM and hadronic parts after;
    returns how many satellite fragments it wrote to `satellites` (one row of sums each).

    The first interaction lies an exponential number of interaction lengths behind the ECAL face, so a
    fraction 1 - exp(-lambda_ECAL) of hadrons starts showering in the ECAL. A charged hadron ionises
    like a MIP up to there. The electromagnetic fraction (π0s) showers compactly from the start point;
    the hadronic rest follows a Gamma profile in lambda_I with the hadronic lateral size. Its points
    farther than `hadron_fragment_radius_mm` from the axis are satellites: the sparse halo of a hadron
    shower that is not connected to its core through occupied cells, so that clustering can split it off.
    """
    start = rng.exponential(1.0)
    if charged:
        ecal_path = min(start, params.ecal_interaction_lengths) / params.ecal_interaction_lengths
        mip = params.mip_ecal_gev * math.exp(params.mip_log_width * rng.standard_normal()) * ecal_path
        mip = min(mip, e)
        # Two ionisation points at random depths along the path, so that the track has a length.
        for _ in range(2):
            depth = rng.random() * min(start, params.ecal_interaction_lengths)
            _add_point(params, sums, 0.5 * mip, depth, _lambda_to_mm(params, depth), x, y, z, u, 0.0, rng)
        e -= mip
    if e <= 0.0:
        return 0
    mean_fem = 1.0 - (max(e, params.hadron_em_fraction_e0_gev) / params.hadron_em_fraction_e0_gev) ** (
        params.hadron_em_fraction_k - 1.0)
    fem = min(max(mean_fem + params.hadron_em_fraction_spread * rng.standard_normal(), 0.0), 1.0)
    em_shower(rng, params, fem * e, 0.0, start, x, y, z, u, int(params.hadron_em_spots), sums, buf)
    e_had = (1.0 - fem) * e
    if e_had <= 0.0:
        return 0
    scale = params.hadron_profile_scale
    a = 1.0 + (0.2 * math.log(max(e, 1.0)) + 0.7) / scale
    n_spots = int(params.hadron_spots)
    w = _spot_weights(rng, n_spots, params.hadron_spot_shape, buf)
    n_sat = 0
    gamma_d, gamma_c = _gamma_constants(a)
    for j in range(n_spots):
        depth = start + scale * _gamma(rng, gamma_d, gamma_c)
        lateral = _lateral(rng, params.hadron_lateral_radius_mm)
        if lateral <= params.hadron_fragment_radius_mm:
            _add_point(params, sums, e_had * w[j], depth, _lambda_to_mm(params, depth), x, y, z, u, lateral, rng)
            continue
        # Far from the axis (neutrons, secondary hadrons): a fragment of its own, not connected to the core.
        # It is a small shower itself: two points about one HCAL tile apart share its energy.
        if depth >= params.ecal_interaction_lengths + params.hcal_interaction_lengths:
            continue  # leaked out behind the HCAL
        sat_sums[:] = 0.0
        e_sat = e_had * w[j]
        sat_sums[S_ECAL if depth < params.ecal_interaction_lengths else S_HCAL] += e_sat
        share = rng.random()
        cos_phi, sin_phi = _azimuth(rng)
        depth_mm = _lambda_to_mm(params, depth)
        spread = params.hcal_cell_mm
        _add_at(sat_sums, e_sat * share, depth_mm, x, y, z, u, lateral * cos_phi, lateral * sin_phi)
        _add_at(sat_sums, e_sat * (1.0 - share), depth_mm + spread * rng.standard_normal(), x, y, z, u,
                lateral * cos_phi + spread * rng.standard_normal(), lateral * sin_phi + spread * rng.standard_normal())
        for col in range(N_SUMS):
            satellites[n_sat, col] = sat_sums[col]
        n_sat += 1
    return n_sat


_MUON_POINTS = 4  # points per sub-detector along a muon's path


@numba.njit(cache=True, nogil=True, _nrt=False)
def muon_shower(rng, params, kinetic, x, y, z, u, sums):
    """Ionisation along the whole path: log-normal MIP energies spread over the ECAL and the HCAL depth."""
    mip_ecal = params.mip_ecal_gev * math.exp(params.mip_log_width * rng.standard_normal())
    mip_hcal = params.mip_hcal_gev * math.exp(params.mip_log_width * rng.standard_normal())
    # A slow muon cannot lose more than its kinetic energy.
    scale = min(1.0, kinetic / (mip_ecal + mip_hcal))
    for j in range(_MUON_POINTS):
        d = params.ecal_interaction_lengths * rng.random()
        _add_point(params, sums, mip_ecal * scale / _MUON_POINTS, d, _lambda_to_mm(params, d), x, y, z, u,
                   0.0, rng)
        d = params.ecal_interaction_lengths + params.hcal_interaction_lengths * rng.random()
        _add_point(params, sums, mip_hcal * scale / _MUON_POINTS, d, _lambda_to_mm(params, d), x, y, z, u,
                   0.0, rng)

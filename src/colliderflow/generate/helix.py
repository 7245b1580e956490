"""Helices in a solenoid field along +z, for many particles at once.

A charged particle moves on a helix; a neutral one on a straight line, which is the same helix with zero
curvature. Positions are parametrised by the transverse path length s (mm) from the production point:

    phi(s) = phi0 - k s                       (k = signed curvature; k > 0 turns clockwise seen from +z)
    x(s)   = x0 + s sinc(k s / 2) cos(phi0 - k s / 2)
    y(s)   = y0 + s sinc(k s / 2) sin(phi0 - k s / 2)
    z(s)   = z0 + s tan(lambda)

With B along +z the Lorentz force turns a positive particle clockwise, so k = q c B / pT has the sign of
the charge, which is also the sign convention of EDM4hep's TrackState omega.

The crossing of a helix with a cylinder is the hot spot of the whole detector simulation (every track
against every tracker layer, every particle against the calorimeter face), so the scalar geometry is
written once as compiled numba functions that the tracker and calorimeter kernels call per particle;
`Helices` exposes the same functions over arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

# pT [GeV] = C * B [T] * R [m]; per mm: curvature [1/mm] = C * 1e-3 * B / pT.
C_GEV_PER_TESLA_METRE = 0.299792458
_MM_PER_M = 1000.0
# Curvatures below this (1/mm; a radius beyond 1e12 mm) are treated as straight lines, where the circle
# formulas lose all precision.
STRAIGHT_CURVATURE = 1e-12
_TWO_PI = 2.0 * math.pi
# A crossing closer than this turning angle to the production point is the start itself, not a crossing.
_MIN_TURN = 1e-12


def curvature_per_mm(charge: np.ndarray, pt: np.ndarray, b_field_t: float) -> np.ndarray:
    """Signed curvature (1/mm) of particles of `charge` (e) and `pt` (GeV) in a field `b_field_t` along +z."""
    with np.errstate(divide="ignore", invalid="ignore"):
        k = charge * C_GEV_PER_TESLA_METRE * b_field_t / (pt * _MM_PER_M)
    return np.where(charge == 0, 0.0, k)


# The scalar functions below take the initial direction as (cos phi0, sin phi0), which the callers get
# from px / pT and py / pT without any trigonometry; on this hot path every transcendental call counts.


@numba.njit(cache=True, nogil=True)
def circle_geometry(x0: float, y0: float, cos0: float, sin0: float, k: float) -> tuple[float, float, float]:
    """(radius R, distance of the centre from the z axis, base angle) of a charged particle's circle.

    The base angle is sign(k) * (phi0 - azimuth of the centre); with it the crossing of any cylinder
    costs one arcsin (see `turn_to_radius`), so a caller crossing many cylinders computes it once.
    """
    rho = 1.0 / k
    cx = x0 + rho * sin0
    cy = y0 - rho * cos0
    dist = math.sqrt(cx * cx + cy * cy)
    sign = 1.0 if k > 0 else -1.0
    # phi0 - gamma from the cross and dot products of the direction with the centre's direction.
    return abs(rho), dist, sign * math.atan2(sin0 * cx - cos0 * cy, cos0 * cx + sin0 * cy)


@numba.njit(cache=True, nogil=True)
def turn_to_radius(big_r: float, dist: float, base: float, r: float) -> float:
    """Smallest positive turning angle (rad) at which a circle reaches transverse radius r; -1 if never.

    On the circle |position|^2 = dist^2 + R^2 - 2 R dist sin(turn-dependent angle); the two solutions
    are reduced to (0, 2 pi] with floor, which is much cheaper than a floating-point modulo.
    """
    if dist <= 0.0:
        return -1.0
    sin_arg = (dist * dist + big_r * big_r - r * r) / (2.0 * big_r * dist)
    if sin_arg < -1.0 or sin_arg > 1.0:
        return -1.0
    a = math.asin(sin_arg)
    t1 = base - a
    t1 -= _TWO_PI * math.floor(t1 / _TWO_PI)
    t2 = base - math.pi + a
    t2 -= _TWO_PI * math.floor(t2 / _TWO_PI)
    if t1 < _MIN_TURN:
        t1 += _TWO_PI
    if t2 < _MIN_TURN:
        t2 += _TWO_PI
    return min(t1, t2)


@numba.njit(cache=True, nogil=True)
def line_path_to_radius(x0: float, y0: float, cos0: float, sin0: float, r: float) -> float:
    """Transverse path length (> 0) at which a straight line reaches radius r; -1 if never."""
    b = x0 * cos0 + y0 * sin0
    disc = b * b - (x0 * x0 + y0 * y0 - r * r)
    if disc < 0.0:
        return -1.0
    root = math.sqrt(disc)
    s = -b - root
    if s <= 0.0:
        s = -b + root
    return s if s > 0.0 else -1.0


@numba.njit(cache=True, nogil=True)
def path_to_radius(x0: float, y0: float, cos0: float, sin0: float, k: float, r: float) -> float:
    """Transverse path length to the first crossing of the cylinder of radius r; -1 if never."""
    if abs(k) < STRAIGHT_CURVATURE:
        return line_path_to_radius(x0, y0, cos0, sin0, r)
    _, dist, base = circle_geometry(x0, y0, cos0, sin0, k)
    return circle_path_to_radius(k, dist, base, r)


@numba.njit(cache=True, nogil=True)
def circle_path_to_radius(k: float, dist: float, base: float, r: float) -> float:
    """`path_to_radius` of a charged particle whose circle (`circle_geometry`) is already known."""
    big_r = abs(1.0 / k)
    turn = turn_to_radius(big_r, dist, base, r)
    return turn * big_r if turn > 0.0 else -1.0


@numba.njit(cache=True, nogil=True)
def transverse_position(x0: float, y0: float, cos0: float, sin0: float, k: float, s: float) -> tuple[float, float]:
    """(x, y) after transverse path length s; exact for k = 0 too."""
    half = 0.5 * k * s
    if half == 0.0:
        return x0 + s * cos0, y0 + s * sin0
    sin_half = math.sin(half)
    cos_half = math.cos(half)
    chord = s * sin_half / half
    # The chord points along phi0 - half.
    return x0 + chord * (cos0 * cos_half + sin0 * sin_half), y0 + chord * (sin0 * cos_half - cos0 * sin_half)


@numba.njit(cache=True, nogil=True)
def closest_approach(
    x0: float, y0: float, z0: float, cos0: float, sin0: float, tan_lambda: float, k: float
) -> tuple[float, float, float]:
    """(d0, z0, phi) at the point of closest approach (PCA) to the z axis.

    d0 follows the EDM4hep/LCIO sign convention, PCA = (-d0 sin(phi), d0 cos(phi)); z0 is z at the PCA,
    found by running the helix back (or forward) from the production point.
    """
    if abs(k) < STRAIGHT_CURVATURE:
        return closest_approach_on_circle(x0, y0, z0, cos0, sin0, tan_lambda, k, 0.0)
    rho = 1.0 / k
    return closest_approach_on_circle(x0, y0, z0, cos0, sin0, tan_lambda, k,
                                      math.hypot(x0 + rho * sin0, y0 - rho * cos0))


@numba.njit(cache=True, nogil=True)
def closest_approach_on_circle(
    x0: float, y0: float, z0: float, cos0: float, sin0: float, tan_lambda: float, k: float, dist: float
) -> tuple[float, float, float]:
    """`closest_approach` given the distance of the circle's centre from the z axis (`circle_geometry`),
    which the caller may already have; ignored for a straight line."""
    if abs(k) < STRAIGHT_CURVATURE:
        # Straight line: the PCA is at path -(v . u) from the production point, direction unchanged.
        s_pca = x0 * cos0 + y0 * sin0
        return -x0 * sin0 + y0 * cos0, z0 - s_pca * tan_lambda, math.atan2(sin0, cos0)
    rho = 1.0 / k
    sign = 1.0 if k > 0 else -1.0
    cx = x0 + rho * sin0
    cy = y0 - rho * cos0
    if dist > 0.0:
        # The PCA lies on the line from the origin to the centre, and the centre sits at
        # PCA + rho (sin phi, -cos phi): that fixes the direction there and d0 = rho - sign(rho) dist.
        sin_p = sign * cx / dist
        cos_p = -sign * cy / dist
    else:
        sin_p, cos_p = sin0, cos0
    d0 = rho - sign * dist
    # The particle turned by phi - phi0, in (-pi, pi], between the PCA and its production point.
    turned = math.atan2(sin_p * cos0 - cos_p * sin0, cos_p * cos0 + sin_p * sin0)
    return d0, z0 - (turned / k) * tan_lambda, math.atan2(sin_p, cos_p)


@dataclass(frozen=True)
class BatchGeometry:
    """Per particle of a batch, the helix numbers that both the tracker and the calorimeter need.

    Each costs a hypot or an atan2, and every transcendental call counts on this path: computed once
    here, with exactly the expressions the kernels would use, they give the kernels the same values.
    """

    pt: np.ndarray  # hypot(px, py), GeV
    r0: np.ndarray  # hypot(vx, vy), the production radius, mm
    dist: np.ndarray  # circle_geometry's centre distance (charged and curved; NaN otherwise), mm
    base: np.ndarray  # circle_geometry's base angle (idem), rad


def batch_geometry(*, px: np.ndarray, py: np.ndarray, charge: np.ndarray, vx: np.ndarray, vy: np.ndarray,
                   pt: np.ndarray, b_field_t: float) -> BatchGeometry:
    """`BatchGeometry` of particles with transverse momentum `pt` (= hypot(px, py)) in a field `b_field_t`."""
    r0, dist, base = np.empty((3, len(px)))  # one allocation: first touches of fresh memory are costly
    out = BatchGeometry(pt=pt, r0=r0, dist=dist, base=base)
    _batch_geometry_kernel(px, py, charge, vx, vy, pt, C_GEV_PER_TESLA_METRE * b_field_t / _MM_PER_M,
                           out.r0, out.dist, out.base)
    return out


@numba.njit(cache=True, nogil=True)
def _batch_geometry_kernel(px, py, charge, vx, vy, pt, curvature_per_inv_pt, r0, dist, base):
    for i in range(px.shape[0]):
        r0[i] = math.sqrt(vx[i] * vx[i] + vy[i] * vy[i])
        dist[i] = np.nan
        base[i] = np.nan
        if charge[i] != 0.0 and pt[i] > 0.0:
            k = charge[i] * curvature_per_inv_pt / pt[i]
            if abs(k) >= STRAIGHT_CURVATURE:
                _, dist[i], base[i] = circle_geometry(vx[i], vy[i], px[i] / pt[i], py[i] / pt[i], k)


@numba.njit(cache=True, nogil=True)
def _path_to_radius_array(x0, y0, cos0, sin0, k, r, out):
    for i in range(x0.shape[0]):
        s = path_to_radius(x0[i], y0[i], cos0[i], sin0[i], k[i], r[i])
        out[i] = s if s > 0.0 else np.nan


@numba.njit(cache=True, nogil=True)
def _closest_approach_array(x0, y0, z0, cos0, sin0, tan_lambda, k, d0, z0_pca, phi):
    for i in range(x0.shape[0]):
        d0[i], z0_pca[i], phi[i] = closest_approach(x0[i], y0[i], z0[i], cos0[i], sin0[i], tan_lambda[i], k[i])


@dataclass(frozen=True)
class Helices:
    """Trajectories from production points (mm), azimuth phi0 and tan(lambda) = pz/pT, curvature k (1/mm)."""

    x0: np.ndarray
    y0: np.ndarray
    z0: np.ndarray
    phi0: np.ndarray
    tan_lambda: np.ndarray
    curvature: np.ndarray

    @classmethod
    def from_particles(
        cls,
        *,
        px: np.ndarray,
        py: np.ndarray,
        pz: np.ndarray,
        charge: np.ndarray,
        vx: np.ndarray,
        vy: np.ndarray,
        vz: np.ndarray,
        b_field_t: float,
    ) -> Helices:
        pt = np.hypot(px, py)
        with np.errstate(divide="ignore", invalid="ignore"):
            tan_lambda = pz / pt
        return cls(
            x0=np.ascontiguousarray(vx, dtype=np.float64),
            y0=np.ascontiguousarray(vy, dtype=np.float64),
            z0=np.ascontiguousarray(vz, dtype=np.float64),
            phi0=np.arctan2(py, px),
            tan_lambda=tan_lambda,
            curvature=curvature_per_mm(charge, pt, b_field_t),
        )

    def __len__(self) -> int:
        return len(self.x0)

    def position(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, z) after transverse path length `s`."""
        half_turn = 0.5 * self.curvature * s
        chord = s * np.sinc(half_turn / np.pi)  # numpy's sinc is sin(pi x) / (pi x)
        direction = self.phi0 - half_turn
        return self.x0 + chord * np.cos(direction), self.y0 + chord * np.sin(direction), self.z0 + s * self.tan_lambda

    def path_to_z(self, z: np.ndarray | float) -> np.ndarray:
        """Transverse path length to the plane at `z`; NaN where the particle moves away from it or along it."""
        with np.errstate(divide="ignore", invalid="ignore"):
            s = (z - self.z0) / self.tan_lambda
        return np.where(np.isfinite(s) & (s > 0), s, np.nan)

    def path_to_radius(self, radius: np.ndarray | float) -> np.ndarray:
        """Transverse path length to the first crossing of the cylinder of `radius` about the z axis.

        NaN where the trajectory never reaches it (a curler whose circle stays inside, or a line moving
        away from a cylinder it started outside of).
        """
        radius = np.ascontiguousarray(np.broadcast_to(np.asarray(radius, dtype=np.float64), self.x0.shape))
        out = np.empty(len(self.x0))
        _path_to_radius_array(
            self.x0, self.y0, np.cos(self.phi0), np.sin(self.phi0), np.ascontiguousarray(self.curvature), radius, out
        )
        return out

    def point_of_closest_approach(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(d0, z0, phi) at the point of closest approach to the z axis (see `closest_approach`)."""
        n = len(self.x0)
        d0, z0, phi = np.empty(n), np.empty(n), np.empty(n)
        _closest_approach_array(
            self.x0,
            self.y0,
            self.z0,
            np.cos(self.phi0),
            np.sin(self.phi0),
            np.ascontiguousarray(self.tan_lambda),
            np.ascontiguousarray(self.curvature),
            d0,
            z0,
            phi,
        )
        return d0, z0, phi

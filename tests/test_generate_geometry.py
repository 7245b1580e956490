"""Helix geometry and tracker hit counting, checked against brute force and closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from colliderflow.generate.geometry import TrackerConfig
from colliderflow.generate.helix import C_GEV_PER_TESLA_METRE, Helices
from colliderflow.generate.tracker import trace_tracks

B_TESLA = 4.0


def random_helices(n: int, seed: int, *, displaced_fraction: float = 0.5) -> Helices:
    rng = np.random.default_rng(seed)
    pt = np.exp(rng.uniform(np.log(0.1), np.log(100.0), n))
    phi = rng.uniform(-np.pi, np.pi, n)
    pz = pt * np.sinh(rng.uniform(-3.0, 3.0, n))
    charge = rng.choice([-1.0, 0.0, 1.0], n)
    displaced = rng.random(n) < displaced_fraction
    vx, vy, vz = (np.where(displaced, rng.normal(0.0, 100.0, n), rng.normal(0.0, 1e-4, n)) for _ in range(3))
    return Helices.from_particles(
        px=pt * np.cos(phi), py=pt * np.sin(phi), pz=pz, charge=charge, vx=vx, vy=vy, vz=vz, b_field_t=B_TESLA
    )


def test_positive_particle_turns_clockwise_with_field_along_z() -> None:
    h = Helices.from_particles(
        px=np.array([1.0]), py=np.zeros(1), pz=np.zeros(1), charge=np.array([1.0]),
        vx=np.zeros(1), vy=np.zeros(1), vz=np.zeros(1), b_field_t=B_TESLA,
    )  # fmt: skip
    x, y, _ = h.position(np.array([100.0]))
    assert x[0] > 0 and y[0] < 0
    # Radius of curvature: pT / (0.3 B) metres.
    assert 1.0 / h.curvature[0] == pytest.approx(1.0 / (C_GEV_PER_TESLA_METRE * B_TESLA) * 1000.0)


def test_path_to_radius_lands_on_the_cylinder_at_the_first_crossing() -> None:
    h = random_helices(20_000, seed=1)
    radius = 1500.0
    s = h.path_to_radius(radius)
    reached = np.isfinite(s)
    x, y, _ = h.position(np.where(reached, s, 0.0))
    np.testing.assert_allclose(np.hypot(x, y)[reached], radius, rtol=1e-9)
    # Sampled along the way, the trajectory stays inside until then (it started inside for these).
    start_inside = np.hypot(h.x0, h.y0) < radius
    for fraction in (0.25, 0.5, 0.9, 0.999):
        xf, yf, _ = h.position(np.where(reached, s * fraction, 0.0))
        assert np.all(np.hypot(xf, yf)[reached & start_inside] < radius)
    # A circle that never gets that far out is exactly the case with no crossing.
    k = np.where(h.curvature == 0, 1.0, h.curvature)
    centre = np.hypot(h.x0 + np.sin(h.phi0) / k, h.y0 - np.cos(h.phi0) / k)
    farthest = np.where(h.curvature == 0, np.inf, centre + np.abs(1.0 / k))
    np.testing.assert_array_equal(reached[start_inside], (farthest >= radius)[start_inside])
    assert 0.01 < np.mean(~reached) < 0.99  # both cases occur


def test_point_of_closest_approach_matches_brute_force() -> None:
    h = random_helices(400, seed=2, displaced_fraction=1.0)
    d0, z0, phi = h.point_of_closest_approach()

    def along(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Every helix (rows) at many path lengths (columns), by broadcasting the numpy formulas.
        fields = ("x0", "y0", "z0", "phi0", "tan_lambda", "curvature")
        return Helices(*(getattr(h, f)[:, None] for f in fields)).position(s)

    # Brute force: the smallest radius on a coarse grid around the start, then on a fine one around it.
    # A curler passes its PCA once per turn; the PCA meant is the one within half a turn of the start.
    coarse = np.linspace(-400.0, 400.0, 8001)
    x, y, _ = along(coarse[None, :])
    with np.errstate(divide="ignore"):
        half_turn = np.pi / np.abs(h.curvature)
    radius = np.where(np.abs(coarse)[None, :] < half_turn[:, None], np.hypot(x, y), np.inf)
    best = coarse[np.argmin(radius, axis=1)]
    inside = np.abs(best) < np.minimum(399.0, half_turn - 1.0)  # else the PCA is beyond the grid
    fine = best[:, None] + np.linspace(-0.1, 0.1, 2001)[None, :]
    x, y, z = along(fine)
    j = np.argmin(np.hypot(x, y), axis=1)
    rows = np.arange(len(j))
    x, y, z = x[rows, j], y[rows, j], z[rows, j]
    assert inside.sum() > 300
    np.testing.assert_allclose(np.abs(d0)[inside], np.hypot(x, y)[inside], atol=1e-4)
    # EDM4hep convention: PCA = (-d0 sin(phi), d0 cos(phi)).
    np.testing.assert_allclose((-d0 * np.sin(phi))[inside], x[inside], atol=1e-3)
    np.testing.assert_allclose((d0 * np.cos(phi))[inside], y[inside], atol=1e-3)
    # z moves by tan(lambda) per mm of path, so the grid step limits the precision by that factor.
    z_tolerance = 1e-3 * np.maximum(1.0, np.abs(h.tan_lambda))
    assert np.all(np.abs(z0 - z)[inside] <= z_tolerance[inside])


def test_prompt_track_has_zero_impact_parameters() -> None:
    h = Helices.from_particles(
        px=np.array([3.0, -1.0]), py=np.array([1.0, 2.0]), pz=np.array([5.0, -1.0]), charge=np.array([1.0, -1.0]),
        vx=np.zeros(2), vy=np.zeros(2), vz=np.zeros(2), b_field_t=B_TESLA,
    )  # fmt: skip
    d0, z0, phi = h.point_of_closest_approach()
    np.testing.assert_allclose(d0, 0.0, atol=1e-9)
    np.testing.assert_allclose(z0, 0.0, atol=1e-9)
    np.testing.assert_allclose(phi, np.arctan2([1.0, 2.0], [3.0, -1.0]), atol=1e-12)


def exact_hits(h: Helices, tracker: TrackerConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hit count and innermost radius from the exact crossings, surface by surface, without shortcuts."""
    n = len(h.x0)
    hits = np.zeros(n, dtype=int)
    innermost = np.full(n, np.inf)
    with np.errstate(divide="ignore"):
        half_turn = np.where(h.curvature != 0, np.pi / np.abs(h.curvature), np.inf)
    for radius, half_length in tracker.barrel_layers_mm:
        s = h.path_to_radius(radius)
        _, _, z = h.position(np.nan_to_num(s))
        crossed = np.isfinite(s) & (s <= half_turn) & (np.abs(z) <= half_length)
        hits += crossed
        innermost = np.where(crossed, np.minimum(innermost, radius), innermost)
    for z_disk, r_min, r_max in tracker.disks_mm:
        s = h.path_to_z(np.sign(h.tan_lambda) * z_disk)
        x, y, _ = h.position(np.nan_to_num(s))
        r = np.hypot(x, y)
        crossed = np.isfinite(s) & (s <= half_turn) & (r >= r_min) & (r <= r_max)
        hits += crossed
        innermost = np.where(crossed, np.minimum(innermost, r), innermost)
    return hits, innermost


def test_tracker_hit_counting_agrees_with_exact_crossings() -> None:
    tracker = TrackerConfig()
    h = random_helices(100_000, seed=3)
    geometry = trace_tracks(h, tracker)
    hits, innermost = exact_hits(h, tracker)
    np.testing.assert_array_equal(geometry.hits, hits)
    np.testing.assert_array_equal(np.isfinite(geometry.innermost), np.isfinite(innermost))
    finite = np.isfinite(innermost)
    np.testing.assert_allclose(geometry.innermost[finite], innermost[finite], rtol=1e-9)
    # The sample exercises the interesting cases: central, forward, curling and displaced tracks.
    assert set(np.unique(hits)) >= {0, 4, 9, 12}


def test_central_prompt_track_crosses_every_barrel_layer() -> None:
    tracker = TrackerConfig()
    h = Helices.from_particles(
        px=np.array([20.0]), py=np.zeros(1), pz=np.zeros(1), charge=np.array([1.0]),
        vx=np.zeros(1), vy=np.zeros(1), vz=np.zeros(1), b_field_t=B_TESLA,
    )  # fmt: skip
    geometry = trace_tracks(h, tracker)
    assert geometry.hits[0] == len(tracker.barrel_layers_mm)
    assert geometry.innermost[0] == min(r for r, _ in tracker.barrel_layers_mm)

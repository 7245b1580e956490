"""Fake tracks: helices the pattern recognition builds from unrelated hits, with no truth particle.

Per event their number is Poisson with mean `fake_tracks_per_track` × the number of real tracks (fakes
grow with occupancy). Their parameters are those of low-momentum combinatorial tracks: pT above the
tracker threshold with an exponential spectrum, directions uniform inside the acceptance, few hits
(4-7), wide impact parameters and poor fits. They are written with track_gen_idx = -1, so the targets
(MLPF rules) give them no particle and a model must learn to reject them. Everything is vectorised numpy
on the batch; the random numbers come from the detector's Generator after the real tracks'.
"""

from __future__ import annotations

import numpy as np

from colliderflow.generate.geometry import DetectorConfig
from colliderflow.generate.helix import C_GEV_PER_TESLA_METRE
from colliderflow.generate.records import Collection, interleave_columns, interleave_mask
from colliderflow.schema import SIM_TRACK_BRANCHES

_MM_PER_M = 1000.0
_HELIX_PARAMETERS, _MEASUREMENTS_PER_HIT = 5, 2


def fake_tracks(real_counts: np.ndarray, detector: DetectorConfig, rng: np.random.Generator) -> Collection:
    """Fake tracks (SIM_TRACK_BRANCHES) for events holding `real_counts` real tracks each."""
    t = detector.tracker
    n_fake = rng.poisson(t.fake_tracks_per_track * np.asarray(real_counts, dtype=np.float64))
    n = int(n_fake.sum())
    charge = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    pt = t.pt_min_gev + rng.exponential(t.fake_pt_scale_gev, n)
    cos_theta = rng.uniform(-t.cos_theta_max, t.cos_theta_max, n)
    tan_lambda = cos_theta / np.sqrt(1.0 - cos_theta**2)
    hits = rng.integers(t.min_hits, t.min_hits + 4, n)
    ndf = _MEASUREMENTS_PER_HIT * hits - _HELIX_PARAMETERS
    # Poor fits: chi2 per degree of freedom around 3 instead of 1.
    chi2 = rng.chisquare(np.maximum(ndf, 1).astype(np.float64)) * t.fake_chi2_scale
    dedx = t.dedx_mip_gev_per_mm * np.maximum(1.0 + t.dedx_relative_resolution * rng.standard_normal(n), 0.0)
    radii = np.array([r for r, _ in t.barrel_layers_mm])
    f32 = np.float32
    columns = {
        "track_gen_idx": np.full(n, -1, dtype=np.int32),
        "track_charge": charge.astype(f32),
        "track_omega": (charge / pt * C_GEV_PER_TESLA_METRE * detector.b_field_t / _MM_PER_M).astype(f32),
        "track_tanlambda": tan_lambda.astype(f32),
        "track_phi": rng.uniform(-np.pi, np.pi, n).astype(f32),
        "track_d0": (t.fake_impact_sigma_mm * rng.standard_normal(n)).astype(f32),
        "track_z0": (t.fake_impact_sigma_mm * rng.standard_normal(n)).astype(f32),
        "track_chi2": chi2.astype(f32),
        "track_ndf": ndf.astype(np.int32),
        "track_dedx": dedx.astype(f32),
        "track_dedx_error": (t.dedx_relative_resolution * dedx).astype(f32),
        "track_radius_innermost_hit": radii[rng.integers(0, radii.size, n)].astype(f32),
        "track_time": (t.time_resolution_ns * rng.standard_normal(n)).astype(f32),
    }
    return Collection(counts=n_fake.astype(np.int64), columns={b: columns[b] for b in SIM_TRACK_BRANCHES})


def merge_tracks(real: Collection, fakes: Collection) -> Collection:
    """Tracks of two collections joined event by event, `real`'s first (also used for secondaries' tracks)."""
    columns = interleave_columns({b: real.columns[b] for b in SIM_TRACK_BRANCHES},
                                 {b: fakes.columns[b] for b in SIM_TRACK_BRANCHES},
                                 interleave_mask(real.counts, fakes.counts))
    return Collection(counts=real.counts + fakes.counts, columns=columns)

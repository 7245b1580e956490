"""Tracks and clusters → the [N, 17] element matrix of each event (tracks first, then clusters).

Everything here works on the flattened elements of many events at once: an `ElementLayout` records
where each track and each cluster lands in one flat element array, so that features, targets and
baseline candidates are all computed as plain numpy columns and folded back into events once, at the
end. No loop over events or particles.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from colliderflow.schema import (
    CLUSTER_FEATURES,
    ELEM_TYPE_CLUSTER,
    ELEM_TYPE_TRACK,
    N_ELEM_FEATURES,
    TRACK_FEATURES,
)

# pT [GeV] = 0.2998 · B [T] · R [m] for unit charge; with omega in 1/mm, R [m] = 1 / (1000 |omega|).
_PT_PER_TESLA_PER_INVERSE_MM = 0.299792458e-3
DEFAULT_BFIELD_TESLA = 4.0  # CLIC-like solenoid

TRK = {name: i for i, name in enumerate(TRACK_FEATURES)}
CLU = {name: i for i, name in enumerate(CLUSTER_FEATURES)}


def flat(array: ak.Array, dtype: type | None = np.float64) -> np.ndarray:
    """A jagged [events, objects] branch as one flat numpy array over all objects of all events.

    Derived quantities are computed in float64 (the default); `dtype=None` keeps the stored type for
    columns that are only copied into the float32 feature rows.
    """
    return np.asarray(ak.to_numpy(ak.flatten(array, axis=1)), dtype=dtype)


@dataclass(frozen=True)
class ElementLayout:
    """Where each track and cluster sits among the flattened elements of all events.

    Event i's elements occupy [offsets[i], offsets[i + 1]) of every flat per-element array: first its
    tracks in file order, then its clusters in file order.
    """

    n_tracks: np.ndarray  # [events] int64
    n_clusters: np.ndarray  # [events] int64
    offsets: np.ndarray  # [events + 1] int64
    track_event: np.ndarray  # [all tracks] event of each track
    cluster_event: np.ndarray  # [all clusters]
    track_pos: np.ndarray  # [all tracks] flat element index of each track
    cluster_pos: np.ndarray  # [all clusters]

    @property
    def n_events(self) -> int:
        return len(self.n_tracks)

    @property
    def n_elements(self) -> np.ndarray:
        return self.n_tracks + self.n_clusters

    @property
    def total(self) -> int:
        return int(self.offsets[-1])

    @property
    def track_offsets(self) -> np.ndarray:
        """[events + 1] start of each event's tracks in the flat track arrays."""
        return np.concatenate([[0], np.cumsum(self.n_tracks)])

    @property
    def cluster_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_clusters)])

    def unflatten(self, rows: np.ndarray) -> ak.Array:
        """[total, F] numpy rows → [events, elements, F] awkward array (F stays a fixed-size dimension)."""
        return ak.unflatten(ak.from_numpy(rows, regulararray=True), self.n_elements, axis=0)


def build_layout(n_tracks: np.ndarray, n_clusters: np.ndarray) -> ElementLayout:
    """The element layout from per-event track and cluster counts."""
    n_tracks = np.asarray(n_tracks, dtype=np.int64)
    n_clusters = np.asarray(n_clusters, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_tracks + n_clusters)]).astype(np.int64)
    events = np.arange(len(n_tracks), dtype=np.int64)
    track_event = np.repeat(events, n_tracks)
    cluster_event = np.repeat(events, n_clusters)
    track_start = np.concatenate([[0], np.cumsum(n_tracks)[:-1]]) if len(n_tracks) else np.zeros(0, np.int64)
    cluster_start = np.concatenate([[0], np.cumsum(n_clusters)[:-1]]) if len(n_clusters) else np.zeros(0, np.int64)
    # Local index of an object within its event = global object index − first object index of the event.
    track_local = np.arange(track_event.size, dtype=np.int64) - track_start[track_event]
    cluster_local = np.arange(cluster_event.size, dtype=np.int64) - cluster_start[cluster_event]
    track_pos = offsets[track_event] + track_local
    cluster_pos = offsets[cluster_event] + n_tracks[cluster_event] + cluster_local
    return ElementLayout(n_tracks, n_clusters, offsets, track_event, cluster_event, track_pos, cluster_pos)


def layout_of(events: ak.Array) -> ElementLayout:
    """The element layout of events read by `colliderflow.io.sim_reader.read_sim`."""
    return build_layout(ak.to_numpy(ak.num(events.track_omega, axis=1)),
                        ak.to_numpy(ak.num(events.cluster_energy, axis=1)))


def track_kinematics(omega: np.ndarray, tan_lambda: np.ndarray, *, bfield: float = DEFAULT_BFIELD_TESLA
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pT, η, |p|) of helices: pT from the curvature in the solenoid field, η from the dip angle.

    tanλ = pz/pT, so η = asinh(tanλ) and |p| = pT·sqrt(1 + tanλ²).
    """
    pt = _PT_PER_TESLA_PER_INVERSE_MM * bfield / np.abs(omega)
    return pt, np.arcsinh(tan_lambda), pt * np.hypot(1.0, tan_lambda)


def track_features(events: ak.Array, *, bfield: float = DEFAULT_BFIELD_TESLA, source: str = "") -> np.ndarray:
    """[all tracks, 17] float32 rows in TRACK_FEATURES order (derived features computed in float64)."""
    omega = flat(events.track_omega)
    if np.any(omega == 0) or not np.all(np.isfinite(omega)):
        bad = int(np.sum((omega == 0) | ~np.isfinite(omega)))
        raise ValueError(f"{source}: {bad} track(s) with omega = 0 or non-finite (no defined momentum)")
    tan_lambda = flat(events.track_tanlambda)
    phi = flat(events.track_phi)
    pt, eta, p = track_kinematics(omega, tan_lambda, bfield=bfield)
    out = np.zeros((omega.size, N_ELEM_FEATURES), dtype=np.float32)
    out[:, TRK["elemtype"]] = ELEM_TYPE_TRACK
    out[:, TRK["pt"]] = pt
    out[:, TRK["eta"]] = eta
    out[:, TRK["sin_phi"]] = np.sin(phi)
    out[:, TRK["cos_phi"]] = np.cos(phi)
    out[:, TRK["p"]] = p
    for feature, branch in (
        ("chi2", "track_chi2"),
        ("ndf", "track_ndf"),
        ("dEdx", "track_dedx"),
        ("dEdxError", "track_dedx_error"),
        ("radiusOfInnermostHit", "track_radius_innermost_hit"),
        ("tanLambda", "track_tanlambda"),
        ("D0", "track_d0"),
        ("omega", "track_omega"),
        ("Z0", "track_z0"),
        ("time", "track_time"),
    ):
        out[:, TRK[feature]] = flat(events[branch], None)
    return out


def position_direction(x: np.ndarray, y: np.ndarray, z: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(η, sin φ, cos φ, sin θ) of positions seen from the origin.

    A position on the beam axis (r = 0) would have infinite η; r is floored at 1 µm so that it gets a
    large finite one instead of poisoning the features with inf, and φ = 0 there.
    """
    r_true = np.hypot(x, y)
    on_axis = r_true == 0
    r = np.maximum(r_true, 1e-3)
    return (np.arcsinh(z / r), np.where(on_axis, 0.0, y / r), np.where(on_axis, 1.0, x / r),
            r / np.hypot(r, z))


def cluster_features(events: ak.Array) -> np.ndarray:
    """[all clusters, 17] float32 rows in CLUSTER_FEATURES order (derived features computed in float64)."""
    energy = flat(events.cluster_energy)
    x, y, z = flat(events.cluster_x), flat(events.cluster_y), flat(events.cluster_z)
    eta, sin_phi, cos_phi, sin_theta = position_direction(x, y, z)
    out = np.empty((energy.size, N_ELEM_FEATURES), dtype=np.float32)
    out[:, CLU["elemtype"]] = ELEM_TYPE_CLUSTER
    out[:, CLU["et"]] = energy * sin_theta
    out[:, CLU["eta"]] = eta
    out[:, CLU["sin_phi"]] = sin_phi
    out[:, CLU["cos_phi"]] = cos_phi
    out[:, CLU["energy"]] = energy
    out[:, CLU["position.x"]] = x
    out[:, CLU["position.y"]] = y
    out[:, CLU["position.z"]] = z
    for feature, branch in (
        ("iTheta", "cluster_itheta"),
        ("energy_ecal", "cluster_energy_ecal"),
        ("energy_hcal", "cluster_energy_hcal"),
        ("energy_other", "cluster_energy_other"),
        ("num_hits", "cluster_nhits"),
        ("sigma_x", "cluster_sigma_x"),
        ("sigma_y", "cluster_sigma_y"),
        ("sigma_z", "cluster_sigma_z"),
    ):
        out[:, CLU[feature]] = flat(events[branch], None)
    return out


def element_rows(layout: ElementLayout, tracks: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """[total elements, 17]: every event's track rows, then its cluster rows, events one after another."""
    rows = np.empty((layout.total, N_ELEM_FEATURES), dtype=tracks.dtype)
    rows[layout.track_pos] = tracks
    rows[layout.cluster_pos] = clusters
    return rows

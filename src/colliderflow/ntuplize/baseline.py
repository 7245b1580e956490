"""A small rule-based particle flow on the elements, giving the `ycand` baseline the network must beat.

It sees only the element features (never the truth), in the spirit of Pandora but far simpler:

1. Track–cluster linking. Each track is followed along its helix to the calorimeter front (a cylinder
   of radius `calo_radius_mm`, closed by endcaps at ±`calo_half_length_mm`) with B along +z and the
   charge taken as the sign of omega (positive tracks bend clockwise seen from +z). The track's
   (η, φ) there is compared with each cluster's position; the nearest cluster of the same event
   within ΔR < `link_dr` is linked. Several tracks may link to one cluster; a track links to at most
   one; a looper that never reaches the calorimeter links to none.
2. Every track becomes a charged candidate with the track momentum, on its own element:
   - muon if p ≥ `muon_min_p` and its linked cluster holds at most `mip_max_energy` (a MIP-like
     deposit), or it has no linked cluster at all (energetic hadrons always shower);
   - electron if its linked cluster is ECAL-dominated (E_ecal/E ≥ `ecal_fraction_em`) and
     |E_cluster/Σp − 1| < `electron_ep_window`, Σp over all tracks linked to that cluster;
   - charged hadron otherwise. Energy from |p| with the pion, electron or muon mass.
3. Every cluster keeps E − Σp of its linked tracks. A remainder above `nsigma_neutral` × σ_E, with
   σ_E = a·sqrt(Σp) and a² = f·a_em² + (1 − f)·a_had² for ECAL fraction f, becomes a neutral
   candidate on the cluster's element with the remainder energy; an unlinked cluster becomes one with
   its whole energy. Photon if ECAL-dominated, else neutral hadron — dropped below
   `min_neutral_hadron_energy`, where most such clusters are fragments of charged hadron showers.
   Direction from the cluster position, massless.

The EM-fraction threshold is checked, the MIP and neutral-hadron thresholds are tuned against the
builtin detector's showers and clustering in docs/detector.md ("Baseline thresholds against the
detector's behaviour"), from measured distributions (truth used there only, never here).

Linking is a compiled nearest-neighbour search over the flattened tracks and clusters of all events
(`kinematics.nearest_in_events`); everything else is numpy columns. One candidate or none per element, in the
PARTICLE_FEATURES layout (jet_idx −1 here; the caller fills it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from colliderflow.kinematics import METRIC_DELTA_R2, nearest_in_events
from colliderflow.ntuplize.elements import CLU, TRK, ElementLayout
from colliderflow.ntuplize.targets import (
    CLS_CHARGED_HADRON,
    CLS_ELECTRON,
    CLS_MUON,
    CLS_NEUTRAL_HADRON,
    CLS_PHOTON,
)
from colliderflow.schema import N_PARTICLE_FEATURES, PF

_MASS = {CLS_CHARGED_HADRON: 0.13957, CLS_ELECTRON: 0.000511, CLS_MUON: 0.10566}  # GeV


@dataclass(frozen=True)
class BaselineParams:
    """Thresholds of the rule-based PF; defaults for a CLIC-like detector (4 T, ECAL front at 1.5 m)."""

    calo_radius_mm: float = 1500.0
    calo_half_length_mm: float = 2307.0
    calo_endcap_hole_mm: float = 260.0  # endcap inner radius: the beam pipe region reaches nothing
    link_dr: float = 0.15
    ecal_fraction_em: float = 0.8
    electron_ep_window: float = 0.3
    mip_max_energy: float = 0.6  # GeV; 95 % of MIP-only muon clusters lie below (docs/detector.md)
    muon_min_p: float = 5.0  # GeV
    nsigma_neutral: float = 2.0
    min_neutral_hadron_energy: float = 2.0  # GeV; softer candidates mostly have no target (docs/detector.md)
    resolution_em: float = 0.15  # stochastic term a_em, σ/E = a/sqrt(E/GeV)
    resolution_had: float = 0.50

    def __post_init__(self) -> None:
        # Every threshold is a float, whether the config wrote 1500 or 1500.0 (the records show the same).
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))

    def check(self, where: str) -> None:
        """Each threshold a number; built by colliderflow.params.stage_params (unknown keys named there)."""
        for f in fields(self):
            if not isinstance(getattr(self, f.name), float):
                raise ValueError(f"{where}.{f.name}: expected a number, got {getattr(self, f.name)!r}")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def extrapolate_to_calo(tan_lambda: np.ndarray, phi0: np.ndarray, omega: np.ndarray, params: BaselineParams
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(η, φ, reaches) of the point where each helix from the origin meets the calorimeter front.

    The helix turns by α = s·|ω| over transverse path s and is then at transverse radius
    r = 2|sin(α/2)|/|ω| and z = s·tanλ. The barrel is reached at α = 2 asin(R|ω|/2) if R|ω|/2 ≤ 1,
    an endcap at α = Z|ω|/|tanλ| (a looper spirals there over several turns), whichever comes first.
    `reaches` is False for a track that meets neither (tanλ = 0 looper) or enters the endcap hole
    (r < `calo_endcap_hole_mm`). The position azimuth is φ0 − sign(ω)·α/2. d0 and z0 are neglected.
    """
    w = np.abs(omega)
    x = params.calo_radius_mm * w / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        a_barrel = np.where(x <= 1.0, 2.0 * np.arcsin(np.minimum(x, 1.0)), np.inf)
        a_endcap = np.where(tan_lambda != 0, params.calo_half_length_mm * w / np.abs(tan_lambda), np.inf)
    alpha = np.minimum(a_barrel, a_endcap)
    finite = np.isfinite(alpha)
    half = np.where(finite, alpha / 2.0, 0.0)
    sin_half = np.abs(np.sin(half))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(w > 0, 2.0 * sin_half / w, params.calo_half_length_mm / np.abs(tan_lambda))
    reaches = finite & ((a_barrel <= a_endcap) | (r >= params.calo_endcap_hole_mm))
    # z/r = (α/2)·tanλ / |sin(α/2)|, → tanλ as α → 0.
    ratio = np.where(half > 1e-8, half / np.maximum(sin_half, 1e-12), 1.0)
    eta = np.arcsinh(tan_lambda * ratio)
    phi = phi0 - np.sign(omega) * half
    return eta, (phi + np.pi) % (2 * np.pi) - np.pi, reaches


def link_tracks(tracks: np.ndarray, clusters: np.ndarray, layout: ElementLayout,
                params: BaselineParams) -> np.ndarray:
    """Per track (flat), the flat index of its linked cluster or −1. Inputs are [n, 17] element rows."""
    omega = tracks[:, TRK["omega"]]
    phi0 = np.arctan2(tracks[:, TRK["sin_phi"]], tracks[:, TRK["cos_phi"]])
    t_eta, t_phi, reaches = extrapolate_to_calo(tracks[:, TRK["tanLambda"]], phi0, omega, params)
    c_eta = clusters[:, CLU["eta"]]  # of the cluster position, seen from the origin
    c_phi = np.arctan2(clusters[:, CLU["sin_phi"]], clusters[:, CLU["cos_phi"]])
    link = np.full(tracks.shape[0], -1, dtype=np.int64)
    ok = np.flatnonzero(reaches)
    t_eta, t_phi = t_eta[ok], t_phi[ok]
    # ΔR² orders the clusters as ΔR does, without the square root.
    link[ok] = nearest_in_events(layout.track_event[ok], t_eta, (t_eta, t_phi), layout.cluster_event, c_eta,
                                 (c_eta, c_phi), metric=METRIC_DELTA_R2, window=params.link_dr,
                                 max_distance=params.link_dr**2)
    return link


def baseline_candidates(tracks: np.ndarray, clusters: np.ndarray, layout: ElementLayout,
                        params: BaselineParams | None = None) -> np.ndarray:
    """[total elements, 8] float64 candidate rows from the [tracks, 17] and [clusters, 17] feature rows."""
    params = params or BaselineParams()
    link = link_tracks(tracks, clusters, layout, params)
    linked = link >= 0

    p = tracks[:, TRK["p"]].astype(np.float64)
    c_energy = clusters[:, CLU["energy"]].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_fecal = np.where(c_energy > 0, clusters[:, CLU["energy_ecal"]] / c_energy, 0.0)
    n_clusters = clusters.shape[0]
    sum_p = np.bincount(link[linked], weights=p[linked], minlength=n_clusters)

    # Charged candidates, one per track.
    e_link = np.where(linked, c_energy[np.maximum(link, 0)], 0.0)
    fecal_link = np.where(linked, c_fecal[np.maximum(link, 0)], 0.0)
    sum_p_link = np.where(linked, sum_p[np.maximum(link, 0)], 1.0)
    muon = (p >= params.muon_min_p) & (~linked | (e_link <= params.mip_max_energy))
    electron = (~muon & linked & (fecal_link >= params.ecal_fraction_em)
                & (np.abs(e_link / sum_p_link - 1.0) < params.electron_ep_window))
    t_cls = np.select([muon, electron], [CLS_MUON, CLS_ELECTRON], default=CLS_CHARGED_HADRON)
    mass = np.select([muon, electron], [_MASS[CLS_MUON], _MASS[CLS_ELECTRON]], default=_MASS[CLS_CHARGED_HADRON])

    charged = np.empty((tracks.shape[0], N_PARTICLE_FEATURES), dtype=np.float64)
    charged[:, PF["cls_id"]] = t_cls
    charged[:, PF["charge"]] = np.sign(tracks[:, TRK["omega"]])
    charged[:, PF["pt"]] = tracks[:, TRK["pt"]]
    charged[:, PF["eta"]] = tracks[:, TRK["eta"]]
    charged[:, PF["sin_phi"]] = tracks[:, TRK["sin_phi"]]
    charged[:, PF["cos_phi"]] = tracks[:, TRK["cos_phi"]]
    charged[:, PF["energy"]] = np.hypot(p, mass)
    charged[:, PF["jet_idx"]] = -1

    # Neutral candidates from unlinked clusters and significant remainders.
    has_track = sum_p > 0
    a = np.sqrt(c_fecal * params.resolution_em**2 + (1.0 - c_fecal) * params.resolution_had**2)
    remainder = c_energy - sum_p
    energy = np.where(has_track, remainder, c_energy)
    photon = c_fecal >= params.ecal_fraction_em
    neutral = np.flatnonzero(np.where(has_track, remainder > params.nsigma_neutral * a * np.sqrt(sum_p), c_energy > 0)
                             & (photon | (energy >= params.min_neutral_hadron_energy)))
    energy = energy[neutral]
    eta = clusters[neutral, CLU["eta"]]
    neutrals = np.zeros((neutral.size, N_PARTICLE_FEATURES), dtype=np.float64)
    neutrals[:, PF["cls_id"]] = np.where(photon[neutral], CLS_PHOTON, CLS_NEUTRAL_HADRON)
    neutrals[:, PF["pt"]] = energy / np.cosh(eta)
    neutrals[:, PF["eta"]] = eta
    neutrals[:, PF["sin_phi"]] = clusters[neutral, CLU["sin_phi"]]
    neutrals[:, PF["cos_phi"]] = clusters[neutral, CLU["cos_phi"]]
    neutrals[:, PF["energy"]] = energy
    neutrals[:, PF["jet_idx"]] = -1

    out = np.zeros((layout.total, N_PARTICLE_FEATURES), dtype=np.float64)
    out[:, PF["jet_idx"]] = -1
    out[layout.track_pos] = charged
    out[layout.cluster_pos[neutral]] = neutrals
    return out

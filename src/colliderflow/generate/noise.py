"""Electronic-noise clusters: cells that fire on noise alone, with no particle behind them.

Each ECAL and HCAL cell carries Gaussian noise of `*_noise_mip` MIP (σ); a cell becomes a cluster on
its own when its noise passes both the hit threshold (`hit_threshold_mip`) and the cluster energy
threshold (`cluster_energy_min_gev`, converted to MIP with the GeV of one MIP hit, `*_mip_gev`). With
N cells the number of such clusters per event is Poisson with mean N × P(noise > threshold), the
Gaussian tail; their energies are drawn from that tail. Two noise cells next to each other are
neglected (the occupancy is far below one per cent). Noise clusters sit on the calorimeter's barrel
face at a uniform position, one cell wide, and have no truth link: their elements get no target.
Numbers and sources: docs/detector.md.
"""

from __future__ import annotations

import math

import numpy as np

from colliderflow.generate.geometry import CalorimeterConfig
from colliderflow.generate.records import Collection
from colliderflow.schema import SIM_CLUSTER_BRANCHES


def noise_threshold_sigma(calo: CalorimeterConfig, hcal: bool) -> float:
    """The threshold a noise cell must pass to become a cluster, in units of its noise σ."""
    sigma = calo.hcal_noise_mip if hcal else calo.ecal_noise_mip
    mip_gev = calo.hcal_mip_gev if hcal else calo.ecal_mip_gev
    if sigma <= 0 or mip_gev <= 0:
        raise ValueError("calorimeter noise: *_noise_mip and *_mip_gev must be > 0")
    return max(calo.hit_threshold_mip, calo.cluster_energy_min_gev / mip_gev) / sigma


def mean_noise_clusters(calo: CalorimeterConfig, hcal: bool) -> float:
    """Expected noise clusters per event in the ECAL (hcal=False) or the HCAL."""
    cells = calo.hcal_cells if hcal else calo.ecal_cells
    return cells * 0.5 * math.erfc(noise_threshold_sigma(calo, hcal) / math.sqrt(2.0))


def gaussian_tail(rng: np.random.Generator, threshold: float, n: int) -> np.ndarray:
    """n draws of a standard normal conditioned on x > threshold (Robert 1995: exponential proposal)."""
    out = np.empty(n)
    if threshold <= 0.0:  # below the mean: plain rejection from the normal
        todo = np.arange(n)
        while todo.size:
            x = rng.standard_normal(todo.size)
            ok = x > threshold
            out[todo[ok]] = x[ok]
            todo = todo[~ok]
        return out
    rate = 0.5 * (threshold + math.sqrt(threshold * threshold + 4.0))
    todo = np.arange(n)
    while todo.size:  # each round accepts most of what is left
        x = threshold + rng.exponential(1.0 / rate, todo.size)
        ok = rng.random(todo.size) <= np.exp(-0.5 * (x - rate) ** 2)
        out[todo[ok]] = x[ok]
        todo = todo[~ok]
    return out


def noise_clusters(n_events: int, calo: CalorimeterConfig, rng: np.random.Generator) -> Collection:
    """The noise clusters of `n_events` events: SIM_CLUSTER columns, ECAL ones before HCAL ones per event."""
    parts = []
    for hcal in (False, True):
        counts = rng.poisson(mean_noise_clusters(calo, hcal), n_events)
        n = int(counts.sum())
        sigma = calo.hcal_noise_mip if hcal else calo.ecal_noise_mip
        mip_gev = calo.hcal_mip_gev if hcal else calo.ecal_mip_gev
        energy = gaussian_tail(rng, noise_threshold_sigma(calo, hcal), n) * sigma * mip_gev
        radius = calo.ecal_barrel_radius_mm + (calo.ecal_thickness_mm + calo.ecal_hcal_gap_mm if hcal else 0.0)
        phi = rng.uniform(-math.pi, math.pi, n)
        z = rng.uniform(-calo.ecal_endcap_z_mm, calo.ecal_endcap_z_mm, n)
        cell = calo.hcal_cell_mm if hcal else calo.ecal_cell_mm
        width = np.full(n, cell / math.sqrt(12.0))
        zero = np.zeros(n)
        columns = {
            "cluster_energy": energy, "cluster_x": radius * np.cos(phi), "cluster_y": radius * np.sin(phi),
            "cluster_z": z, "cluster_itheta": np.arctan2(radius, z), "cluster_energy_ecal": zero if hcal else energy,
            "cluster_energy_hcal": energy if hcal else zero, "cluster_energy_other": zero,
            "cluster_sigma_x": width, "cluster_sigma_y": width, "cluster_sigma_z": width,
            "cluster_nhits": np.ones(n),
        }  # fmt: skip
        parts.append((counts, columns))
    return merge_clusters(*(Collection(counts=c, columns=_typed(cols)) for c, cols in parts))


def _typed(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The cluster columns in the writer's types (float32, hits int32)."""
    return {b: columns[b].astype(np.int32 if b == "cluster_nhits" else np.float32) for b in SIM_CLUSTER_BRANCHES}


def merge_clusters(*collections: Collection) -> Collection:
    """Clusters of each event from several collections, in the order given (event order kept), so the
    first collection's in-event cluster indices (its truth links) stay valid."""
    n_events = collections[0].counts.size
    event = np.concatenate([np.repeat(np.arange(n_events), c.counts) for c in collections])
    order = np.argsort(event, kind="stable")
    columns = {b: np.concatenate([c.columns[b] for c in collections])[order] for b in SIM_CLUSTER_BRANCHES}
    return Collection(counts=sum(c.counts for c in collections), columns=columns)

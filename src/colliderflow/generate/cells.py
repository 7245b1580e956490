"""Calorimeter cells and nearest-neighbour clustering: what merges is decided by cell adjacency.

A shower leaves one or more fragments (calorimeter.py): the compact part of each shower and, for
hadrons, satellite points far from the axis. Each fragment's energy-weighted centroid is projected
from the interaction point onto the ECAL front face (barrel cylinder or endcap plane), where cells are
counted in ECAL cell units: CLICdet's ECAL cells are 5.1 mm, its HCAL tiles 30 mm, which seen from
the interaction point on the ECAL face are 30 mm × r_ECAL / r_HCAL (arXiv:1812.07337). A fragment
occupies a square of cells around its centroid's cell, on the grid of the calorimeter holding most of
its energy: ± its energy-weighted mean distance from the shower axis (the cells its energy lands in),
at least ± `em_core_cells` ECAL cells or ± `hadron_core_cells` HCAL tiles; a hadron shower's satellite
occupies its one cell. Two fragments of one event whose squares overlap or touch (share a side or a
corner: nearest neighbours on the fine grid) are connected, and a cluster is a connected component,
found with a union-find over a sweep along the sorted cell coordinate. Barrel φ wraps around; barrel
and endcaps are separate maps (a shower on their boundary does not join across it).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from colliderflow.generate.geometry import CalorimeterConfig

# Regions of the cell map.
REGION_BARREL = 0
REGION_ENDCAP_MINUS = 1
REGION_ENDCAP_PLUS = 2


@numba.njit(cache=True, nogil=True, _nrt=False)  # no refcounting of `parent` per call (see showers.py)
def _find(parent, i):
    """Root of i, halving the path on the way (union-find)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True, _nrt=False)
def _touch(lo_a, hi_a, lo_b, hi_b):
    """Whether two cell intervals overlap or are next to each other."""
    return lo_a <= hi_b + 1 and lo_b <= hi_a + 1


@numba.njit(cache=True, nogil=True)
def _cell_boxes(event, x, y, z, hcal_dominated, lateral_mean, satellite, barrel_r, endcap_z, ecal_cell,
                hcal_cell_barrel, hcal_cell_endcap, em_core, hadron_core):  # fmt: skip
    """(sweep key, region, lo_u, hi_u, lo_v, hi_v): the square of ECAL-cell indices each fragment occupies
    on the ECAL face, and the key (event, region, lo_u) that orders the sweep."""
    n = event.shape[0]
    region = np.empty(n, dtype=np.int64)
    lo_u = np.empty(n, dtype=np.int64)
    hi_u = np.empty(n, dtype=np.int64)
    lo_v = np.empty(n, dtype=np.int64)
    hi_v = np.empty(n, dtype=np.int64)
    for i in range(n):
        r = math.sqrt(x[i] * x[i] + y[i] * y[i])
        # Project the centroid from the origin onto the ECAL face.
        if r > 0.0 and abs(z[i]) * barrel_r <= endcap_z * r:
            s = barrel_r / r
            region[i] = REGION_BARREL
            u, v = z[i] * s, barrel_r * math.atan2(y[i], x[i])
            hcal_cell = hcal_cell_barrel
        else:
            s = endcap_z / max(abs(z[i]), 1e-9)
            region[i] = REGION_ENDCAP_PLUS if z[i] > 0 else REGION_ENDCAP_MINUS
            u, v = x[i] * s, y[i] * s
            hcal_cell = hcal_cell_endcap
        if hcal_dominated[i]:
            k = 0 if satellite[i] else max(hadron_core, int(lateral_mean[i] / hcal_cell + 0.5))
            iu, iv = math.floor(u / hcal_cell), math.floor(v / hcal_cell)
            lo_u[i] = math.floor((iu - k) * hcal_cell / ecal_cell)
            hi_u[i] = math.floor((iu + k + 1) * hcal_cell / ecal_cell) - 1
            lo_v[i] = math.floor((iv - k) * hcal_cell / ecal_cell)
            hi_v[i] = math.floor((iv + k + 1) * hcal_cell / ecal_cell) - 1
        else:
            k = 0 if satellite[i] else max(em_core, int(lateral_mean[i] / ecal_cell + 0.5))
            iu, iv = math.floor(u / ecal_cell), math.floor(v / ecal_cell)
            lo_u[i], hi_u[i] = iu - k, iu + k
            lo_v[i], hi_v[i] = iv - k, iv + k
    key = np.empty(n, dtype=np.int64)
    min_lo = lo_u.min()
    span = lo_u.max() - min_lo + 1
    for i in range(n):
        key[i] = (event[i] * 3 + region[i]) * span + (lo_u[i] - min_lo)
    return key, region, lo_u, hi_u, lo_v, hi_v


@numba.njit(cache=True, nogil=True)
def _connect(sweep, event, region, lo_u, hi_u, lo_v, hi_v, n_phi_cells):
    """(fragment order grouped by cluster, cluster of each fragment in that order, number of clusters).

    `sweep` orders the fragments by (event, region, lo_u): a fragment can only touch later ones while
    their lo_u stays within its hi_u + 1. Clusters are numbered by their first fragment (fragments come
    event-major, so clusters do too) and the order keeps fragment order inside a cluster.
    """
    n = event.shape[0]
    parent = np.arange(n)
    for a in range(n):
        i = sweep[a]
        for b in range(a + 1, n):
            j = sweep[b]
            if event[j] != event[i] or region[j] != region[i] or lo_u[j] > hi_u[i] + 1:
                break
            if not _touch(lo_u[i], hi_u[i], lo_u[j], hi_u[j]):
                continue
            close = _touch(lo_v[i], hi_v[i], lo_v[j], hi_v[j])
            if region[i] == REGION_BARREL and not close:  # phi wraps around
                close = (_touch(lo_v[i], hi_v[i], lo_v[j] + n_phi_cells, hi_v[j] + n_phi_cells)
                         or _touch(lo_v[i], hi_v[i], lo_v[j] - n_phi_cells, hi_v[j] - n_phi_cells))
            if close:
                ri, rj = _find(parent, i), _find(parent, j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    # Number the clusters in fragment order, then a counting sort groups the fragments by cluster.
    label = np.empty(n, dtype=np.int64)
    number = np.full(n, -1, dtype=np.int64)
    size = np.zeros(n + 1, dtype=np.int64)
    n_clusters = 0
    for i in range(n):
        root = _find(parent, i)
        if number[root] < 0:
            number[root] = n_clusters
            n_clusters += 1
        label[i] = number[root]
        size[label[i] + 1] += 1
    for c in range(n_clusters):
        size[c + 1] += size[c]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[size[label[i]]] = i
        size[label[i]] += 1
    return order, label[order], n_clusters


def cluster_fragments(event: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray, e_ecal: np.ndarray,
                      e_hcal: np.ndarray, lateral_mean: np.ndarray, satellite: np.ndarray, calo: CalorimeterConfig
                      ) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """(fragment order, cluster number of each fragment in that order, number of clusters).

    `event` must be non-decreasing (fragments come event-major). The order sorts fragments by cluster
    and keeps fragment order among equals, so each cluster's fragments are contiguous and clusters
    are numbered event-major.
    """
    if calo.ecal_cell_mm <= 0 or calo.hcal_cell_mm <= 0 or calo.em_core_cells < 0 or calo.hadron_core_cells < 0:
        raise ValueError("calorimeter cells: ecal_cell_mm and hcal_cell_mm must be > 0, core cells >= 0")
    if len(event) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    hcal_barrel_r = calo.ecal_barrel_radius_mm + calo.ecal_thickness_mm + calo.ecal_hcal_gap_mm
    hcal_endcap_z = calo.ecal_endcap_z_mm + calo.ecal_thickness_mm + calo.ecal_hcal_gap_mm
    key, region, lo_u, hi_u, lo_v, hi_v = _cell_boxes(
        event, x, y, z, e_hcal > e_ecal, lateral_mean, satellite, float(calo.ecal_barrel_radius_mm),
        float(calo.ecal_endcap_z_mm), float(calo.ecal_cell_mm),
        calo.hcal_cell_mm * calo.ecal_barrel_radius_mm / hcal_barrel_r,
        calo.hcal_cell_mm * calo.ecal_endcap_z_mm / hcal_endcap_z, int(calo.em_core_cells),
        int(calo.hadron_core_cells),
    )  # fmt: skip
    n_phi_cells = int(round(2.0 * math.pi * calo.ecal_barrel_radius_mm / calo.ecal_cell_mm))
    order, label, n_clusters = _connect(np.argsort(key, kind="stable"), event, region, lo_u, hi_u, lo_v, hi_v,
                                        n_phi_cells)  # fmt: skip
    return order, label, int(n_clusters)

"""Calorimeter truth links of particles that stand for another truth particle (detector-made secondaries).

The calorimeter links each deposit to the particle it simulated. Secondaries are not in the truth
record, so their deposits are recorded against the truth particle they came from (the converted photon,
the hadron that interacted), as DD4hep attributes the hits of secondaries it does not keep to their kept
ancestor. Both legs of a conversion, or both products of a nuclear interaction, can deposit in one
cluster: their links are then merged into one (cluster, particle) link with the summed energy, at the
position of the first, so that every link stays unique as the calorimeter makes them.
"""

from __future__ import annotations

import numpy as np

from colliderflow.generate.particles import GenParticles
from colliderflow.generate.records import Collection


def links_to_truth(links: Collection, particles: GenParticles, truth: np.ndarray, truth_offsets: np.ndarray,
                   is_secondary: np.ndarray) -> Collection:
    """`links` (SIM_CALOLINK_BRANCHES over `particles`) with calolink_gen_idx replaced by the in-event index
    of the truth particle each of `particles` stands for (`truth`: its flat index in a record whose
    events start at `truth_offsets`); duplicate (cluster, truth) links merged.

    `is_secondary` marks the particles that stand for another: only their links can collide (the
    particle they stand for stopped in the material and deposits nothing itself)."""
    cols = links.columns
    event = np.repeat(np.arange(links.counts.size, dtype=np.int64), links.counts)
    flat = particles.offsets[event] + cols["calolink_gen_idx"].astype(np.int64)
    gen_idx = truth[flat] - truth_offsets[event]
    cluster = cols["calolink_cluster_idx"].astype(np.int64)
    moved = np.flatnonzero(is_secondary[flat])
    energy = cols["calolink_energy"].astype(np.float64)
    keep = np.ones(event.size, dtype=bool)
    if moved.size:
        # One integer per (event, cluster, truth particle): each index is below 2^21 in any real batch.
        key = (event[moved] << 42) | (cluster[moved] << 21) | gen_idx[moved]
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        summed = np.bincount(inverse, weights=energy[moved])
        energy[moved[first]] = summed
        keep[moved] = False
        keep[moved[first]] = True
    columns = {
        "calolink_cluster_idx": cols["calolink_cluster_idx"][keep],
        "calolink_gen_idx": gen_idx[keep].astype(cols["calolink_gen_idx"].dtype),
        "calolink_energy": energy[keep].astype(cols["calolink_energy"].dtype),
    }
    return Collection(counts=np.bincount(event[keep], minlength=links.counts.size).astype(np.int64),
                      columns=columns)

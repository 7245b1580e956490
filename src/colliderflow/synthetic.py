"""Synthetic data in the exact layouts of the project's datasets, with rules a model can learn.

For tests, benchmarks and the ONNX export's check: PF events as `colliderflow.io.tfds_reader` returns them,
and jets as a JetClass-II Parquet table. Nothing here depends on a stage, only on the schema modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from colliderflow.schema import ELEM_TYPE_CLUSTER, ELEM_TYPE_TRACK, N_ELEM_FEATURES, N_PARTICLE_FEATURES

Event = dict[str, Any]


def synthetic_events(n_events: int, *, seed: int = 0, min_elements: int = 100, max_elements: int = 200,
                     sample: str = "synthetic", first_event_id: int = 0) -> list[Event]:
    """Events with the real layout and a rule a model can learn, for tests and benchmarks.

    The rule: a track is a charged hadron (a muon when its χ² column is below 0.5) with charge = sign of
    its curvature; a cluster under 0.5 GeV is no particle, otherwise a photon when most of its energy is
    in the ECAL and a neutral hadron when not. Target pT and E are 0.9 and 0.95 of the element's, the
    direction is the element's. Element features follow the schema's column order and units.
    """
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n_events):
        n = int(rng.integers(min_elements, max_elements + 1))
        n_trk = int(rng.binomial(n, 0.4))
        eta = rng.uniform(-2.5, 2.5, n).astype(np.float32)
        phi = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
        pt = rng.lognormal(0.5, 1.0, n).astype(np.float32)
        X = np.zeros((n, N_ELEM_FEATURES), np.float32)
        X[:, 0] = np.where(np.arange(n) < n_trk, ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER)
        X[:, 1], X[:, 2], X[:, 3], X[:, 4] = pt, eta, np.sin(phi), np.cos(phi)
        X[:, 5] = pt * np.cosh(eta)  # p for tracks, energy for clusters
        trk, clu = slice(0, n_trk), slice(n_trk, n)
        # tracks: chi2, ndf, dEdx, dEdxError, radius, tanLambda, D0, omega, Z0, time, pad
        X[trk, 6] = rng.exponential(2.0, n_trk)
        X[trk, 7] = rng.integers(5, 20, n_trk)
        X[trk, 8] = rng.normal(3e-7, 5e-8, n_trk)
        X[trk, 9] = rng.normal(1e-8, 1e-9, n_trk)
        X[trk, 10] = rng.uniform(20, 60, n_trk)
        X[trk, 11] = np.sinh(eta[trk])
        X[trk, 12] = rng.normal(0, 0.05, n_trk)
        X[trk, 13] = rng.choice([-1.0, 1.0], n_trk) * 1.3e-3 / pt[trk]  # signed curvature, 1/mm (4 T)
        X[trk, 14] = rng.normal(0, 0.1, n_trk)
        X[trk, 15] = rng.normal(0, 0.01, n_trk)
        # clusters: position x, y, z, iTheta, energy_ecal, energy_hcal, energy_other, num_hits, sigma x, y, z
        f_ecal = rng.uniform(0, 1, n - n_trk).astype(np.float32)
        energy = X[clu, 5]
        theta = 2 * np.arctan(np.exp(-eta[clu]))
        X[clu, 6], X[clu, 7], X[clu, 8] = 1500 * np.cos(phi[clu]), 1500 * np.sin(phi[clu]), 1500 / np.tan(theta)
        X[clu, 9] = theta
        X[clu, 10], X[clu, 11], X[clu, 12] = f_ecal * energy, (1 - f_ecal) * energy, 0.0
        X[clu, 13] = rng.integers(1, 200, n - n_trk)
        X[clu, 14:17] = rng.uniform(5, 50, (n - n_trk, 3))

        y = np.zeros((n, N_PARTICLE_FEATURES), np.float32)
        cls = np.zeros(n, np.int64)
        cls[trk] = np.where(X[trk, 6] < 0.5, 5, 1)
        cls[clu] = np.where(energy < 0.5, 0, np.where(f_ecal > 0.5, 3, 2))
        y[:, 0] = cls
        y[trk, 1] = np.sign(X[trk, 13])
        y[:, 2], y[:, 6] = 0.9 * X[:, 1], 0.95 * X[:, 5]
        y[:, 3], y[:, 4], y[:, 5] = X[:, 2], X[:, 3], X[:, 4]
        y[cls == 0] = 0.0
        ycand = y.copy()
        flip = rng.uniform(size=n) < 0.1
        ycand[flip, 0] = np.where(ycand[flip, 0] == 2, 3, ycand[flip, 0])
        m = int(rng.integers(1, 6))
        jets = np.stack([rng.uniform(5, 100, m), rng.uniform(-2, 2, m), rng.uniform(-3, 3, m),
                         rng.uniform(10, 150, m)], axis=1).astype(np.float32)
        events.append({
            "X": X, "ytarget": y, "ycand": ycand, "genjets": jets, "targetjets": jets.copy(),
            "genmet": np.float32(rng.exponential(10.0)), "event_id": np.int64(first_event_id + i),
            "n_elements": np.int32(n), "sample": sample,
        })
    return events


def synthetic_jet_table(n_jets: int, *, seed: int = 0, labels: Sequence[int] = (0, 1), min_particles: int = 5,
                        max_particles: int = 40) -> pa.Table:
    """Jets in the exact JetClass-II schema with a rule a tagger can learn: the class sets the opening
    angle of the constituents around the jet axis (class k: spread 0.05·(1 + 2k)) and so the jet mass.
    Columns the adapter does not read are zeros or empty lists."""
    from colliderflow.jetschema import JETCLASS2_COLUMNS, jetclass2_table

    rng = np.random.default_rng(seed)
    counts = rng.integers(min_particles, max_particles + 1, n_jets)
    cls = rng.integers(0, len(labels), n_jets)
    total = int(counts.sum())
    jet_of = np.repeat(np.arange(n_jets), counts)
    jet_pt, jet_eta, jet_phi = rng.uniform(300, 800, n_jets), rng.uniform(-2, 2, n_jets), rng.uniform(-3, 3, n_jets)
    spread = 0.05 * (1 + 2 * cls[jet_of])
    deta, dphi = rng.normal(0, spread), rng.normal(0, spread)
    share = rng.exponential(1.0, total)
    share /= np.bincount(jet_of, share)[jet_of]
    pt = share * jet_pt[jet_of]
    eta, phi = jet_eta[jet_of] + deta, jet_phi[jet_of] + dphi
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + 0.14**2)
    charge = rng.choice([-1, 0, 1], total)
    cols: dict[str, object] = {}
    for column in JETCLASS2_COLUMNS:
        if column.is_list:
            cols[column.name] = (np.zeros(0, np.float32), np.zeros(n_jets, np.int64))
        else:
            cols[column.name] = np.zeros(n_jets)
    part = {"part_px": px, "part_py": py, "part_pz": pz, "part_energy": energy,
            "part_deta": np.sign(jet_eta[jet_of]) * deta, "part_dphi": dphi,
            "part_d0val": rng.normal(0, 0.05, total) * (charge != 0), "part_d0err": np.full(total, 0.01),
            "part_dzval": rng.normal(0, 0.05, total) * (charge != 0), "part_dzerr": np.full(total, 0.01),
            "part_charge": charge, "part_isChargedHadron": charge != 0, "part_isNeutralHadron": np.zeros(total),
            "part_isPhoton": charge == 0, "part_isElectron": np.zeros(total), "part_isMuon": np.zeros(total)}
    for name, values in part.items():
        cols[name] = (np.asarray(values), counts)
    sum_px, sum_py = np.bincount(jet_of, px), np.bincount(jet_of, py)
    cols.update(jet_pt=np.hypot(sum_px, sum_py), jet_eta=jet_eta, jet_phi=jet_phi,
                jet_energy=np.bincount(jet_of, energy), jet_nparticles=counts,
                jet_label=np.asarray(labels)[cls])
    return jetclass2_table(cols)

"""Array kernels on many events at once: particle blocks → four-vectors, jets, MET, jet matching.

Shared by the ntuplizer (gen and target jets) and the evaluation (jets from predicted and baseline
particles), so that every set of jets in the project is built the same way.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

import awkward as ak
import numpy as np

from colliderflow.schema import PF

_ALGORITHMS = ("ee_genkt", "antikt")


def particles_from_block(block: ak.Array) -> ak.Array:
    """Particles of a per-element block ([events, elements, 8]) with cls_id != 0, as (pt, eta, phi, energy)."""
    cls_id = block[:, :, PF["cls_id"]]
    keep = block[cls_id != 0]
    phi = np.arctan2(keep[:, :, PF["sin_phi"]], keep[:, :, PF["cos_phi"]])
    return ak.zip(
        {
            "pt": keep[:, :, PF["pt"]],
            "eta": keep[:, :, PF["eta"]],
            "phi": phi,
            "energy": keep[:, :, PF["energy"]],
        }
    )


def _to_cartesian(particles: ak.Array) -> dict[str, ak.Array]:
    pt, eta, phi = particles.pt, particles.eta, particles.phi
    return {
        "px": pt * np.cos(phi),
        "py": pt * np.sin(phi),
        "pz": pt * np.sinh(eta),
        "E": particles.energy,
    }


def missing_et(particles: ak.Array) -> np.ndarray:
    """|−Σ pT| per event, GeV: shape [events]."""
    c = _to_cartesian(particles)
    return np.hypot(ak.to_numpy(ak.sum(c["px"], axis=1)), ak.to_numpy(ak.sum(c["py"], axis=1))).astype(np.float32)


@contextlib.contextmanager
def stdout_fd_silenced() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: FastJet's C++ banner bypasses Python's sys.stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def cluster_jets(
    particles: ak.Array, *, algorithm: str = "ee_genkt", radius: float = 0.4, p: float = -1.0, min_pt: float = 5.0
) -> ak.Array:
    """Cluster each event's particles with FastJet; returns jets as records (pt, eta, phi, energy).

    `particles` has fields pt, eta, phi, energy (GeV, rad). ee_genkt uses the generalised-kT exponent
    `p` (−1 is anti-kT-like) with angular radius `radius`; antikt is the hadron-collider algorithm.
    Jets are sorted by descending pT within each event.
    """
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"jet algorithm {algorithm!r} is not one of {_ALGORITHMS}")
    import fastjet  # noqa: PLC0415 (imported lazily: costly, and only some stages need it)

    if algorithm == "ee_genkt":
        jetdef = fastjet.JetDefinition(fastjet.ee_genkt_algorithm, radius, p)
    else:
        jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    c = _to_cartesian(particles)
    vectors = ak.zip({k: ak.values_astype(v, np.float64) for k, v in c.items()}, with_name="Momentum4D")
    n_events = len(vectors)
    if n_events == 0 or ak.sum(ak.num(vectors, axis=1)) == 0:
        empty = ak.Array([[]] * n_events)
        return ak.zip({"pt": empty, "eta": empty, "phi": empty, "energy": empty})
    with stdout_fd_silenced():
        sequence = fastjet.ClusterSequence(vectors, jetdef)
        jets = sequence.inclusive_jets(min_pt=min_pt)
    px, py, pz, energy = jets.px, jets.py, jets.pz, jets.E
    pt = np.hypot(px, py)
    # eta of a jet with pt == 0 is undefined; such jets are below any min_pt and never reach here.
    eta = np.arcsinh(pz / pt)
    phi = np.arctan2(py, px)
    out = ak.zip({"pt": pt, "eta": eta, "phi": phi, "energy": energy})
    order = ak.argsort(out.pt, axis=1, ascending=False)
    return ak.values_astype(out[order], np.float32)


def jets_to_block(jets: ak.Array) -> ak.Array:
    """Jets as records → [events, jets, 4] rows of (pt, eta, phi, energy), the stored layout."""
    return ak.concatenate(
        [jets.pt[:, :, None], jets.eta[:, :, None], jets.phi[:, :, None], jets.energy[:, :, None]], axis=2
    )


def jets_from_block(block: ak.Array) -> ak.Array:
    """The stored [events, jets, 4] layout → records with fields pt, eta, phi, energy."""
    return ak.zip({"pt": block[:, :, 0], "eta": block[:, :, 1], "phi": block[:, :, 2], "energy": block[:, :, 3]})


def delta_r(eta1: Any, phi1: Any, eta2: Any, phi2: Any) -> Any:
    """ΔR with Δφ wrapped into [−π, π)."""
    dphi = (phi1 - phi2 + np.pi) % (2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def match_jets(reco: ak.Array, gen: ak.Array, *, max_dr: float = 0.1) -> tuple[ak.Array, ak.Array]:
    """For every gen jet, the pT of the closest reco jet within `max_dr` (None where there is none).

    Returns (gen jets that found a match, matched reco jets), both [events, matches]. Each gen jet takes
    its nearest reco jet; with ΔR < 0.1 two gen jets sharing one reco jet is vanishingly rare and kept.
    """
    pairs = ak.cartesian({"gen": gen, "reco": reco}, axis=1, nested=True)
    dr = delta_r(pairs.gen.eta, pairs.gen.phi, pairs.reco.eta, pairs.reco.phi)
    best = ak.argmin(dr, axis=2, keepdims=True)
    best_dr = ak.firsts(dr[best], axis=2)
    best_reco = ak.firsts(pairs.reco[best], axis=2)
    ok = ak.fill_none(best_dr < max_dr, False)
    return gen[ok], best_reco[ok]

"""How often each track is linked to the cluster that holds most of its particle's deposited energy.

Two linkings read only element features: the MLPF model's (`models.mlpf.track_cluster_distance2`, the
nearest cluster within `LINK_DR` of the track's calorimeter entry point, which its hard link features use)
and the rule-based baseline's (`ntuplize.baseline.link_tracks`). Truth, from the simulation's links, says
which cluster each tracked particle deposited most of its energy in (muons excepted: a MIP is no shower,
and many share a jet's cluster). Prints, per linking, the share of tracks linked to that cluster, to
another one, or to none, overall, by momentum and by track pT bin.

    python benchmarks/link_accuracy.py results/physics/sim/ttbar/0/0.root --events 400

docs/detector.md ("The model") quotes its figures.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np
import torch

from colliderflow.io.sim_reader import read_events
from colliderflow.models.mlpf import LINK_DR, track_cluster_distance2
from colliderflow.ntuplize.baseline import BaselineParams, link_tracks
from colliderflow.ntuplize.targets import main_cluster_of_particles
from colliderflow.ntuplize.elements import (
    TRK,
    ElementLayout,
    cluster_features,
    element_rows,
    flat,
    layout_of,
    track_features,
)

MUON_PDGID = 13
PT_EDGES = (0.0, 1.0, 2.0, 5.0, 10.0, np.inf)


def truth_cluster_of_tracks(events: ak.Array, layout: ElementLayout) -> np.ndarray:
    """Per track (flat), the flat cluster index (within the clusters of all events) holding most of its
    particle's deposited energy; −1 for fakes, muons and particles that deposited nothing."""
    main = main_cluster_of_particles(events, layout)  # flat element index
    cluster_slot = np.full(layout.total + 1, -1, dtype=np.int64)  # the last slot maps −1 to −1
    cluster_slot[layout.cluster_pos] = np.arange(layout.cluster_pos.size)
    n_gen = ak.to_numpy(ak.num(events.gen_pdgid, axis=1)).astype(np.int64)
    gen_off = np.concatenate([[0], np.cumsum(n_gen)])
    track_gen = flat(events.track_gen_idx, np.int64)
    real = track_gen >= 0
    particle = gen_off[layout.track_event] + np.maximum(track_gen, 0)
    muon = np.abs(flat(events.gen_pdgid, np.int64))[particle] == MUON_PDGID
    return np.where(real & ~muon, cluster_slot[main[particle]], -1)


def model_links(rows: np.ndarray, layout: ElementLayout) -> np.ndarray:
    """Per track (flat), the flat cluster index the model's hard link picks, or −1; one event at a time."""
    link = np.full(layout.track_pos.size, -1, dtype=np.int64)
    track_slot = np.full(layout.total, -1, dtype=np.int64)
    track_slot[layout.track_pos] = np.arange(layout.track_pos.size)
    cluster_slot = np.full(layout.total, -1, dtype=np.int64)
    cluster_slot[layout.cluster_pos] = np.arange(layout.cluster_pos.size)
    with torch.no_grad():
        for start, n in zip(layout.offsets[:-1], layout.n_elements, strict=True):
            if n == 0:
                continue
            X = torch.from_numpy(rows[start:start + n].astype(np.float32))[None]
            d2 = track_cluster_distance2(X, torch.ones(1, n, dtype=torch.bool))[0]  # [n, n]
            best, nearest = d2.min(dim=1)
            tracks = track_slot[start:start + n] >= 0
            ok = tracks & (best.numpy() < LINK_DR**2)
            link[track_slot[start:start + n][ok]] = cluster_slot[start + nearest.numpy()[ok]]
    return link


def report(name: str, link: np.ndarray, truth: np.ndarray, pt: np.ndarray, p: np.ndarray) -> None:
    keep = truth >= 0
    link, truth, pt, p = link[keep], truth[keep], pt[keep], p[keep]
    right, none = link == truth, link < 0
    wrong = ~right & ~none
    print(f"{name}: {keep.sum()} tracks; right {right.mean():.1%}, wrong cluster {wrong.mean():.1%}, "
          f"none {none.mean():.1%}; momentum linked right {p[right].sum() / p.sum():.1%}")
    for lo, hi in zip(PT_EDGES[:-1], PT_EDGES[1:], strict=True):
        b = (pt >= lo) & (pt < hi)
        if b.any():
            print(f"  pT {lo:g}-{hi:g} GeV: {b.sum():6d} tracks, right {right[b].mean():.1%}, "
                  f"none {none[b].mean():.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sim", nargs="+", type=Path, help="builtin simulation ROOT files (with truth links)")
    parser.add_argument("--events", type=int, default=None, help="at most this many events of each file")
    args = parser.parse_args()
    found: dict[str, list[np.ndarray]] = {"truth": [], "model": [], "baseline": [], "pt": [], "p": []}
    for path in args.sim:
        source = read_events(path)
        events = source.events if args.events is None else source.events[: args.events]
        layout = layout_of(events)
        tracks = track_features(events, bfield=source.bfield_tesla, source=str(path))
        clusters = cluster_features(events)
        found["truth"].append(truth_cluster_of_tracks(events, layout))
        found["model"].append(model_links(element_rows(layout, tracks, clusters), layout))
        found["baseline"].append(link_tracks(tracks, clusters, layout, BaselineParams()))
        found["pt"].append(tracks[:, TRK["pt"]])
        found["p"].append(tracks[:, TRK["p"]])
        print(f"{path}: {len(events)} events", flush=True)
    # Indices are per file; concatenating is safe because each comparison is within one file's rows.
    joined = {k: np.concatenate(v) for k, v in found.items()}
    for name in ("model", "baseline"):
        report(name, joined[name], joined["truth"], joined["pt"], joined["p"])


if __name__ == "__main__":
    main()

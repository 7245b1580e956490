"""The rule-based baseline's MIP and neutral-hadron thresholds, measured against the builtin detector.

The baseline (`colliderflow.ntuplize.baseline`) never reads truth; its thresholds are chosen from how the
detector behaves, and this script is that measurement, so that the figures in docs/detector.md ("Baseline
thresholds against the detector's behaviour") can be re-made whenever the detector changes. It reads
ntuple Parquet shards (element rows `X` and targets `ytarget` per event, as `colliderflow ntuplize`
writes them), re-runs the baseline with each threshold in turn, and prints:

* muons: for tracks with p ≥ `muon_min_p`, the energy of the linked cluster when the target is a muon,
  and per `mip_max_energy` the muons missed plus the charged hadrons called muons;
* neutral hadrons: the share of the baseline's non-EM neutral candidates whose element has a target,
  by candidate energy, and per `min_neutral_hadron_energy` (and per `nsigma_neutral`) the event sum of
  candidate energy over target energy (median and IQR/median).

    colliderflow generate --sample ttbar --process ee_ttbar --backend builtin --backend-options '{}' \\
        --process-options '{}' --shard 0 --n-events 500 --seed 5 \\
        --params '{"detector":"clic_like","sqrt_s":380.0}' -o /tmp/t/0.root --provenance /tmp/t/g.json
    colliderflow ntuplize /tmp/t/0.root ... -o /tmp/t/0.parquet        # see rules/ntuplize.smk
    python benchmarks/baseline_thresholds.py /tmp/t/0.parquet
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colliderflow.ntuplize.baseline import BaselineParams, baseline_candidates, link_tracks
from colliderflow.ntuplize.elements import CLU, TRK, ElementLayout, build_layout
from colliderflow.ntuplize.targets import CLS_CHARGED_HADRON, CLS_MUON, CLS_NEUTRAL_HADRON, CLS_NONE
from colliderflow.schema import ELEM_TYPE_CLUSTER, ELEM_TYPE_TRACK, N_ELEM_FEATURES, N_PARTICLE_FEATURES, PF

MIP_THRESHOLDS = (0.4, 0.5, 0.6, 0.8, 1.0)
NEUTRAL_THRESHOLDS = (0.5, 1.0, 1.5, 2.0, 3.0)
NSIGMA_VALUES = (1.0, 1.5, 2.0, 2.5, 3.0)
ENERGY_EDGES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


@dataclasses.dataclass(frozen=True)
class Elements:
    """Flat element rows and targets of all events, in the ntuples' order (tracks, then clusters)."""

    rows: np.ndarray  # [elements, 17] float64
    targets: np.ndarray  # [elements, 8] float64
    event: np.ndarray  # [elements] event index
    n_events: int


def read_elements(paths: list[Path]) -> Elements:
    """The `X` and `ytarget` rows of every event of the given ntuple shards."""
    table = pa.concat_tables([pq.read_table(p, columns=["X", "ytarget", "n_elements"]) for p in paths])
    rows = table.column("X").combine_chunks().flatten().flatten().to_numpy().reshape(-1, N_ELEM_FEATURES)
    targets = table.column("ytarget").combine_chunks().flatten().flatten().to_numpy()
    n_elements = table.column("n_elements").to_numpy().astype(np.int64)
    event = np.repeat(np.arange(n_elements.size), n_elements)
    return Elements(rows.astype(np.float64), targets.reshape(-1, N_PARTICLE_FEATURES).astype(np.float64),
                    event, n_elements.size)


def split(elements: Elements) -> tuple[np.ndarray, np.ndarray, ElementLayout]:
    """Track rows, cluster rows and their layout (tracks before clusters in every event, as written)."""
    kind = elements.rows[:, 0]
    if not np.all(np.isin(kind, (ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER))):
        raise ValueError("X: element type (column 0) other than track or cluster")
    is_track = kind == ELEM_TYPE_TRACK
    n_tracks = np.bincount(elements.event[is_track], minlength=elements.n_events)
    n_clusters = np.bincount(elements.event[~is_track], minlength=elements.n_events)
    layout = build_layout(n_tracks, n_clusters)
    if not np.array_equal(np.flatnonzero(is_track), layout.track_pos):
        raise ValueError("X: an event's tracks do not all come before its clusters")
    return elements.rows[is_track], elements.rows[~is_track], layout


def percentiles(values: np.ndarray, qs: tuple[float, ...] = (50, 95, 99)) -> str:
    return " / ".join(f"{v:.2f}" for v in np.percentile(values, qs)) if values.size else "—"


def muon_table(elements: Elements) -> None:
    tracks, clusters, layout = split(elements)
    params = BaselineParams()
    link = link_tracks(tracks, clusters, layout, params)
    target = elements.targets[layout.track_pos, PF["cls_id"]]
    energetic = tracks[:, TRK["p"]] >= params.muon_min_p
    linked_energy = np.where(link >= 0, clusters[np.maximum(link, 0), CLU["energy"]], 0.0)
    muon = energetic & (target == CLS_MUON)
    hadron = energetic & (target == CLS_CHARGED_HADRON)
    mip_only = muon & (link >= 0) & (linked_energy < 1.5)
    print(f"tracks with p >= {params.muon_min_p} GeV: {muon.sum()} muon targets, {hadron.sum()} charged hadrons")
    print(f"  muons whose linked cluster holds only the MIP (< 1.5 GeV): {mip_only.sum()},"
          f" energy p50 / p95 / p99 = {percentiles(linked_energy[mip_only])} GeV;"
          f" unlinked: {(muon & (link < 0)).sum()}")
    print("  mip_max_energy | muons missed | hadrons called muon | errors | MIP-only muons kept")
    for threshold in MIP_THRESHOLDS:
        called = (link < 0) | (linked_energy <= threshold)
        missed, fake = int((muon & ~called).sum()), int((hadron & called).sum())
        kept = (mip_only & called).sum() / max(mip_only.sum(), 1)
        print(f"  {threshold:14.1f} | {missed:12d} | {fake:19d} | {missed + fake:6d} | {kept:.1%}")


def event_energy_ratio(elements: Elements, candidates: np.ndarray) -> tuple[float, float]:
    """Median and IQR/median over events of Σ candidate energy / Σ target energy."""
    cand = np.bincount(elements.event, weights=candidates[:, PF["energy"]], minlength=elements.n_events)
    target = np.bincount(elements.event, weights=elements.targets[:, PF["energy"]], minlength=elements.n_events)
    ratio = cand[target > 0] / target[target > 0]
    q25, q50, q75 = np.percentile(ratio, (25, 50, 75))
    return float(q50), float((q75 - q25) / q50)


def neutral_table(elements: Elements) -> None:
    tracks, clusters, layout = split(elements)
    everything = baseline_candidates(tracks, clusters, layout, BaselineParams(min_neutral_hadron_energy=0.0))
    on_cluster = np.zeros(len(elements.rows), dtype=bool)
    on_cluster[layout.cluster_pos] = True
    neutral = on_cluster & (everything[:, PF["cls_id"]] == CLS_NEUTRAL_HADRON)
    has_target = elements.targets[:, PF["cls_id"]] != CLS_NONE
    energy = everything[:, PF["energy"]]
    print(f"non-EM neutral candidates (no energy threshold): {neutral.sum() / elements.n_events:.1f} per event")
    print("  candidate energy (GeV) | candidates | share with a target")
    for low, high in zip(ENERGY_EDGES[:-1], ENERGY_EDGES[1:]):
        inside = neutral & (energy >= low) & (energy < high)
        share = has_target[inside].mean() if inside.any() else float("nan")
        print(f"  {low:5.2f}–{high:<5.2f}           | {inside.sum():10d} | {share:.0%}")
    print("  min_neutral_hadron_energy | event Σ candidate E / Σ target E: median, IQR/median")
    for threshold in NEUTRAL_THRESHOLDS:
        candidates = baseline_candidates(tracks, clusters, layout, BaselineParams(min_neutral_hadron_energy=threshold))
        median, spread = event_energy_ratio(elements, candidates)
        print(f"  {threshold:25.1f} | {median:.3f}, {spread:.3f}")
    print("  nsigma_neutral (at the default thresholds) | median, IQR/median")
    for nsigma in NSIGMA_VALUES:
        candidates = baseline_candidates(tracks, clusters, layout, BaselineParams(nsigma_neutral=nsigma))
        median, spread = event_energy_ratio(elements, candidates)
        print(f"  {nsigma:42.1f} | {median:.3f}, {spread:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parquet", nargs="+", type=Path, help="ntuple shards (colliderflow ntuplize output)")
    args = parser.parse_args()
    elements = read_elements(args.parquet)
    print(f"{elements.n_events} events, {len(elements.rows)} elements from {len(args.parquet)} shard(s)")
    muon_table(elements)
    neutral_table(elements)


if __name__ == "__main__":
    main()

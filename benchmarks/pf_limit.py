"""The jet pT resolution a perfect particle flow would reach on the builtin detector: the physics limit.

The evaluation compares MLPF with the rule-based baseline and with the target particles, but the target
particles carry their true energies: no reconstruction on any detector reaches them, and the gap between
the baseline and the targets is not all closable. This script measures how much of it is.

Two references, both with every target's class known, and each target on a track keeping its true
momentum (the track's own resolution, 0.3 % IQR/median on charged hadrons, is negligible at jet level):

* **limit** (perfect particle flow): a target on a cluster (a photon or a neutral hadron after the element
  remapping) gets the energy its own particles deposited in the calorimeter, summed over every cluster they
  reached (the simulation's truth links, `calolink_energy`): only the calorimeter's resolution is left.
* **rule-linked** (MLPF's own links): a target on a cluster gets that cluster's energy minus the momenta of
  the tracks that the hard link rule MLPF computes its link features with (`colliderflow.models.mlpf`: each
  track to its nearest cluster within `LINK_DR` of its calorimeter entry point) attaches to it, floored at
  0. What E − Σp reaches with the links the network is handed, if it knew every class and direction.
* **linked** (perfect linking): a target on a cluster gets that cluster's energy minus the true energies of
  the charged particles whose largest deposit is in it (muons excepted: they leave a MIP), floored at 0. This
  is E − Σp with every track linked to the right cluster, the best a reconstruction can do that sees only
  the clusters: how much a charged hadron's shower fluctuates inside a merged cluster is not in the cluster.

Each keeps the target's true direction and scales its 4-momentum by measured / true energy. Jets are
clustered and matched to the gen jets as the evaluation does (`colliderflow.evaluate.pf.metrics`), on the
same events as the target and baseline jets printed beside them. Between the baseline and **linked** lie
linking errors, missed and fake neutrals; between **linked** and **limit** the fluctuations of charged
showers merged with neutral ones, and fragments in other clusters, which only finer clustering (or hit-level
inputs) resolves. A model that uses shower shapes to correct each shower's energy (software compensation)
could in principle beat both.

    python benchmarks/pf_limit.py results/physics/sim/{ttbar,qq,ww}/shard_000*.root --bins 10 20 40 60 80 100 200

Between **rule-linked** and **linked** lie the linking errors alone.

Prints, per jet pT bin, the resolution (IQR/median of reco/gen jet pT) of targets, baseline and both
references, and the share of the baseline→target gap each reference closes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import torch

from colliderflow.evaluate.pf import metrics
from colliderflow.io.sim_reader import read_events
from colliderflow.kinematics import EVENT_JETS
from colliderflow.models.mlpf import hard_links, track_cluster_distance2
from colliderflow.ntuplize.baseline import BaselineParams
from colliderflow.ntuplize.elements import flat, layout_of
from colliderflow.ntuplize.events import file_columns
from colliderflow.ntuplize.targets import element_of_particle, main_cluster_of_particles, target_mask
from colliderflow.schema import ELEM_TYPE_CLUSTER, N_ELEM_FEATURES, N_PARTICLE_FEATURES, PF

ELEM_TYPE, ELEM_ENERGY = 0, 5  # columns of X: element type, energy (|p| of a track, E of a cluster)
MUON_PDGID = 13


@dataclass(frozen=True)
class TruthDeposits:
    """Truth-link sums of one file's events, flat over elements (the ntuples' element order)."""

    own: np.ndarray  # calorimeter energy deposited by the target particles each element hosts
    charged_in_cluster: np.ndarray  # true energy of the tracked charged particles whose largest deposit is here


def truth_deposits(events: ak.Array) -> TruthDeposits:
    """Sum the simulation's truth links (cluster, particle, energy) per element.

    Uses the same particle → element assignment and target selection as `colliderflow.ntuplize.targets`.
    """
    layout = layout_of(events)
    n_gen = ak.to_numpy(ak.num(events.gen_pdgid, axis=1)).astype(np.int64)
    gen_off = np.concatenate([[0], np.cumsum(n_gen)])
    n_link = ak.to_numpy(ak.num(events.calolink_energy, axis=1)).astype(np.int64)
    link_event = np.repeat(np.arange(layout.n_events, dtype=np.int64), n_link)
    gen = gen_off[link_event] + flat(events.calolink_gen_idx, np.int64)
    deposited = np.bincount(gen, weights=flat(events.calolink_energy), minlength=int(gen_off[-1]))

    elem = element_of_particle(events, layout)
    target = target_mask(events, elem) & (elem >= 0)
    own = np.bincount(elem[target], weights=deposited[target], minlength=layout.total)

    main_cluster = main_cluster_of_particles(events, layout)
    on_track = np.zeros(layout.total, dtype=bool)
    on_track[layout.track_pos] = True
    muon = np.abs(flat(events.gen_pdgid, np.int64)) == MUON_PDGID
    charged = target & on_track[np.maximum(elem, 0)] & (main_cluster >= 0) & ~muon
    charged_in_cluster = np.bincount(main_cluster[charged], weights=flat(events.gen_energy)[charged],
                                     minlength=layout.total)
    return TruthDeposits(own=own, charged_in_cluster=charged_in_cluster)


def with_cluster_energies(rows: np.ndarray, targets: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Target rows [elements, 8] with every cluster-hosted target's energy replaced by `measured` [elements]:
    4-momentum scaled by measured / true energy (direction kept); nothing measured → no particle."""
    out = targets.copy()
    on_cluster = (rows[:, ELEM_TYPE] == ELEM_TYPE_CLUSTER) & (targets[:, PF["cls_id"]] > 0)
    true_energy = targets[on_cluster, PF["energy"]]
    scale = np.divide(measured[on_cluster], true_energy, out=np.zeros_like(true_energy), where=true_energy > 0)
    out[on_cluster, PF["energy"]] *= scale
    out[on_cluster, PF["pt"]] *= scale
    out[np.flatnonzero(on_cluster)[scale <= 0], PF["cls_id"]] = 0
    return out


def rule_linked_remainder(rows: np.ndarray, n_elements: np.ndarray, *, events_per_batch: int = 64) -> np.ndarray:
    """Per element [elements]: a cluster's E minus the |p| of the tracks MLPF's hard link rule attaches to it
    (nearest reachable cluster within LINK_DR of the track's calorimeter entry point), floored at 0; a
    track's own |p|. Computed by `models.mlpf.track_cluster_distance2` on padded batches of events."""
    offsets = np.concatenate([[0], np.cumsum(n_elements)]).astype(np.int64)
    out = np.zeros(len(rows))
    for first in range(0, len(n_elements), events_per_batch):
        counts = n_elements[first:first + events_per_batch]
        width = int(counts.max(initial=0))
        if width == 0:
            continue
        mask = np.arange(width)[None, :] < counts[:, None]  # [B, N]
        start = offsets[first]
        X = np.zeros((len(counts), width, N_ELEM_FEATURES), np.float32)
        X[mask] = rows[start:start + counts.sum()]
        Xt, maskt = torch.from_numpy(X), torch.from_numpy(mask)
        with torch.no_grad():
            link = hard_links(track_cluster_distance2(Xt, maskt)).double()  # tracks × clusters
            energy = torch.where(maskt, Xt[..., ELEM_ENERGY].double().clamp(min=0.0), 0.0)
            linked = (link.transpose(1, 2) @ energy[..., None])[..., 0]
        out[start:start + counts.sum()] = (energy - linked).clamp(min=0.0).numpy()[mask]
    return out


REFERENCES = ("target", "baseline", "rule-linked", "linked", "limit")


def sample_matches(paths: list[Path], *, match_dr: float) -> dict[str, metrics.JetMatch]:
    """Gen-jet matches of the jets of every reference (REFERENCES) on the events of `paths`."""
    found: dict[str, list[metrics.JetMatch]] = {name: [] for name in REFERENCES}
    for path in paths:
        source = read_events(path)
        events = source.events
        columns = file_columns(events, first_index=0, shard=0, jets=dict(EVENT_JETS), baseline=BaselineParams(),
                               bfield=source.bfield_tesla, source=str(path))
        rows = columns.X.reshape(-1, N_ELEM_FEATURES).astype(np.float64)
        targets = columns.ytarget.reshape(-1, N_PARTICLE_FEATURES).astype(np.float64)
        truth = truth_deposits(events)
        cluster_energy = rows[:, ELEM_ENERGY]
        blocks = {
            "target": targets,
            "baseline": columns.ycand,
            "rule-linked": with_cluster_energies(rows, targets, rule_linked_remainder(rows, columns.n_elements)),
            "linked": with_cluster_energies(rows, targets, np.maximum(cluster_energy - truth.charged_in_cluster, 0.0)),
            "limit": with_cluster_energies(rows, targets, truth.own),
        }
        genjets = columns.genjets.records()
        for name, block in blocks.items():
            per_event = ak.unflatten(np.asarray(block, dtype=np.float32), columns.n_elements)
            found[name].append(metrics.match_block_jets(per_event, genjets, match_dr=match_dr))
        print(f"{path}: {len(events)} events", flush=True)
    return {name: metrics.JetMatch.concatenate(m) for name, m in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sim", nargs="+", type=Path, help="builtin simulation ROOT files (with truth links)")
    parser.add_argument("--bins", nargs="+", type=float, default=[10, 20, 40, 60, 80, 100, 200],
                        help="gen-jet pT bin edges in GeV (the evaluate.jet_pt_bins of the run)")
    parser.add_argument("--match-dr", type=float, default=0.1, help="gen-jet matching ΔR (evaluate.jet_match_dr)")
    args = parser.parse_args()

    matches = sample_matches(args.sim, match_dr=args.match_dr)
    bins = np.asarray(args.bins)
    res = {name: metrics.jet_response_from_match(m, pt_bins=bins, eta_bins=[-5.0, 5.0]) for name, m in matches.items()}
    count = res["target"]["vs_pt"]["count"]
    print(f"\njet pT resolution (IQR/median of reco/gen jet pT); 'closed': share of the baseline-target gap")
    print("bin (GeV)      jets   target  baseline  rule-linked  closed   linked  closed    limit  closed")
    compared = ("rule-linked", "linked", "limit")

    def line(label: str, jets: str, values: dict[str, float]) -> str:
        t, b = values["target"], values["baseline"]
        closed = {k: (b - values[k]) / (b - t) if b != t else float("nan") for k in compared}
        return (f"{label:<12} {jets:>6} {t:8.4f} {b:9.4f} {values['rule-linked']:12.4f} {closed['rule-linked']:7.0%}"
                f" {values['linked']:8.4f} {closed['linked']:7.0%} {values['limit']:8.4f} {closed['limit']:7.0%}")

    for i, (lo, hi) in enumerate(zip(bins[:-1], bins[1:], strict=True)):
        print(line(f"{lo:g}-{hi:g}", str(int(count[i])), {k: res[k]["vs_pt"]["resolution"][i] for k in REFERENCES}))
    print(line("inclusive", "", {k: res[k]["inclusive"]["resolution"] for k in REFERENCES}))


if __name__ == "__main__":
    main()

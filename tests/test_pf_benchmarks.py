"""benchmarks/pf_limit.py and link_accuracy.py: the references read the truth links right, and the model links
tracks to their own clusters."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from colliderflow.generate.run import generate_shard
from colliderflow.io.sim_reader import read_events
from colliderflow.ntuplize.elements import flat, layout_of
from colliderflow.ntuplize.targets import assign_targets
from colliderflow.schema import ELEM_TYPE_CLUSTER, ELEM_TYPE_TRACK, PF

ROOT = Path(__file__).resolve().parents[1]


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / f"benchmarks/{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


pf_limit = _load_script("pf_limit")
link_accuracy = _load_script("link_accuracy")


@pytest.fixture(scope="module")
def ttbar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pf_limit") / "ttbar.root"
    generate_shard(sample="ttbar", process="ee_ttbar", backend="builtin", shard=0, n_events=60, seed=23,
                   params={"sqrt_s": 380.0, "detector": "clic_like"}, output=out, provenance=None)
    return out


def test_own_deposits_are_every_target_link_once(ttbar: Path) -> None:
    events = read_events(ttbar).events
    truth = pf_limit.truth_deposits(events)
    layout = layout_of(events)
    assert truth.own.shape == truth.charged_in_cluster.shape == (layout.total,)
    # builtin files hold final-state particles only, each with its links: every linked particle is a target
    # on some element, so the element sums hold all the linked energy.
    assert truth.own.sum() == pytest.approx(float(np.sum(flat(events.calolink_energy))), rel=1e-9)
    # A cluster-hosted target deposited something: that is how it was assigned to the cluster.
    rows = assign_targets(events, layout).rows
    elem_type = np.zeros(layout.total)
    elem_type[layout.track_pos] = ELEM_TYPE_TRACK
    elem_type[layout.cluster_pos] = ELEM_TYPE_CLUSTER
    on_cluster = (elem_type == ELEM_TYPE_CLUSTER) & (rows[:, PF["cls_id"]] > 0)
    assert on_cluster.any() and np.all(truth.own[on_cluster] > 0)


def test_charged_energy_is_counted_on_clusters_only_and_once_per_particle(ttbar: Path) -> None:
    events = read_events(ttbar).events
    truth = pf_limit.truth_deposits(events)
    layout = layout_of(events)
    on_track = np.zeros(layout.total, dtype=bool)
    on_track[layout.track_pos] = True
    assert np.all(truth.charged_in_cluster[on_track] == 0)
    # At most the true energy of the tracked, non-muon charged particles that reached the calorimeter.
    charged = (flat(events.gen_charge) != 0) & (np.abs(flat(events.gen_pdgid, np.int64)) != 13)
    assert 0 < truth.charged_in_cluster.sum() <= flat(events.gen_energy)[charged].sum()


def test_cluster_energies_replace_only_cluster_hosted_targets() -> None:
    rows = np.zeros((3, 17))
    rows[:, 0] = [ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER, ELEM_TYPE_CLUSTER]
    targets = np.zeros((3, 8))
    targets[:, PF["cls_id"]] = [1, 2, 3]
    targets[:, PF["energy"]] = [10.0, 4.0, 2.0]
    targets[:, PF["pt"]] = [8.0, 2.0, 1.0]
    out = pf_limit.with_cluster_energies(rows, targets, np.array([99.0, 6.0, 0.0]))
    np.testing.assert_array_equal(out[0], targets[0])  # a track keeps its target
    assert out[1, PF["energy"]] == 6.0 and out[1, PF["pt"]] == 3.0  # scaled, direction kept
    assert out[2, PF["cls_id"]] == 0  # nothing measured: no particle
    assert targets[1, PF["energy"]] == 4.0  # the input is not modified


def test_perfect_particle_flow_beats_perfect_linking_and_the_baseline(ttbar: Path) -> None:
    matches = pf_limit.sample_matches([ttbar], match_dr=0.1)
    res = {name: pf_limit.metrics.jet_response_from_match(m, pt_bins=[10.0, 200.0], eta_bins=[-5.0, 5.0])
           for name, m in matches.items()}
    width = {name: r["inclusive"]["resolution"] for name, r in res.items()}
    assert all(np.isfinite(v) for v in width.values()), width
    # Each reference knows more than the next: truth, own deposits, perfect linking, the model's links, the
    # rule-based baseline (which also has to find every class).
    assert (width["target"] < width["limit"] < width["linked"] < width["rule-linked"] < width["baseline"]), width


def test_rule_linked_remainder_subtracts_the_tracks_the_model_links(ttbar: Path) -> None:
    """E − Σp per cluster from the batched hard links equals the one computed from link_accuracy's per-event
    links, whatever the batch size; tracks keep their |p|."""
    source = read_events(ttbar)
    layout = layout_of(source.events)
    tracks = link_accuracy.track_features(source.events, bfield=source.bfield_tesla)
    rows = link_accuracy.element_rows(layout, tracks, link_accuracy.cluster_features(source.events))
    remainder = pf_limit.rule_linked_remainder(rows, layout.n_elements)
    in_sevens = pf_limit.rule_linked_remainder(rows, layout.n_elements, events_per_batch=7)
    np.testing.assert_array_equal(remainder, in_sevens)

    energy = rows[:, pf_limit.ELEM_ENERGY]
    links = link_accuracy.model_links(rows, layout)  # per track: flat cluster index or −1
    linked = links >= 0
    subtracted = np.bincount(layout.cluster_pos[links[linked]], weights=energy[layout.track_pos][linked],
                             minlength=layout.total)
    expected = np.maximum(energy - subtracted, 0.0)
    np.testing.assert_allclose(remainder[layout.cluster_pos], expected[layout.cluster_pos], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(remainder[layout.track_pos], energy[layout.track_pos], rtol=1e-6)
    assert linked.mean() > 0.5 and (remainder[layout.cluster_pos] < energy[layout.cluster_pos]).any()


def test_the_model_links_most_tracks_to_the_cluster_holding_their_energy(ttbar: Path) -> None:
    """The model's hard links (entry point at the calorimeter front) find the particle's main cluster as often
    as the rule-based baseline does: following the helix on to the cluster's radius managed 52 % (docs)."""
    source = read_events(ttbar)
    events = source.events
    layout = layout_of(events)
    tracks = link_accuracy.track_features(events, bfield=source.bfield_tesla)
    clusters = link_accuracy.cluster_features(events)
    truth = link_accuracy.truth_cluster_of_tracks(events, layout)
    model = link_accuracy.model_links(link_accuracy.element_rows(layout, tracks, clusters), layout)
    baseline = link_accuracy.link_tracks(tracks, clusters, layout, link_accuracy.BaselineParams())
    known = truth >= 0
    assert known.sum() > 500
    right = {"model": np.mean(model[known] == truth[known]), "baseline": np.mean(baseline[known] == truth[known])}
    assert right["model"] > 0.85 and right["model"] >= right["baseline"] - 0.03, right

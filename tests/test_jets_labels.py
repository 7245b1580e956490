"""Jet labels: the table grammar, hand-made truth records with known answers, and JetClass-II's own labels."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest

from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.ntuplize.jet_labels import (
    ROLE_PRODUCT,
    ROLE_QCD,
    ROLE_TAU_PRODUCT,
    ROLE_X,
    ROLE_Y,
    GenRecord,
    LabelParams,
    LabelTable,
    label_jets,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXAMPLE = DATA / "jetclass2" / "JetClassII_example.parquet"
TABLE = LabelTable.from_names(JETCLASS2_LABELS)


# A particle: (pid, pt, eta, phi, first daughter, last daughter); daughters are contiguous ranges.
Particle = tuple[int, float, float, float, int, int]


def record(*events: list[Particle]) -> GenRecord:
    rows = [p for event in events for p in event]
    offsets = np.concatenate([[0], np.cumsum([len(e) for e in events])])
    cols = list(zip(*rows, strict=True))
    return GenRecord.from_pt_eta_phi(offsets, *(np.asarray(c) for c in cols))


def labels_of(gen: GenRecord, jets: list[tuple[int, float, float]], **kw: object) -> tuple[list[str], object]:
    event, eta, phi = (np.asarray(c) for c in zip(*jets, strict=True))
    out = label_jets(gen, event, eta, phi, LabelParams(**kw))
    names = [JETCLASS2_LABELS[i] if i >= 0 else "unlabelled" for i in out.label]
    return names, out


def test_default_table_is_jetclass2s_188_classes_and_order_free() -> None:
    assert len(JETCLASS2_LABELS) == 188
    assert JETCLASS2_LABELS[0] == "label_X_bb" and JETCLASS2_LABELS[187] == "label_QCD_light"
    assert TABLE.index("X_YY_qbb") == TABLE.index("label_X_YY_bbq") == 28
    assert TABLE.index("X_YY_vqbe") == 133  # label_X_YY_bqev
    assert TABLE.index("QCD_sbb") == JETCLASS2_LABELS.index("label_QCD_bbs")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["X_bb", "X_bb"], "same class"),
        (["X_bb", "X_YY_bb", "label_X_bx"], "bx"),
        (["Z_bb"], "must start with"),
        (["QCD_bbb"], "at most two"),
        (["QCD_g"], "at most two each of b, c, s"),
        ([], "empty"),
    ],
)
def test_bad_tables_are_refused_with_the_label_named(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelTable.from_names(names)


def test_direct_two_prong_resonance_and_qcd_jets() -> None:
    event = [
        (2212, 0.0, 0.0, 0.0, 1, 1),
        (25, 500.0, 0.0, 0.0, 2, 3),  # X → b b̄
        (5, 250.0, 0.2, 0.1, -1, -1),
        (-5, 250.0, -0.2, -0.1, -1, -1),
        (21, 50.0, 2.0, 2.0, -1, -1),
    ]
    names, out = labels_of(record(event), [(0, 0.0, 0.0), (0, 2.0, 2.0)])
    assert names == ["label_X_bb", "label_QCD_light"]
    assert out.aux_counts.tolist() == [3, 0]
    assert out.aux_index.tolist() == [1, 2, 3]
    assert out.aux_role.tolist() == [ROLE_X, ROLE_PRODUCT, ROLE_PRODUCT]
    names, _ = labels_of(record(event), [(0, 0.0, 0.0), (0, 2.0, 2.0)], assign_qcd_label=False)
    assert names == ["label_X_bb", "unlabelled"]
    # Only one b inside: {b} is not a class of the table.
    names, _ = labels_of(record(event), [(0, 0.9, 0.3)])
    assert names == ["unlabelled"]


def test_cascade_with_three_of_four_products_inside() -> None:
    event = [
        (25, 600.0, 0.0, 0.0, 1, 2),  # X → Y Y
        (35, 300.0, 0.5, 0.0, 3, 3),  # Y1 copy → Y1
        (35, 300.0, -0.3, 0.0, 6, 7),  # Y2 → e+ e−
        (35, 300.0, 0.5, 0.0, 4, 5),  # Y1 (last copy) → s s̄
        (3, 150.0, 0.3, 0.0, -1, -1),  # inside
        (-3, 150.0, 1.5, 0.0, -1, -1),  # outside
        (11, 150.0, -0.2, 0.1, -1, -1),
        (-11, 150.0, -0.2, -0.1, -1, -1),
    ]
    names, out = labels_of(record(event), [(0, 0.0, 0.0)])
    assert names == ["label_X_YY_see"]
    assert out.aux_index.tolist() == [0, 3, 2, 4, 5, 6, 7]
    assert out.aux_role.tolist() == [ROLE_X, ROLE_Y, ROLE_Y, ROLE_PRODUCT, ROLE_PRODUCT, ROLE_PRODUCT, ROLE_PRODUCT]


def test_neutrino_goes_with_its_charged_lepton_not_with_the_cone() -> None:
    event = [
        (25, 800.0, 0.0, 0.0, 1, 2),  # X → H+ H−
        (37, 400.0, 0.1, 0.0, 3, 4),  # → b̄ u
        (-37, 400.0, -0.1, 0.0, 5, 6),  # → e− ν̄
        (-5, 200.0, 0.4, 0.2, -1, -1),
        (2, 200.0, 0.5, -0.2, -1, -1),
        (11, 200.0, 0.05, 0.0, -1, -1),
        (-12, 200.0, -0.87, 0.0, -1, -1),  # ΔR = 0.87 > 0.8 from the jet
    ]
    names, _ = labels_of(record(event), [(0, 0.0, 0.0)])
    assert names == ["label_X_YY_bqev"]


def test_tau_decay_mode_comes_from_the_last_copy_of_the_tau() -> None:
    event = [
        (25, 500.0, 0.0, 0.0, 1, 2),  # X → τ− τ+
        (15, 250.0, 0.2, 0.0, 3, 4),  # τ− radiates: → τ− γ
        (-15, 250.0, -0.2, 0.0, 8, 10),  # τ+ → ν̄τ e+ νe
        (15, 240.0, 0.2, 0.0, 5, 7),  # τ− (last copy) → ντ π− π0
        (22, 10.0, 0.25, 0.0, -1, -1),
        (16, 40.0, 0.2, 0.0, -1, -1),
        (-211, 120.0, 0.2, 0.01, -1, -1),
        (111, 80.0, 0.2, -0.01, -1, -1),
        (-16, 50.0, -0.2, 0.0, -1, -1),
        (-11, 150.0, -0.2, 0.01, -1, -1),
        (12, 50.0, -0.2, -0.01, -1, -1),
    ]
    names, out = labels_of(record(event), [(0, 0.0, 0.0)])
    assert names == ["label_X_tauhtaue"]
    roles = out.aux_role.tolist()
    assert roles.count(ROLE_TAU_PRODUCT) == 6
    assert out.aux_index[np.asarray(roles) == ROLE_TAU_PRODUCT].tolist() == [5, 6, 7, 8, 9, 10]


def test_qcd_label_counts_last_copy_quarks_above_threshold() -> None:
    event = [
        (5, 40.0, 0.1, 0.0, 4, 5),  # b → b g: not the last copy
        (4, 10.0, -0.1, 0.2, -1, -1),  # c inside
        (3, 3.0, 0.0, 0.1, -1, -1),  # s below 5 GeV
        (1, 50.0, 3.0, 0.0, -1, -1),  # d outside
        (5, 35.0, 0.1, 0.0, -1, -1),  # b (last copy) inside
        (21, 5.0, 0.2, 0.0, -1, -1),
    ]
    names, out = labels_of(record(event), [(0, 0.0, 0.0)])
    assert names == ["label_QCD_bc"]
    assert sorted(out.aux_index.tolist()) == [1, 4]
    assert set(out.aux_role.tolist()) == {ROLE_QCD}


def test_each_jet_takes_the_resonance_with_most_products_inside_and_events_stay_apart() -> None:
    hh = [
        (25, 500.0, 0.0, 0.0, 2, 3),  # X1 → b b̄ around η = 0
        (25, 500.0, 0.0, 3.0, 4, 5),  # X2 → c c̄ around φ = 3
        (5, 250.0, 0.1, 0.0, -1, -1),
        (-5, 250.0, -0.1, 0.0, -1, -1),
        (4, 250.0, 0.1, 3.0, -1, -1),
        (-4, 250.0, -0.1, 3.0, -1, -1),
    ]
    qcd = [(2, 100.0, 0.0, 3.0, -1, -1)]
    names, _ = labels_of(record(hh, qcd), [(0, 0.0, 0.0), (0, 0.0, 3.0), (1, 0.0, 3.0)])
    assert names == ["label_X_bb", "label_X_cc", "label_QCD_light"]
    with pytest.raises(ValueError, match="non-decreasing"):
        labels_of(record(hh, qcd), [(1, 0.0, 0.0), (0, 0.0, 0.0)])


def _event_from_aux(row: ak.Record) -> list[Particle]:
    """Rebuild a truth record from a JetClass-II jet's aux particles (X, Ys, products, τ products).

    The Ys' products come pairwise in Y order; a τ's products start at its ντ (|pid| 16).
    """
    pid = np.asarray(row.aux_genpart_pid)
    n = len(pid)
    d1, d2 = np.full(n, -1), np.full(n, -1)
    xs, ys = np.flatnonzero(row.aux_genpart_isResX), np.flatnonzero(row.aux_genpart_isResY)
    products, tau_products = (
        np.flatnonzero(row.aux_genpart_isResDecayProd),
        np.flatnonzero(row.aux_genpart_isTauDecayProd),
    )
    if len(xs):
        parents = [xs[0]] if not len(ys) else list(ys)
        if len(ys):
            d1[xs[0]], d2[xs[0]] = ys[0], ys[-1]
        per = len(products) // len(parents)
        for k, parent in enumerate(parents):
            d1[parent], d2[parent] = products[k * per], products[(k + 1) * per - 1]
        starts = [i for i, t in enumerate(tau_products) if abs(pid[t]) == 16] + [len(tau_products)]
        for k, tau in enumerate(p for p in products if abs(pid[p]) == 15):
            d1[tau], d2[tau] = tau_products[starts[k]], tau_products[starts[k + 1] - 1]
    cols = (pid, row.aux_genpart_pt, row.aux_genpart_eta, row.aux_genpart_phi, d1, d2)
    return [tuple(c[i] for c in cols) for i in range(n)]


@pytest.mark.skipif(not EXAMPLE.is_file(), reason=f"JetClass-II example not found at {EXAMPLE}")
def test_rules_reproduce_every_label_of_the_jetclass2_example() -> None:
    a = ak.from_parquet(EXAMPLE)
    gen = record(*[_event_from_aux(a[i]) for i in range(len(a))])
    # The example stores only the quarks it counted, so no pT threshold is needed on top.
    out = label_jets(
        gen, np.arange(len(a)), ak.to_numpy(a.jet_eta), ak.to_numpy(a.jet_phi), LabelParams(qcd_parton_min_pt=0.0)
    )
    np.testing.assert_array_equal(out.label, ak.to_numpy(a.jet_label))
    assert len(set(out.label.tolist())) > 40  # the example covers many classes

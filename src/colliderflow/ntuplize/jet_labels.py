"""Truth labels of jets: which decay products of a resonance lie inside the jet, or which quarks do.

The label table is configuration: an ordered list of names, the position being the jet_label value.
The default is JetClass-II's 188-class table (names as in the Sophon data config), and any table
written in the same grammar works:

    [label_]X_<tokens>      a resonance X decaying directly, e.g. X_bb, X_tauhtaue
    [label_]X_YY_<tokens>   X → Y Y with the tokens of the products of the Ys, e.g. X_YY_bbcq, X_YY_qqev
    [label_]QCD_<tokens>    no resonance product in the jet; tokens are the b, c, s quarks it holds
                            (at most two of each), or QCD_light when there are none

Tokens: b, c, s, q (u or d), g, e, m (muon), tauh / taue / taum (a τ decaying to hadrons / an electron
/ a muon), v (a neutrino). The order of tokens in a name does not matter: a name stands for the multiset
of its tokens, so X_YY_bbq and X_YY_bqb are the same class (and may not both appear).

How a jet gets its label (radius R, the jet radius):

1. Resonances are the last copies (no daughter with the same PDG id) of particles whose |PDG id| is in
   `res_x_pdgids`; a last copy that is a daughter of another resonance and has an id in `res_y_pdgids`
   is a Y instead. The products of X are its daughters, except that a daughter Y contributes the
   daughters of its own last copy. A τ product is classified by the daughters of its last copy.
2. A product is inside the jet when ΔR(product, jet axis) < R — except a neutrino, which is inside
   when a visible product of the same parent (the charged lepton of Y → ℓν) is: JetClass-II labels
   such jets ..ev / ..mv / ..tauev whether or not the neutrino itself falls in the cone. For each X of
   the event, count its visible products inside; the X with most (the first on a tie) is the jet's
   resonance. The multiset of tokens of its products inside selects the class in the X_ or X_YY_
   family; a multiset that is not in the table makes the jet "unlabelled" (−1). Products without a
   token (e.g. a photon) are listed in aux but do not enter the multiset.
3. A jet with no resonance product inside gets a QCD label when `assign_qcd_label` is set: the counts of
   b, c and s quarks (last copies with pT above `qcd_parton_min_pt`) within ΔR < R, capped at two. Else
   it is unlabelled.

The aux_genpart_* list of a resonance jet holds X, its Ys, all its products (inside the jet or not)
and the daughters of its τ products, in that order, as in JetClass-II; that of a QCD jet holds the
quarks it contains (u, d, s, c, b above the pT threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numba
import numpy as np

# The name grammar (label_grammar) and LabelParams (jet_params) are pure Python, for the dry run's checks.
from colliderflow.ntuplize.jet_params import LabelParams
from colliderflow.ntuplize.label_grammar import TOKENS, label_key, label_keys, parse_label

_NEUTRINO: Final = TOKENS.index("v")

# Roles of aux particles (the aux_genpart_is* flags).
ROLE_X, ROLE_Y, ROLE_PRODUCT, ROLE_TAU_PRODUCT, ROLE_QCD = 0, 1, 2, 3, 4

# The label table itself (jet_label 0..187) is a file contract: colliderflow.jetclass2.


@dataclass(frozen=True)
class LabelTable:
    """An ordered label table: names, and the sorted keys → indices used by the compiled matcher."""

    names: tuple[str, ...]
    keys: np.ndarray = field(repr=False)
    indices: np.ndarray = field(repr=False)

    @classmethod
    def from_names(cls, names: Sequence[str]) -> LabelTable:
        keys = label_keys(names)
        order = np.argsort(keys, kind="stable")
        return cls(tuple(names), np.asarray(keys, dtype=np.int64)[order], order.astype(np.int32))

    def index(self, name: str) -> int:
        """The jet_label of a class given by any name in the grammar (token order free)."""
        key = label_key(*parse_label(name))
        pos = int(np.searchsorted(self.keys, key))
        if pos == len(self.keys) or self.keys[pos] != key:
            raise ValueError(f"label {name!r} is not in the table")
        return int(self.indices[pos])


@dataclass(frozen=True)
class GenRecord:
    """Generator particles of many events, flat, with the per-event offsets (local d1/d2 indices).

    Momenta rather than (η, φ): the matcher needs directions only for the few particles of the decay
    chains and the quarks, so it computes them itself instead of for every particle of every event.
    d1/d2 follow the Pythia/Delphes convention: −1 for no daughter; d1 ≤ d2 a contiguous range;
    d2 < d1 (d2 ≥ 0) two separate daughters; d2 < 0 a single daughter d1.
    """

    offsets: np.ndarray
    pid: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    d1: np.ndarray
    d2: np.ndarray

    @classmethod
    def from_pt_eta_phi(
        cls,
        offsets: np.ndarray,
        pid: np.ndarray,
        pt: np.ndarray,
        eta: np.ndarray,
        phi: np.ndarray,
        d1: np.ndarray,
        d2: np.ndarray,
    ) -> GenRecord:
        pt, eta, phi = (np.asarray(v, dtype=np.float64) for v in (pt, eta, phi))
        return cls(offsets, pid, pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), d1, d2)


@dataclass(frozen=True)
class JetLabels:
    """Labels of jets and their aux particles (global indices into the GenRecord arrays, with roles)."""

    label: np.ndarray  # int32 [jets]
    aux_counts: np.ndarray  # int64 [jets]
    aux_index: np.ndarray  # int64 [sum(aux_counts)]
    aux_role: np.ndarray  # int8 [sum(aux_counts)]


# --------------------------------------------------------------------------------------------------
# Compiled matcher.
# --------------------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _daughters(i, d1, d2, n, out):
    """Local daughter indices of particle i into `out`; returns how many."""
    a = d1[i]
    b = d2[i]
    k = 0
    if a < 0 or a >= n:
        return 0
    if b < 0 or b == a:
        out[0] = a
        return 1
    if b > a:
        for j in range(a, min(b, n - 1) + 1):
            out[k] = j
            k += 1
        return k
    out[0] = a
    if b < n:
        out[1] = b
        return 2
    return 1


@numba.njit(cache=True)
def _last_copy(i, pid, d1, d2, n, buf):
    for _ in range(n):
        nd = _daughters(i, d1, d2, n, buf)
        nxt = -1
        for k in range(nd):
            if pid[buf[k]] == pid[i]:
                nxt = buf[k]
                break
        if nxt < 0:
            return i
        i = nxt
    return i


@numba.njit(cache=True)
def _token(abs_pid: int) -> int:
    if abs_pid == 5:
        return 0
    if abs_pid == 4:
        return 1
    if abs_pid == 3:
        return 2
    if abs_pid == 1 or abs_pid == 2:
        return 3
    if abs_pid == 21:
        return 4
    if abs_pid == 11:
        return 5
    if abs_pid == 13:
        return 6
    if abs_pid == 15:
        return 7  # refined to taue / taum from the τ's daughters
    if abs_pid == 12 or abs_pid == 14 or abs_pid == 16:
        return 10
    return -1


@numba.njit(cache=True)
def _in(value: int, values) -> bool:
    for v in values:
        if v == value:
            return True
    return False


@numba.njit(cache=True)
def _push(buf, size, value):
    if size == len(buf):
        grown = np.empty(2 * len(buf), buf.dtype)
        grown[:size] = buf[:size]
        buf = grown
    buf[size] = value
    return buf


@numba.njit(cache=True)
def _delta_r2_to(px: float, py: float, pz: float, eta: float, phi: float) -> float:
    """ΔR² between a momentum's direction and an (η, φ) axis (infinite for pT = 0: along the beam)."""
    pt = np.hypot(px, py)
    if pt <= 0:
        return np.inf
    dphi = abs(np.arctan2(py, px) - phi)
    if dphi > np.pi:
        dphi = 2 * np.pi - dphi
    return (np.arcsinh(pz / pt) - eta) ** 2 + dphi * dphi


@numba.njit(cache=True)
def _label_kernel(
    gen_offsets,
    pid,
    px,
    py,
    pz,
    d1,
    d2,
    jet_event,
    jet_eta,
    jet_phi,
    x_ids,
    y_ids,
    radius,
    assign_qcd,
    parton_min_pt,
    table_keys,
    table_indices,
    labels,
    aux_counts,
):
    n_jets = len(jet_event)
    aux_index = np.empty(max(16, 4 * n_jets), np.int64)
    aux_role = np.empty(max(16, 4 * n_jets), np.int8)
    n_aux = 0
    r2 = radius * radius
    parton_min_pt2 = parton_min_pt * parton_min_pt
    stride = 5**11
    jet = 0
    while jet < n_jets:
        ev = jet_event[jet]
        jet_end = jet
        while jet_end < n_jets and jet_event[jet_end] == ev:
            jet_end += 1
        lo = gen_offsets[ev]
        n = gen_offsets[ev + 1] - lo
        e_pid = pid[lo : lo + n]
        e_d1 = d1[lo : lo + n]
        e_d2 = d2[lo : lo + n]
        buf = np.empty(max(n, 2), np.int64)
        buf2 = np.empty(max(n, 2), np.int64)
        is_last = np.ones(n, np.bool_)
        for i in range(n):
            nd = _daughters(i, e_d1, e_d2, n, buf)
            for k in range(nd):
                if e_pid[buf[k]] == e_pid[i]:
                    is_last[i] = False
                    break

        # Resonance chains of this event: the Xs, then entries (X slot, local index, role, token).
        is_y = np.zeros(n, np.bool_)
        for i in range(n):
            if is_last[i] and _in(abs(e_pid[i]), x_ids):
                nd = _daughters(i, e_d1, e_d2, n, buf2)
                for k in range(nd):
                    if _in(abs(e_pid[buf2[k]]), y_ids):
                        is_y[_last_copy(buf2[k], e_pid, e_d1, e_d2, n, buf)] = True
        xs = np.empty(n, np.int64)
        n_x = 0
        for i in range(n):
            if is_last[i] and _in(abs(e_pid[i]), x_ids) and not is_y[i]:
                xs[n_x] = i
                n_x += 1
        ch_x = np.empty(16, np.int64)
        ch_i = np.empty(16, np.int64)
        ch_role = np.empty(16, np.int8)
        ch_tok = np.empty(16, np.int64)
        ch_parent = np.empty(16, np.int64)
        n_ch = 0
        has_y = np.zeros(max(n_x, 1), np.bool_)
        ys = np.empty(max(n, 1), np.int64)
        for s in range(n_x):
            x = xs[s]
            ch_x = _push(ch_x, n_ch, s)
            ch_i = _push(ch_i, n_ch, x)
            ch_role = _push(ch_role, n_ch, 0)
            ch_tok = _push(ch_tok, n_ch, -1)
            ch_parent = _push(ch_parent, n_ch, -1)
            n_ch += 1
            nd = _daughters(x, e_d1, e_d2, n, buf2)
            n_y = 0
            for k in range(nd):
                if _in(abs(e_pid[buf2[k]]), y_ids):
                    ys[n_y] = _last_copy(buf2[k], e_pid, e_d1, e_d2, n, buf)
                    n_y += 1
            has_y[s] = n_y > 0
            for k in range(n_y):
                ch_x = _push(ch_x, n_ch, s)
                ch_i = _push(ch_i, n_ch, ys[k])
                ch_role = _push(ch_role, n_ch, 1)
                ch_tok = _push(ch_tok, n_ch, -1)
                ch_parent = _push(ch_parent, n_ch, x)
                n_ch += 1
            first_product = n_ch
            for k in range(nd):
                d = buf2[k]
                if not _in(abs(e_pid[d]), y_ids):
                    ch_x = _push(ch_x, n_ch, s)
                    ch_i = _push(ch_i, n_ch, d)
                    ch_role = _push(ch_role, n_ch, 2)
                    ch_tok = _push(ch_tok, n_ch, _token(abs(e_pid[d])))
                    ch_parent = _push(ch_parent, n_ch, x)
                    n_ch += 1
            for k in range(n_y):
                ndy = _daughters(ys[k], e_d1, e_d2, n, buf)
                for q in range(ndy):
                    ch_x = _push(ch_x, n_ch, s)
                    ch_i = _push(ch_i, n_ch, buf[q])
                    ch_role = _push(ch_role, n_ch, 2)
                    ch_tok = _push(ch_tok, n_ch, _token(abs(e_pid[buf[q]])))
                    ch_parent = _push(ch_parent, n_ch, ys[k])
                    n_ch += 1
            last_product = n_ch
            for c in range(first_product, last_product):
                if abs(e_pid[ch_i[c]]) == 15:
                    tau = _last_copy(ch_i[c], e_pid, e_d1, e_d2, n, buf)
                    ndt = _daughters(tau, e_d1, e_d2, n, buf2)
                    for k in range(ndt):
                        a = abs(e_pid[buf2[k]])
                        if a == 11:
                            ch_tok[c] = 8
                        elif a == 13:
                            ch_tok[c] = 9
                        ch_x = _push(ch_x, n_ch, s)
                        ch_i = _push(ch_i, n_ch, buf2[k])
                        ch_role = _push(ch_role, n_ch, 3)
                        ch_tok = _push(ch_tok, n_ch, -1)
                        ch_parent = _push(ch_parent, n_ch, ch_i[c])
                        n_ch += 1

        counts = np.zeros(11, np.int64)
        inside = np.zeros(n_ch, np.bool_)
        for j in range(jet, jet_end):
            # Products inside the jet: by ΔR, except neutrinos, which go with a visible sibling.
            for c in range(n_ch):
                inside[c] = False
                if ch_role[c] == 2 and ch_tok[c] != _NEUTRINO:
                    g = lo + ch_i[c]
                    inside[c] = _delta_r2_to(px[g], py[g], pz[g], jet_eta[j], jet_phi[j]) < r2
            for c in range(n_ch):
                if ch_role[c] == 2 and ch_tok[c] == _NEUTRINO:
                    for c2 in range(n_ch):
                        if inside[c2] and ch_parent[c2] == ch_parent[c]:
                            inside[c] = True
                            break
            best_s = -1
            best_n = 0
            for s in range(n_x):
                n_inside = 0
                for c in range(n_ch):
                    if ch_x[c] == s and inside[c] and ch_tok[c] != _NEUTRINO:
                        n_inside += 1
                if n_inside > best_n:
                    best_n = n_inside
                    best_s = s
            start = n_aux
            label = -1
            if best_s >= 0:
                counts[:] = 0
                for c in range(n_ch):
                    if ch_x[c] != best_s:
                        continue
                    aux_index = _push(aux_index, n_aux, lo + ch_i[c])
                    aux_role = _push(aux_role, n_aux, ch_role[c])
                    n_aux += 1
                    if inside[c] and ch_tok[c] >= 0:
                        counts[ch_tok[c]] += 1
                key = (1 if has_y[best_s] else 0) * stride
                valid = True
                for t in range(11):
                    if counts[t] >= 5:
                        valid = False
                    key += counts[t] * 5**t
                if valid:
                    pos = np.searchsorted(table_keys, key)
                    if pos < len(table_keys) and table_keys[pos] == key:
                        label = table_indices[pos]
            elif assign_qcd:
                counts[:] = 0
                for i in range(n):
                    a = abs(e_pid[i])
                    g = lo + i
                    if (
                        1 <= a <= 5
                        and px[g] * px[g] + py[g] * py[g] > parton_min_pt2
                        and is_last[i]
                        and _delta_r2_to(px[g], py[g], pz[g], jet_eta[j], jet_phi[j]) < r2
                    ):
                        aux_index = _push(aux_index, n_aux, g)
                        aux_role = _push(aux_role, n_aux, 4)
                        n_aux += 1
                        if a == 5:
                            counts[0] = min(counts[0] + 1, 2)
                        elif a == 4:
                            counts[1] = min(counts[1] + 1, 2)
                        elif a == 3:
                            counts[2] = min(counts[2] + 1, 2)
                key = 2 * stride + counts[0] + counts[1] * 5 + counts[2] * 25
                pos = np.searchsorted(table_keys, key)
                if pos < len(table_keys) and table_keys[pos] == key:
                    label = table_indices[pos]
            labels[j] = label
            aux_counts[j] = n_aux - start
        jet = jet_end
    return aux_index[:n_aux], aux_role[:n_aux]


def label_jets(
    gen: GenRecord, jet_event: np.ndarray, jet_eta: np.ndarray, jet_phi: np.ndarray, params: LabelParams | None = None
) -> JetLabels:
    """Labels and aux particles of jets given by their event index (non-decreasing) and axis.

    `gen.offsets` index events; jets of event e look only at gen particles of event e.
    """
    params = params or LabelParams()
    table = LabelTable.from_names(params.table)
    jet_event = np.asarray(jet_event, dtype=np.int64)
    if len(jet_event) and (np.any(np.diff(jet_event) < 0) or jet_event[0] < 0 or jet_event[-1] >= len(gen.offsets) - 1):
        raise ValueError("jet_event must be non-decreasing event indices within the gen record")
    labels = np.full(len(jet_event), -1, dtype=np.int32)
    aux_counts = np.zeros(len(jet_event), dtype=np.int64)
    aux_index, aux_role = _label_kernel(
        np.asarray(gen.offsets, dtype=np.int64),
        np.asarray(gen.pid, dtype=np.int64),
        np.asarray(gen.px, dtype=np.float64),
        np.asarray(gen.py, dtype=np.float64),
        np.asarray(gen.pz, dtype=np.float64),
        np.asarray(gen.d1, dtype=np.int64),
        np.asarray(gen.d2, dtype=np.int64),
        jet_event,
        np.asarray(jet_eta, dtype=np.float64),
        np.asarray(jet_phi, dtype=np.float64),
        np.asarray(params.res_x_pdgids, dtype=np.int64),
        np.asarray(params.res_y_pdgids, dtype=np.int64),
        float(params.radius),
        bool(params.assign_qcd_label),
        float(params.qcd_parton_min_pt),
        table.keys,
        table.indices,
        labels,
        aux_counts,
    )
    return JetLabels(labels, aux_counts, aux_index, aux_role)

"""Per-class 2-D reweighting maps with the semantics of weaver's ``WeightMaker``.

Sampling events with these weights shows the model every class in chosen proportions and, within a
class, a distribution of two variables that is flat (``flat``) or shaped like the first class
(``ref``), so that it cannot learn the class from those variables alone.

Exact semantics (same as weaver-core's ``WeightMaker.make_weights`` and ``_build_weights``, without
base weights):

Binning. ``vars`` holds exactly two variables, each with strictly increasing, finite bin edges. Bins
are half-open ``[e_i, e_{i+1})`` except the last, which is closed. With
``discard_under_overflow=False`` a value outside ``[e_0, e_last]`` counts in the nearest edge bin (the
value is clipped); with ``True`` such an event is left out of the histograms and gets weight 0. A NaN
value is never binned: the event gets weight 0 in both modes (weaver would mis-bin it).

Histograms. ``H_c`` is the 2-D histogram of the events whose label is class ``c`` (unit weight each).
Events whose label is not in ``classes`` are not counted and get weight 0.

Shape maps (``S_c``, values in [0, 1]); ``threshold`` is a *fraction* t in [0, 1] (weaver's
``reweight_threshold`` is the same number in percent: weaver's default 10 is t = 0.1):

* ``flat``: among the populated bins of ``H_c``, ignore those below 1 % of their median; the plateau
  ``r_c`` is the (100 t)-th percentile (numpy's linear interpolation) of the rest. ``S_c = min(1, r_c/H_c)``
  in populated bins, 0 in empty ones. Every bin with at least ``r_c`` events then holds ``r_c``
  weighted events: the weighted distribution is flat on the plateau; sparser bins keep their events.
* ``ref``: ``R_c = H_ref / H_c`` (0 where either is empty), with ``H_ref`` the first class's
  histogram; ``u_c`` is the (100 (1 - t))-th percentile of the positive ``R_c``; ``S_c = min(1, R_c/u_c)``.
  Class c is reshaped to the first class, with the top t of ratios clipped so a few sparse bins cannot
  make every other weight tiny.

Class equalisation. With class weights ``w_c`` (> 0), ``n_c = sum(H_c * S_c) / w_c`` and
``f_c = 0.9 * min_k n_k / n_c``. The final map is ``W_c = f_c * S_c``, so the weighted number of events
of class c is ``0.9 * min_k n_k * w_c``: proportional to ``w_c``. The factor 0.9 keeps every weight
below 1, so the weights can also serve as acceptance probabilities (weaver samples that way).

An event's weight is ``W_c`` at its bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numba
import numpy as np
import pandas as pd

METHODS: Final = ("flat", "ref")
# Populated bins below this fraction of the median populated bin are left out of the plateau estimate.
SPARSE_BIN_FRACTION: Final = 0.01
# Scale of the smallest class after equalisation (weaver's max_weight): all weights stay below 1.
MAX_WEIGHT: Final = 0.9

Table = Mapping[str, Any] | pd.DataFrame


@dataclass(frozen=True)
class ReweightResult:
    """Everything needed to weight events and to report how the weights were made.

    Arrays are indexed ``[class, x_bin, y_bin]`` with x the first variable of ``var_names``.
    """

    classes: tuple[Any, ...]
    var_names: tuple[str, str]
    edges: tuple[np.ndarray, np.ndarray]
    method: str
    threshold: float
    discard_under_overflow: bool
    class_weights: np.ndarray  # (n_classes,)
    raw_hists: np.ndarray  # H_c, event counts
    shape_maps: np.ndarray  # S_c in [0, 1]
    reference_values: np.ndarray  # r_c (flat) or u_c (ref)
    class_factors: np.ndarray  # f_c
    weight_maps: np.ndarray  # W_c = f_c * S_c

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, class-keyed, for the histograms file."""
        names = [str(c) for c in self.classes]
        return {
            "method": self.method,
            "threshold": self.threshold,
            "discard_under_overflow": self.discard_under_overflow,
            "vars": {v: e.tolist() for v, e in zip(self.var_names, self.edges)},
            "classes": names,
            "axes": f"[{self.var_names[0]} bin][{self.var_names[1]} bin]",
            "class_weights": dict(zip(names, self.class_weights.tolist())),
            "raw_histograms": dict(zip(names, self.raw_hists.tolist())),
            "shape_maps": dict(zip(names, self.shape_maps.tolist())),
            "reference_values": dict(zip(names, self.reference_values.tolist())),
            "class_factors": dict(zip(names, self.class_factors.tolist())),
            "weight_maps": dict(zip(names, self.weight_maps.tolist())),
        }


def _check_edges(name: str, edges: Any) -> np.ndarray:
    try:
        arr = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"vars[{name!r}]: bin edges must be numbers ({exc})") from exc
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"vars[{name!r}]: need a list of at least 2 bin edges, got {edges!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"vars[{name!r}]: bin edges must be finite, got {edges!r}")
    if not np.all(np.diff(arr) > 0):
        raise ValueError(f"vars[{name!r}]: bin edges must be strictly increasing, got {edges!r}")
    return arr


def check_vars(vars: Mapping[str, Sequence[float]]) -> tuple[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Validate the two reweighting variables and their edges."""
    if not isinstance(vars, Mapping) or len(vars) != 2:
        got = list(vars) if isinstance(vars, Mapping) else type(vars).__name__
        raise ValueError(f"vars: exactly 2 variables with bin edges are needed, got {got}")
    (xn, xe), (yn, ye) = vars.items()
    return (str(xn), str(yn)), (_check_edges(xn, xe), _check_edges(yn, ye))


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method: must be one of {', '.join(METHODS)}, got {method!r}")


def _check_threshold(threshold: float) -> float:
    try:
        t = float(threshold)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"threshold: must be a number, got {threshold!r}") from exc
    if not 0.0 <= t <= 1.0 or math.isnan(t):
        raise ValueError(
            f"threshold: must be a fraction in [0, 1], got {threshold!r} "
            "(weaver's reweight_threshold is in percent: 10 there is 0.1 here)"
        )
    return t


def _check_classes(classes: Sequence[Any]) -> tuple[Any, ...]:
    out = tuple(classes)
    if not out:
        raise ValueError("classes: at least one class is needed")
    if len(set(out)) != len(out):
        raise ValueError(f"classes: duplicated class in {list(out)}")
    return out


def _check_class_weights(class_weights: Mapping[Any, float] | Sequence[float] | None,
                         classes: tuple[Any, ...]) -> np.ndarray:
    if class_weights is None:
        return np.ones(len(classes))
    if isinstance(class_weights, Mapping):
        missing = [c for c in classes if c not in class_weights]
        extra = [c for c in class_weights if c not in classes]
        if missing or extra:
            raise ValueError(f"class_weights: keys must be the classes {list(classes)}; "
                             f"missing {missing}, unexpected {extra}")
        values = [class_weights[c] for c in classes]
    else:
        values = list(class_weights)
        if len(values) != len(classes):
            raise ValueError(f"class_weights: {len(values)} values for {len(classes)} classes")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"class_weights: must be numbers, got {values!r}") from exc
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"class_weights: must be finite and > 0, got {values!r}")
    return arr


def _column(table: Table, name: str, n_rows: int) -> np.ndarray:
    if name not in table:
        available = list(table.columns) if isinstance(table, pd.DataFrame) else list(table)
        raise ValueError(f"table: missing column {name!r} (has {available})")
    values = table[name]
    arr = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n_rows:
        raise ValueError(
            f"table: column {name!r} must be 1-D with one value per label ({n_rows}), got shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"table: column {name!r} must be numeric, got dtype {arr.dtype}")
    if arr.dtype in (np.float32, np.float64):  # compared exactly as float64 in the kernel: no copy needed
        return np.ascontiguousarray(arr)
    return arr.astype(np.float64)


# Integer labels whose classes span at most this many values are mapped through a lookup table.
INTEGER_LOOKUP_MAX_SPAN: Final = 1 << 16


def class_indices(class_labels: Any, classes: Sequence[Any]) -> np.ndarray:
    """Index of each row's class in `classes` (int32), -1 for a label that is not a class.

    Integer labels with integer classes (jet_label) go through a table indexed by label; other
    labels are hashed once into their few distinct values, which are then looked up: for string
    labels this is several times faster than looking every row up in the class list.
    """
    labels = np.asarray(class_labels)
    if labels.ndim != 1:
        raise ValueError(f"class_labels: must be 1-D, got shape {labels.shape}")
    classes = list(classes)
    integer_classes = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in classes)
    if labels.dtype.kind in "iu" and classes and integer_classes:
        low, high = min(classes), max(classes)
        if high - low < INTEGER_LOOKUP_MAX_SPAN:
            table = np.full(high - low + 2, -1, dtype=np.int32)  # the extra last slot: any other label
            table[np.asarray(classes, dtype=np.int64) - low] = np.arange(len(classes))
            return _table_kernel(labels, table, np.int64(low))
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    lookup = pd.Index(classes).get_indexer(uniques).astype(np.int32)
    return np.where(codes >= 0, lookup[codes] if lookup.size else -1, -1).astype(np.int32, copy=False)


@numba.njit(cache=True, nogil=True)
def _table_kernel(labels: np.ndarray, table: np.ndarray, low: np.int64) -> np.ndarray:
    """table[label - low] per row, or table's last slot (-1) for a label outside the table."""
    out = np.empty(labels.size, dtype=np.int32)
    other = table.size - 1
    for i in range(labels.size):
        slot = np.int64(labels[i]) - low
        out[i] = table[slot if (slot >= 0) & (slot < other) else other]
    return out


def bin_indices(values: np.ndarray, edges: np.ndarray, discard_under_overflow: bool) -> tuple[np.ndarray, np.ndarray]:
    """(bin index, usable) per value, with the module's edge conventions.

    The readable statement of the binning; the weights themselves go through the fused compiled
    `_cells_kernel`, which tests hold to this function.
    """
    usable = ~np.isnan(values)
    if discard_under_overflow:
        usable &= (values >= edges[0]) & (values <= edges[-1])
    idx = np.searchsorted(edges, values, side="right") - 1
    np.clip(idx, 0, edges.size - 2, out=idx)
    return idx, usable


# Up to this many edges a row's bin is found by counting the edges below it: no branch for the CPU to
# mispredict, and about 7x faster than a binary search on randomly ordered values at weaver's usual
# ten-odd edges. Longer edge lists use the binary search.
LINEAR_SEARCH_MAX_EDGES: Final = 64


@numba.njit(cache=True, nogil=True, inline="always")
def _bin_of(value: float, edges: np.ndarray, discard: bool) -> int:
    """`bin_indices` for one value: the bin, or -1 for NaN and (when discarding) out-of-range values."""
    if np.isnan(value):
        return -1
    last = edges.size - 1
    if value < edges[0]:
        return -1 if discard else 0
    if value > edges[last]:
        return -1 if discard else last - 1
    if edges.size <= LINEAR_SEARCH_MAX_EDGES:
        below = 0
        for k in range(1, last):  # interior edges; the last bin is closed, so edges[last] is not counted
            below += value >= edges[k]
        return below
    return np.searchsorted(edges[:last], value, side="right") - 1


@numba.njit(cache=True, nogil=True)
def _cells_kernel(x: np.ndarray, y: np.ndarray, codes: np.ndarray, xe: np.ndarray, ye: np.ndarray,
                  discard: bool) -> np.ndarray:
    """Each row's histogram cell ``class * nx * ny + x_bin * ny + y_bin``, or -1 when the row is
    unbinned or in no class.

    Both binnings and the class test in one pass that reads every column once, where the numpy
    version made a dozen temporaries of the table's length. The cell is selected arithmetically, not
    by a branch: which rows are usable is data, and a mispredicted branch per row doubled the time.
    """
    ny = ye.size - 1
    n_cells = (xe.size - 1) * ny
    cells = np.empty(x.size, dtype=np.int32)  # half the memory traffic of int64; cells are few
    for i in range(x.size):
        code = np.int64(codes[i])
        ix = _bin_of(x[i], xe, discard)
        iy = _bin_of(y[i], ye, discard)
        usable = np.int64((code >= 0) & (ix >= 0) & (iy >= 0))
        cells[i] = (code * n_cells + ix * ny + iy) * usable + (usable - 1)
    return cells


@numba.njit(cache=True, nogil=True)
def _count_kernel(cells: np.ndarray, n_cells: int) -> np.ndarray:
    """Rows per cell (cell -1 left out): the flattened histograms. A loop of its own, because
    increments folded into the binning loop stall it on the few, often repeated, counters."""
    counts = np.zeros(n_cells + 1, dtype=np.int64)
    for i in range(cells.size):
        counts[cells[i] + 1] += 1
    return counts[1:]


@numba.njit(cache=True, nogil=True)
def _gather_kernel(cells: np.ndarray, padded_maps: np.ndarray) -> np.ndarray:
    """Each row's weight: the flattened weight maps at its cell. `padded_maps` ends with an extra 0,
    which is where cell -1 lands (a negative index counts from the end), so no row needs a branch."""
    weights = np.empty(cells.size, dtype=np.float64)
    for i in range(cells.size):
        weights[i] = padded_maps[cells[i]]
    return weights


def _locate(edges: tuple[np.ndarray, np.ndarray], var_names: tuple[str, str], table: Table,
            codes: np.ndarray, discard: bool, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's histogram cell (-1: not counted) and the per-class histograms [class, x, y]."""
    xe, ye = edges
    x = _column(table, var_names[0], codes.size)
    y = _column(table, var_names[1], codes.size)
    cells = _cells_kernel(x, y, codes, xe, ye, discard)
    counts = _count_kernel(cells, n_classes * (xe.size - 1) * (ye.size - 1))
    return cells, counts.reshape(n_classes, xe.size - 1, ye.size - 1)


def _flat_shape(hist: np.ndarray, threshold: float, label: Any) -> tuple[np.ndarray, float]:
    populated = hist[hist > 0]
    if populated.size == 0:
        raise ValueError(f"class {label!r}: no events inside the binning, cannot make weights")
    counted = hist[hist > np.median(populated) * SPARSE_BIN_FRACTION]
    plateau = float(np.percentile(counted, 100.0 * threshold))
    with np.errstate(divide="ignore"):
        shape = np.where(hist > 0, np.minimum(plateau / hist, 1.0), 0.0)
    return shape, plateau


def _ref_shape(hist: np.ndarray, hist_ref: np.ndarray, threshold: float, label: Any) -> tuple[np.ndarray, float]:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(hist > 0, hist_ref / hist, 0.0)
    positive = ratio[ratio > 0]
    if positive.size == 0:
        raise ValueError(f"class {label!r}: shares no populated bin with the reference class, cannot make weights")
    upper = float(np.percentile(positive, 100.0 * (1.0 - threshold)))
    return np.clip(ratio / upper, 0.0, 1.0), upper


def _prepare(table: Table, class_labels: Any, classes: tuple[Any, ...],
             edges: tuple[np.ndarray, np.ndarray], var_names: tuple[str, str],
             discard: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class index per row, histogram cell per row, histograms [class, x, y])."""
    codes = class_indices(class_labels, classes)
    cells, hists = _locate(edges, var_names, table, codes, discard, len(classes))
    return codes, cells, hists


def compute_reweight_maps(
    table: Table,
    *,
    class_labels: Any,
    classes: Sequence[Any],
    vars: Mapping[str, Sequence[float]],
    method: Literal["flat", "ref"] = "flat",
    class_weights: Mapping[Any, float] | Sequence[float] | None = None,
    threshold: float = 0.1,
    discard_under_overflow: bool = True,
) -> ReweightResult:
    """Histogram each class in the two `vars` and turn the histograms into weight maps (module doc).

    `table` maps column names to 1-D arrays (or is a DataFrame); `class_labels` has one label per row.
    Bad arguments raise ValueError naming the argument; a class with no usable events, too.
    """
    result, _, _ = _reweight(table, class_labels, classes, vars, method, class_weights, threshold,
                             discard_under_overflow, with_event_weights=False)
    return result


def reweight_events(table: Table, **options: Any) -> tuple[ReweightResult, np.ndarray]:
    """`compute_reweight_maps` and `event_weights` of the same rows, binning and labelling them once.

    Takes the keyword arguments of `weigh_rows` (those of `compute_reweight_maps`).
    """
    weighted = weigh_rows(table, **options)
    return weighted.result, weighted.weights


@dataclass(frozen=True)
class WeightedRows:
    """The maps, each row's weight, and each row's class index (-1: in no class), for the stages'
    per-class statistics without labelling the rows a second time."""

    result: ReweightResult
    weights: np.ndarray
    class_index: np.ndarray


def weigh_rows(
    table: Table,
    *,
    class_labels: Any,
    classes: Sequence[Any],
    vars: Mapping[str, Sequence[float]],
    method: Literal["flat", "ref"] = "flat",
    class_weights: Mapping[Any, float] | Sequence[float] | None = None,
    threshold: float = 0.1,
    discard_under_overflow: bool = True,
) -> WeightedRows:
    """`reweight_events`, keeping the class index of every row as well."""
    result, weights, codes = _reweight(table, class_labels, classes, vars, method, class_weights, threshold,
                                       discard_under_overflow, with_event_weights=True)
    assert weights is not None
    return WeightedRows(result=result, weights=weights, class_index=codes)


def _reweight(table: Table, class_labels: Any, classes: Sequence[Any], vars: Mapping[str, Sequence[float]],
              method: str, class_weights: Mapping[Any, float] | Sequence[float] | None, threshold: float,
              discard_under_overflow: bool, *,
              with_event_weights: bool) -> tuple[ReweightResult, np.ndarray | None, np.ndarray]:
    _check_method(method)
    t = _check_threshold(threshold)
    classes_t = _check_classes(classes)
    cw = _check_class_weights(class_weights, classes_t)
    var_names, edges = check_vars(vars)
    codes, cells, counts = _prepare(table, class_labels, classes_t, edges, var_names, bool(discard_under_overflow))
    nc = len(classes_t)
    raw = counts.astype(np.float64)

    if method == "ref" and not raw[0].any():
        raise ValueError(f"class {classes_t[0]!r} (the reference): no events inside the binning, cannot make weights")
    shapes = np.empty_like(raw)
    refs = np.empty(nc)
    for c, label in enumerate(classes_t):  # a handful of classes, each a whole-histogram operation
        if method == "flat":
            shapes[c], refs[c] = _flat_shape(raw[c], t, label)
        else:
            shapes[c], refs[c] = _ref_shape(raw[c], raw[0], t, label)

    per_class = (raw * shapes).sum(axis=(1, 2)) / cw
    factors = MAX_WEIGHT * per_class.min() / per_class
    result = ReweightResult(
        classes=classes_t,
        var_names=var_names,
        edges=edges,
        method=method,
        threshold=t,
        discard_under_overflow=bool(discard_under_overflow),
        class_weights=cw,
        raw_hists=raw,
        shape_maps=shapes,
        reference_values=refs,
        class_factors=factors,
        weight_maps=shapes * factors[:, None, None],
    )
    return result, _lookup(result, cells) if with_event_weights else None, codes


def _lookup(result: ReweightResult, cells: np.ndarray) -> np.ndarray:
    return _gather_kernel(cells, np.append(result.weight_maps.reshape(-1), 0.0))


def event_weights(result: ReweightResult, table: Table, class_labels: Any) -> np.ndarray:
    """Each row's weight: its class's map at its bin; 0 for unknown classes, NaN or discarded values."""
    _, cells, _ = _prepare(table, class_labels, result.classes, result.edges, result.var_names,
                           result.discard_under_overflow)
    return _lookup(result, cells)

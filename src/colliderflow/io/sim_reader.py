"""Read a simulation ROOT file into awkward arrays, refusing anything malformed loudly.

`read_sim` reads the builtin backend's layout; `read_events` detects the format (builtin, EDM4hep from a
Key4HEP reconstruction, Delphes) and dispatches to the reader that maps it onto the same layout.

The ntuplizer trusts what this module returns: every SIM_* branch present, the per-object branches of
one collection jagged alike, and every *_idx pointing inside its event. Checking that here, once and
vectorised, turns a malformed file into one ValueError that names the file, instead of an IndexError
or silently wrong targets three modules later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from colliderflow.io.delphes_events import DEFAULT_BFIELD_TESLA, read_delphes_events
from colliderflow.io.edm4hep_reader import read_edm4hep
from colliderflow.io.rootfile import open_root_file
from colliderflow.schema import (
    SIM_ALL_BRANCHES,
    SIM_CALOLINK_BRANCHES,
    SIM_CLUSTER_BRANCHES,
    SIM_GEN_BRANCHES,
    SIM_TRACK_BRANCHES,
    SIM_TREE,
)

# Collections whose branches must share one jagged structure, named by their first branch.
_COLLECTIONS = {
    "gen": SIM_GEN_BRANCHES,
    "track": SIM_TRACK_BRANCHES,
    "cluster": SIM_CLUSTER_BRANCHES,
    "calolink": SIM_CALOLINK_BRANCHES,
}

# Signatures of layouts this reader does not read (yet), to say what a file is instead of only what
# it lacks.
_FOREIGN_TREES = {"Delphes": "Delphes"}
_EDM4HEP_MARKERS = ("MCParticles", "podio_metadata")


def _describe_foreign(path: Path, keys: list[str], tree_keys: list[str]) -> str | None:
    """A hint naming the format of a file that is not the builtin layout, when it is recognisable."""
    names = {k.split(";")[0] for k in keys}
    for tree, label in _FOREIGN_TREES.items():
        if tree in names:
            return f"{path}: looks like a {label} file (tree {tree!r}); read_sim reads only the builtin layout (read_events detects the format)"
    if any(m in k for m in _EDM4HEP_MARKERS for k in list(names) + tree_keys):
        return f"{path}: looks like an EDM4hep/podio file; read_sim reads only the builtin layout (read_events detects the format)"
    return None


def detect_format(path: str | Path) -> str:
    """The layout of a simulation file: "builtin", "edm4hep" or "delphes"; ValueError naming the file otherwise.

    Decided from the file's contents, never its name: a `Delphes` tree is Delphes; an `events` tree
    with every SIM_* branch is the builtin layout; an `events` tree of podio collections (a
    `podio_metadata` tree beside it, or MCParticle members such as `<coll>.generatorStatus`) is EDM4hep.
    """
    path = Path(path)
    with open_root_file(path) as fh:
        return _detect_open(path, fh)


def _detect_open(path: Path, fh: uproot.ReadOnlyDirectory) -> str:
    """`detect_format` on an open file, so that a reader can go on with the same handle."""
    try:
        names = {k.split(";")[0] for k in fh.keys(recursive=False)}
    except Exception as exc:
        raise ValueError(f"{path}: cannot list the file's contents ({type(exc).__name__}: {exc})") from exc
    if "Delphes" in names:
        return "delphes"
    if SIM_TREE in names:
        try:
            tree_keys = list(fh[SIM_TREE].keys(recursive=True))
        except Exception as exc:
            raise ValueError(f"{path}: cannot read tree {SIM_TREE!r} ({type(exc).__name__}: {exc})") from exc
        if not all(b in tree_keys for b in SIM_ALL_BRANCHES) and (
            "podio_metadata" in names or any(k.endswith(".generatorStatus") for k in tree_keys)
        ):
            return "edm4hep"
    _check_layout(path, fh)
    return "builtin"


@dataclass(frozen=True)
class SourceEvents:
    """Events of one file in the builtin record layout, with what the ntuplizer must know of their source.

    `bfield_tesla` is the solenoid field the track curvatures were written with (the reader's choice
    for Delphes, the detector's for the others); the ntuplizer turns ω back into pT with it unless the
    config sets one. Readers of other sources may add gen_parent_idx (for the target rule) and pfo_*
    (the source's own particle flow, used as the baseline).
    """

    events: ak.Array
    format: str
    bfield_tesla: float


_DEFAULT_BFIELD = {"builtin": 4.0, "edm4hep": 4.0}  # CLIC_o3_v14 and the builtin CLIC-like detector


def _usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. what a batch system granted)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def read_events(path: str | Path, *, bfield_tesla: float | None = None) -> SourceEvents:
    """Any supported simulation file (format detected) as builtin-layout records, checked for consistency."""
    path = Path(path)
    with open_root_file(path) as fh:  # one opening both to recognise and to read a builtin file
        fmt = _detect_open(path, fh)
        events = _read_tree(path, _check_layout(path, fh)) if fmt == "builtin" else None
    if events is not None:
        _check_finite(path, events)
        return SourceEvents(events, fmt, bfield_tesla or _DEFAULT_BFIELD[fmt])
    if fmt == "edm4hep":
        events = read_edm4hep(path)
        field = bfield_tesla or _DEFAULT_BFIELD[fmt]
    else:
        field = bfield_tesla or DEFAULT_BFIELD_TESLA
        events = read_delphes_events(path, bfield_tesla=field)
    if len(events) == 0:
        raise ValueError(f"{path}: the file holds no events")
    _check_consistency(path, events)
    _check_finite(path, events)
    return SourceEvents(events, fmt, float(field))


def _check_finite(path: Path, events: ak.Array) -> None:
    """NaN or inf in any input branch would flow silently into features and losses: stop here, naming them."""
    bad = {}
    for name in events.fields:
        values = np.asarray(ak.to_numpy(ak.flatten(events[name], axis=None)))
        # One sum (in float64, which cannot overflow on float32 data) finds the clean branches cheaply.
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(np.sum(values, dtype=np.float64)):
            n_bad = int(np.count_nonzero(~np.isfinite(values)))
            if n_bad:
                bad[name] = n_bad
    if bad:
        listing = ", ".join(f"{name} ({n} values)" for name, n in sorted(bad.items()))
        raise ValueError(f"{path}: non-finite (NaN or inf) values in {listing}")


def _counts(array: ak.Array) -> np.ndarray:
    """Objects per event of a jagged branch (from its offsets, without awkward's broadcasting)."""
    layout = array.layout
    if isinstance(layout, ak.contents.ListOffsetArray):
        return np.diff(np.asarray(layout.offsets.data))
    return ak.to_numpy(ak.num(array, axis=1))


def _check_layout(path: Path, fh: uproot.ReadOnlyDirectory) -> object:
    """The `events` tree of a builtin file; ValueError naming what is missing otherwise."""
    try:
        keys = list(fh.keys(recursive=False))
    except Exception as exc:
        raise ValueError(f"{path}: cannot list the file's contents ({type(exc).__name__}: {exc})") from exc
    names = {k.split(";")[0] for k in keys}
    if SIM_TREE not in names:
        hint = _describe_foreign(path, keys, [])
        raise ValueError(hint or f"{path}: no tree {SIM_TREE!r} (the file holds: {sorted(names) or 'nothing'})")
    try:
        tree = fh[SIM_TREE]
        tree_keys = list(tree.keys())
    except Exception as exc:
        raise ValueError(f"{path}: cannot read tree {SIM_TREE!r} ({type(exc).__name__}: {exc})") from exc
    missing = [b for b in SIM_ALL_BRANCHES if b not in tree_keys]
    if missing:
        hint = _describe_foreign(path, keys, tree_keys)
        if hint and len(missing) == len(SIM_ALL_BRANCHES):
            raise ValueError(hint)
        absent = sorted({c for c, branches in _COLLECTIONS.items() if all(b in missing for b in branches)})
        raise ValueError(
            f"{path}: tree {SIM_TREE!r} lacks {len(missing)} builtin-layout branch(es): {', '.join(missing)}"
            + (f" (whole collections missing: {', '.join(absent)})" if absent else "")
        )
    return tree


def _check_consistency(path: Path, events: ak.Array) -> None:
    """Same jagged structure within each collection, and every index inside its event."""
    counts = {}
    for name, branches in _COLLECTIONS.items():
        ref = _counts(events[branches[0]])
        for b in branches[1:]:
            if not np.array_equal(_counts(events[b]), ref):
                raise ValueError(f"{path}: branch {b} is not jagged like {branches[0]} (per-event lengths differ)")
        counts[name] = ref

    def check_index(branch: str, target: str, *, allow_minus_one: bool) -> None:
        n_idx = _counts(events[branch])
        idx = np.asarray(ak.to_numpy(ak.flatten(events[branch], axis=1)))
        n = np.repeat(counts[target], n_idx)
        low = -1 if allow_minus_one else 0
        outside = (idx < low) | (idx >= n)
        if outside.any():
            bad = np.bincount(np.repeat(np.arange(n_idx.size), n_idx)[outside], minlength=n_idx.size)
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: {int(bad.sum())} value(s) of {branch} point outside the {target} collection "
                f"of their event (first in event {first})"
            )

    # A track without a truth particle (a fake) is allowed as -1; a deposit always has both ends.
    check_index("track_gen_idx", "gen", allow_minus_one=True)
    check_index("calolink_gen_idx", "gen", allow_minus_one=False)
    check_index("calolink_cluster_idx", "cluster", allow_minus_one=False)


def read_sim(path: str | Path) -> ak.Array:
    """All SIM_* branches of one builtin simulation file, as one awkward record array [events].

    Fields are the branch names of `colliderflow.schema` (jagged per event for the collections).
    Raises ValueError naming the file when it is missing, empty, not ROOT, truncated, of another
    layout, lacks branches, has no events, or has inconsistent collections or indices.
    """
    path = Path(path)
    with open_root_file(path) as fh:
        return _read_tree(path, _check_layout(path, fh))


def _read_tree(path: Path, tree: object) -> ak.Array:
    """The SIM_* branches of a checked builtin tree, with the consistency checks of `read_sim`.

    With a second core, baskets are decompressed on two threads (zlib and lz4 release the GIL).
    """
    executor = uproot.source.futures.ThreadPoolExecutor(2) if _usable_cores() > 1 else None
    try:
        events = tree.arrays(list(SIM_ALL_BRANCHES), library="ak", decompression_executor=executor)
    except Exception as exc:  # truncated baskets, decompression errors, bad interpretations
        raise ValueError(f"{path}: cannot read tree {SIM_TREE!r}, truncated or corrupt? "
                         f"({type(exc).__name__}: {exc})") from exc
    finally:
        if executor is not None:
            executor.shutdown()
    if len(events) == 0:
        raise ValueError(f"{path}: tree {SIM_TREE!r} holds no events")
    missing = [b for b in SIM_ALL_BRANCHES if b not in events.fields]
    if missing:
        raise ValueError(f"{path}: branches listed but not read: {', '.join(missing)}")
    _check_consistency(path, events)
    return events

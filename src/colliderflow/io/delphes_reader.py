"""Read Delphes trees with uproot: particle-flow candidates, generator particles, and jets' constituents.

Delphes stores a jet's constituents as a TRefArray of the referenced objects' fUniqueID, not as indices.
This reader resolves them, for all events at once, into indices of the ParticleFlowCandidate (reco jets)
or Particle (gen jets) list of the same event, so that everything downstream works on plain index
arrays. A reference that points to no stored object (Delphes keeps references to objects of
collections it does not write) is dropped and counted, as the JetClass-II ntuplizer skips it.

Quantities come out in the project's units: GeV, mm, and ns for times (Delphes writes seconds). Reco
four-momenta are built from PT, Eta, Phi and Mass, as the JetClass-II tools do: a Delphes candidate's
stored E is not always consistent with them.

Every problem with a file — not ROOT, no Delphes tree, missing branches, references that do not
parse — is a ValueError that names the file (and the branches).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

import awkward as ak
import numpy as np
import uproot

from colliderflow.io.rootfile import open_root_file

DELPHES_TREE: Final = "Delphes"
_SECONDS_TO_NS: Final = 1e9
# TRef values carry the process-id slot in their top byte; the object number is the low 24 bits.
_UID_MASK: Final = 0x00FFFFFF

PF_BRANCH: Final = "ParticleFlowCandidate"
GEN_BRANCH: Final = "Particle"
VERTEX_BRANCH: Final = "Vertex"

# Leaves read per collection: output field → Delphes leaf.
_PF_LEAVES: Final = {
    "uid": "fUniqueID",
    "pt": "PT",
    "eta": "Eta",
    "phi": "Phi",
    "mass": "Mass",
    "charge": "Charge",
    "pid": "PID",
    "d0": "D0",
    "d0err": "ErrorD0",
    "dz": "DZ",
    "dzerr": "ErrorDZ",
}
_GEN_LEAVES: Final = {
    "uid": "fUniqueID",
    "pid": "PID",
    "status": "Status",
    "charge": "Charge",
    "m1": "M1",
    "m2": "M2",
    "d1": "D1",
    "d2": "D2",
    "px": "Px",
    "py": "Py",
    "pz": "Pz",
    "energy": "E",
    "mass": "Mass",
    "x": "X",
    "y": "Y",
    "z": "Z",
    "t": "T",
}
_VERTEX_LEAVES: Final = {"x": "X", "y": "Y", "z": "Z", "t": "T"}


@dataclass(frozen=True)
class DelphesEvents:
    """One range of events of one Delphes file, as per-event awkward arrays.

    pf:        records px, py, pz, energy (GeV, float64), charge, pid (int32), d0, d0err, dz, dzerr (mm)
    gen:       records px, py, pz, energy, mass (GeV), pid, status, charge, m1, m2, d1, d2 (local indices,
               −1 for none), x, y, z (mm), t (ns)
    jets:      [events, jets, constituents] indices into pf (None when no jet branch was read)
    genjets:   [events, jets, constituents] indices into gen (None when no gen-jet branch was read)
    vertex:    records x, y, z (mm), t (ns) of the first Vertex entry, with has_vertex (bool);
               None when the file has no Vertex branch
    unresolved_refs: constituent references that matched no stored object (dropped)
    """

    path: Path
    entry_start: int
    pf: ak.Array
    gen: ak.Array
    jets: ak.Array | None
    genjets: ak.Array | None
    vertex: ak.Array | None
    unresolved_refs: int

    @property
    def n_events(self) -> int:
        return len(self.pf)


def _leaf(collection: str, leaf: str) -> str:
    return f"{collection}.{leaf}"


def required_branches(*, jet_branch: str | None, genjet_branch: str | None) -> list[str]:
    """The branches a read needs (Vertex is optional: without it impact parameters stay absolute)."""
    names = [_leaf(PF_BRANCH, v) for v in _PF_LEAVES.values()]
    names += [_leaf(GEN_BRANCH, v) for v in _GEN_LEAVES.values()]
    if jet_branch:
        names.append(_leaf(jet_branch, "Constituents"))
    if genjet_branch:
        names.append(_leaf(genjet_branch, "Constituents"))
    return names


def _open_tree(path: Path) -> uproot.TTree:
    handle = open_root_file(path)
    if DELPHES_TREE not in handle:
        keys = sorted({k.split(";")[0] for k in handle.keys(recursive=False)})
        handle.close()
        raise ValueError(f"{path}: no {DELPHES_TREE!r} tree (top-level keys: {keys})")
    tree = handle[DELPHES_TREE]
    if not isinstance(tree, uproot.TTree):
        handle.close()
        raise ValueError(f"{path}: {DELPHES_TREE!r} is not a TTree")  # noqa: TRY004 (a bad file, not a bad call)
    return tree


def _check_branches(path: Path, tree: uproot.TTree, names: list[str]) -> None:
    available = {k.split("/")[-1] for k in tree.keys(recursive=True)}
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"{path}: Delphes tree lacks branches {missing}")


def resolve_refs(uids: ak.Array, refs: ak.Array) -> tuple[ak.Array, int]:
    """Turn [events, jets, refs] TRef values into indices of the objects whose fUniqueID they name.

    `uids` is [events, objects]; a reference is looked up only among its own event's objects. All events
    are done in one sorted search on (event, uid) keys. Returns the index array (unmatched references
    dropped, order kept) and the number dropped.
    """
    n_events = len(uids)
    n_objects = ak.to_numpy(ak.num(uids, axis=1)).astype(np.int64)
    obj_offsets = np.zeros(n_events + 1, dtype=np.int64)
    np.cumsum(n_objects, out=obj_offsets[1:])
    obj_event = np.repeat(np.arange(n_events, dtype=np.int64), n_objects)
    obj_uid = ak.to_numpy(ak.flatten(uids, axis=1)).astype(np.int64) & _UID_MASK
    obj_keys = (obj_event << 32) | obj_uid
    order = np.argsort(obj_keys, kind="stable")
    sorted_keys = obj_keys[order]

    jets_per_event = ak.to_numpy(ak.num(refs, axis=1)).astype(np.int64)
    refs_per_jet = ak.to_numpy(ak.flatten(ak.num(refs, axis=2), axis=1)).astype(np.int64)
    jet_event = np.repeat(np.arange(n_events, dtype=np.int64), jets_per_event)
    ref_event = np.repeat(jet_event, refs_per_jet)
    ref_uid = ak.to_numpy(ak.flatten(refs, axis=None)).astype(np.int64) & _UID_MASK
    ref_keys = (ref_event << 32) | ref_uid
    pos = np.searchsorted(sorted_keys, ref_keys)
    pos_ok = np.minimum(pos, max(len(sorted_keys) - 1, 0))
    found = (
        (pos < len(sorted_keys)) & (sorted_keys[pos_ok] == ref_keys)
        if len(sorted_keys)
        else np.zeros(len(ref_keys), bool)
    )
    local = order[pos_ok[found]] - obj_offsets[ref_event[found]]
    ref_jet = np.repeat(np.arange(len(refs_per_jet)), refs_per_jet)
    kept_per_jet = np.bincount(ref_jet[found], minlength=len(refs_per_jet))
    per_jet = ak.unflatten(local, kept_per_jet)
    return ak.unflatten(per_jet, jets_per_event), int((~found).sum())


def _collection(arrays: ak.Array, collection: str, leaves: dict[str, str]) -> dict[str, ak.Array]:
    return {field: arrays[_leaf(collection, leaf)] for field, leaf in leaves.items()}


def _pf_records(raw: dict[str, ak.Array]) -> ak.Array:
    pt = ak.values_astype(raw["pt"], np.float64)
    eta = ak.values_astype(raw["eta"], np.float64)
    phi = ak.values_astype(raw["phi"], np.float64)
    mass = ak.values_astype(raw["mass"], np.float64)
    pz = pt * np.sinh(eta)
    return ak.zip(
        {
            "px": pt * np.cos(phi),
            "py": pt * np.sin(phi),
            "pz": pz,
            "energy": np.sqrt(pt * pt + pz * pz + mass * mass),
            "charge": ak.values_astype(raw["charge"], np.int32),
            "pid": ak.values_astype(raw["pid"], np.int32),
            "d0": raw["d0"],
            "d0err": raw["d0err"],
            "dz": raw["dz"],
            "dzerr": raw["dzerr"],
        }
    )


def _gen_records(raw: dict[str, ak.Array]) -> ak.Array:
    fields = {k: v for k, v in raw.items() if k != "uid"}
    for key in ("px", "py", "pz", "energy", "mass"):
        fields[key] = ak.values_astype(fields[key], np.float64)
    fields["t"] = fields["t"] * _SECONDS_TO_NS
    return ak.zip(fields)


def _vertex_records(arrays: ak.Array) -> ak.Array:
    raw = _collection(arrays, VERTEX_BRANCH, _VERTEX_LEAVES)
    has = ak.num(raw["z"], axis=1) > 0
    first = {k: ak.fill_none(ak.firsts(v, axis=1), 0.0) for k, v in raw.items()}
    first["t"] = first["t"] * _SECONDS_TO_NS
    return ak.zip({**first, "has_vertex": has})


def _check_indices(path: Path, name: str, index: ak.Array, sizes: ak.Array) -> None:
    """Mother/daughter indices must point inside their event (or be −1)."""
    bad = ak.any((index < -1) | (index >= sizes), axis=1)
    if ak.any(bad):
        first = int(np.flatnonzero(ak.to_numpy(bad))[0])
        raise ValueError(f"{path}: {name} points outside its event's particle list (event {first})")


class DelphesFile:
    """An open Delphes file whose tree has been checked for the branches a read needs.

    Opening parses the tree's metadata (about a thousand branches in a full Delphes card), which costs
    seconds: open once, then read any number of entry ranges.
    """

    def __init__(
        self, path: str | Path, *, jet_branch: str | None = "JetPUPPIAK8", genjet_branch: str | None = "GenJetAK8"
    ) -> None:
        self.path = Path(path)
        self.jet_branch = jet_branch
        self.genjet_branch = genjet_branch
        self._tree = _open_tree(self.path)
        try:
            self._names = required_branches(jet_branch=jet_branch, genjet_branch=genjet_branch)
            _check_branches(self.path, self._tree, self._names)
            available = {k.split("/")[-1] for k in self._tree.keys(recursive=True)}
            vertex_names = [_leaf(VERTEX_BRANCH, v) for v in _VERTEX_LEAVES.values()]
            self._with_vertex = all(n in available for n in vertex_names)
            if self._with_vertex:
                self._names = self._names + vertex_names
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._tree.file.close()

    @property
    def num_entries(self) -> int:
        return int(self._tree.num_entries)

    def read(self, entry_start: int | None = None, entry_stop: int | None = None) -> DelphesEvents:
        """Read an entry range into per-event arrays with resolved constituents."""
        path = self.path
        try:
            arrays = self._tree.arrays(self._names, entry_start=entry_start, entry_stop=entry_stop)
        except Exception as exc:  # a damaged basket or an unreadable streamer
            raise ValueError(f"{path}: cannot read the Delphes branches ({type(exc).__name__}: {exc})") from exc
        pf_raw = _collection(arrays, PF_BRANCH, _PF_LEAVES)
        gen_raw = _collection(arrays, GEN_BRANCH, _GEN_LEAVES)
        n_gen = ak.num(gen_raw["pid"], axis=1)
        for key in ("m1", "m2", "d1", "d2"):
            _check_indices(path, f"{GEN_BRANCH}.{_GEN_LEAVES[key]}", gen_raw[key], n_gen)
        unresolved = 0
        jets = genjets = None
        try:
            if self.jet_branch:
                jets, dropped = resolve_refs(pf_raw["uid"], arrays[_leaf(self.jet_branch, "Constituents")].refs)
                unresolved += dropped
            if self.genjet_branch:
                genjets, dropped = resolve_refs(gen_raw["uid"], arrays[_leaf(self.genjet_branch, "Constituents")].refs)
                unresolved += dropped
        except (AttributeError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: jet constituents are not TRefArrays uproot can read ({exc})") from exc
        return DelphesEvents(
            path=path,
            entry_start=int(entry_start or 0),
            pf=_pf_records(pf_raw),
            gen=_gen_records(gen_raw),
            jets=jets,
            genjets=genjets,
            vertex=_vertex_records(arrays) if self._with_vertex else None,
            unresolved_refs=unresolved,
        )

    def iterate(self, step_size: int) -> Iterator[DelphesEvents]:
        """The file in ranges of `step_size` events, so memory stays bounded on large inputs."""
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        total = self.num_entries
        for start in range(0, total, step_size):
            yield self.read(start, min(total, start + step_size))


def read_delphes(
    path: str | Path,
    *,
    jet_branch: str | None = "JetPUPPIAK8",
    genjet_branch: str | None = "GenJetAK8",
    entry_start: int | None = None,
    entry_stop: int | None = None,
) -> DelphesEvents:
    """Read one Delphes file (or an entry range of it) into per-event arrays with resolved constituents.

    Pass jet_branch / genjet_branch = None to skip the jets (when they are reclustered from the
    particles instead); the particle collections are always read.
    """
    with DelphesFile(path, jet_branch=jet_branch, genjet_branch=genjet_branch) as handle:
        return handle.read(entry_start, entry_stop)


def check_delphes(path: str | Path, *, jet_branch: str | None, genjet_branch: str | None) -> int:
    """Open a file and check it has what a read needs, without reading data; returns its event count."""
    with DelphesFile(path, jet_branch=jet_branch, genjet_branch=genjet_branch) as handle:
        return handle.num_entries

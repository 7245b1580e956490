"""Read Delphes trees with uproot: reconstructed particles, generator particles, and jets' constituents.

The reconstructed particles are the card's particle-flow output: `ParticleFlowCandidate` when the card
writes it (in a PUPPI card such as JetClass-II's these are the PUPPI-weighted candidates), else the
energy-flow collections EFlowTrack + EFlowPhoton + EFlowNeutralHadron (CMS, ATLAS, CLIC, ILD, ... cards).

Delphes stores a jet's constituents as a TRefArray of the referenced objects' fUniqueID, not as indices.
This reader resolves them, for all events at once, into indices of the ParticleFlowCandidate (reco jets)
or Particle (gen jets) list of the same event, so that everything downstream works on plain index
arrays. A reference that points to no stored object (Delphes keeps references to objects of
collections it does not write) is dropped and counted, as the JetClass-II ntuplizer skips it.

Quantities come out in the project's units: GeV, mm, and ns for times (Delphes writes seconds). Reco
four-momenta are built from PT, Eta, Phi and Mass, as the JetClass-II tools do: a Delphes candidate's
stored E is not always consistent with them. Entries along the beam axis (pT = 0, η = ±999.9) get a
finite pz (`delphes_refs.pz_from_pt_eta`).

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

from colliderflow.io.delphes_refs import pz_from_pt_eta, resolve_refs, truth_refs
from colliderflow.io.rootfile import open_root_file

__all__ = ["DelphesEvents", "DelphesFile", "read_delphes", "required_branches", "resolve_refs"]

DELPHES_TREE: Final = "Delphes"
_SECONDS_TO_NS: Final = 1e9

PF_BRANCH: Final = "ParticleFlowCandidate"
EFLOW_TRACK: Final = "EFlowTrack"
EFLOW_NEUTRALS: Final = {"EFlowPhoton": 22, "EFlowNeutralHadron": 130}  # collection → PDG id given
PARTICLE_SOURCES: Final = ("ParticleFlowCandidate", "eflow")
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
    "p": "P",
}
# EFlowTrack is of class Track: the same leaves as a candidate. The neutral ones are Towers: energy and direction.
_TOWER_LEAVES: Final = {"uid": "fUniqueID", "energy": "E", "eta": "Eta", "phi": "Phi"}
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


def particle_source(available: set[str]) -> str:
    """Which reconstructed particles a file offers: "ParticleFlowCandidate" if written, else "eflow"."""
    return PF_BRANCH if _leaf(PF_BRANCH, "PT") in available else "eflow"


def _particle_branches(source: str) -> list[str]:
    if source == PF_BRANCH:
        return [_leaf(PF_BRANCH, v) for v in _PF_LEAVES.values()]
    names = [_leaf(EFLOW_TRACK, v) for v in _PF_LEAVES.values()]
    return names + [_leaf(c, v) for c in EFLOW_NEUTRALS for v in _TOWER_LEAVES.values()]


def required_branches(
    *, jet_branch: str | None, genjet_branch: str | None, particles: str | None = PF_BRANCH
) -> list[str]:
    """The branches a read needs (Vertex is optional: without it impact parameters stay absolute).

    particles=None: what a file without ParticleFlowCandidate needs, the EFlow collections.
    """
    particles = particles or "eflow"
    if particles not in PARTICLE_SOURCES:
        raise ValueError(f"particles must be one of {PARTICLE_SOURCES}, got {particles!r}")
    names = _particle_branches(particles)
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


def _check_branches(path: Path, tree: uproot.TTree, names: list[str], *, auto: bool = False) -> None:
    available = {k.split("/")[-1] for k in tree.keys(recursive=True)}
    missing = [n for n in names if n not in available]
    if missing:
        hint = (f" (reconstructed particles: neither {_leaf(PF_BRANCH, 'PT')} nor "
                f"{' + '.join([EFLOW_TRACK, *EFLOW_NEUTRALS])} is complete)") if auto else ""
        raise ValueError(f"{path}: Delphes tree lacks branches {missing}{hint}")


def _collection(arrays: ak.Array, collection: str, leaves: dict[str, str]) -> dict[str, ak.Array]:
    return {field: arrays[_leaf(collection, leaf)] for field, leaf in leaves.items()}


def _pf_records(raw: dict[str, ak.Array]) -> ak.Array:
    pt = ak.values_astype(raw["pt"], np.float64)
    eta = ak.values_astype(raw["eta"], np.float64)
    phi = ak.values_astype(raw["phi"], np.float64)
    mass = ak.values_astype(raw["mass"], np.float64)
    pz = pz_from_pt_eta(pt, eta, ak.values_astype(raw["p"], np.float64))
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


def _tower_records(raw: dict[str, ak.Array], pid: int) -> ak.Array:
    """Neutral energy-flow towers as massless particles (tanh η and 1/cosh η stay finite at |η| = 999.9)."""
    energy = ak.values_astype(raw["energy"], np.float64)
    eta = ak.values_astype(raw["eta"], np.float64)
    phi = ak.values_astype(raw["phi"], np.float64)
    pt = energy / np.cosh(ak.where(abs(eta) > 700.0, 700.0, eta))
    zero = ak.zeros_like(energy)
    return ak.zip(
        {
            "px": pt * np.cos(phi),
            "py": pt * np.sin(phi),
            "pz": energy * np.tanh(eta),
            "energy": energy,
            "charge": ak.values_astype(zero, np.int32),
            "pid": ak.values_astype(zero, np.int32) + pid,
            "d0": zero,
            "d0err": zero,
            "dz": zero,
            "dzerr": zero,
        }
    )


def _particles(arrays: ak.Array, source: str) -> tuple[ak.Array, ak.Array]:
    """(records, fUniqueIDs) of the reconstructed particles of `source`, EFlow collections concatenated."""
    if source == PF_BRANCH:
        raw = _collection(arrays, PF_BRANCH, _PF_LEAVES)
        return _pf_records(raw), raw["uid"]
    raw = _collection(arrays, EFLOW_TRACK, _PF_LEAVES)
    parts, uids = [_pf_records(raw)], [raw["uid"]]
    for collection, pid in EFLOW_NEUTRALS.items():
        tower = _collection(arrays, collection, _TOWER_LEAVES)
        parts.append(_tower_records(tower, pid))
        uids.append(tower["uid"])
    return ak.concatenate(parts, axis=1), ak.concatenate(uids, axis=1)


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
        self,
        path: str | Path,
        *,
        jet_branch: str | None = "JetPUPPIAK8",
        genjet_branch: str | None = "GenJetAK8",
        particles: str | None = None,
    ) -> None:
        """`particles`: "ParticleFlowCandidate", "eflow", or None for what the file has (`particle_source`)."""
        self.path = Path(path)
        self.jet_branch = jet_branch
        self.genjet_branch = genjet_branch
        self._tree = _open_tree(self.path)
        try:
            available = {k.split("/")[-1] for k in self._tree.keys(recursive=True)}
            self.available = available
            self.particles = particles or particle_source(available)
            self._names = required_branches(
                jet_branch=jet_branch, genjet_branch=genjet_branch, particles=self.particles
            )
            _check_branches(self.path, self._tree, self._names, auto=particles is None)
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
        pf, pf_uid = _particles(arrays, self.particles)
        gen_raw = _collection(arrays, GEN_BRANCH, _GEN_LEAVES)
        n_gen = ak.num(gen_raw["pid"], axis=1)
        for key in ("m1", "m2", "d1", "d2"):
            _check_indices(path, f"{GEN_BRANCH}.{_GEN_LEAVES[key]}", gen_raw[key], n_gen)
        unresolved = 0
        jets = genjets = None
        if self.jet_branch:
            jets, dropped = truth_refs(str(path), arrays, _leaf(self.jet_branch, "Constituents"), pf_uid)
            unresolved += dropped
        if self.genjet_branch:
            genjets, dropped = truth_refs(str(path), arrays, _leaf(self.genjet_branch, "Constituents"), gen_raw["uid"])
            unresolved += dropped
        return DelphesEvents(
            path=path,
            entry_start=int(entry_start or 0),
            pf=pf,
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
    particles: str | None = None,
    entry_start: int | None = None,
    entry_stop: int | None = None,
) -> DelphesEvents:
    """Read one Delphes file (or an entry range of it) into per-event arrays with resolved constituents.

    Pass jet_branch / genjet_branch = None to skip the jets (when they are reclustered from the
    particles instead); the particle collections are always read.
    """
    with DelphesFile(path, jet_branch=jet_branch, genjet_branch=genjet_branch, particles=particles) as handle:
        return handle.read(entry_start, entry_stop)

"""The JetClass-II jet-level layout: one row per jet, 54 columns, written down once.

The column list, order, value types and list-ness were read off the published JetClass-II example file
(jet-universe/sophon, notebooks/JetClassII_example.parquet). Files we write carry exactly this arrow
schema, down to the non-nullable list items, so a consumer of the public dataset (weaver, the Sophon
data config) reads ours without a translation layer. docs/jets.md explains the columns in prose.

Units follow JetClass-II rather than the rest of the project where the two differ: genpart_t is in
seconds (what Delphes stores and what the example holds), not ns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import awkward as ak
import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class JetColumn:
    """One JetClass-II column: its name, element type, whether it holds a per-jet list, unit, meaning."""

    name: str
    dtype: str  # "float32" | "int32" | "bool"
    is_list: bool
    unit: str
    meaning: str


def _col(name: str, dtype: str, is_list: bool, unit: str, meaning: str) -> JetColumn:
    return JetColumn(name, dtype, is_list, unit, meaning)


_F, _I, _B = "float32", "int32", "bool"

# In the order of the JetClass-II example file.
JETCLASS2_COLUMNS: Final[tuple[JetColumn, ...]] = (
    # Jet constituents (reconstructed particle-flow candidates), sorted by descending pT.
    _col("part_px", _F, True, "GeV", "constituent px"),
    _col("part_py", _F, True, "GeV", "constituent py"),
    _col("part_pz", _F, True, "GeV", "constituent pz"),
    _col("part_energy", _F, True, "GeV", "constituent energy"),
    _col("part_deta", _F, True, "", "sign(jet η) · (η − jet η); the sign flips the jet to positive η"),
    _col("part_dphi", _F, True, "rad", "φ − jet φ, wrapped into [−π, π)"),
    _col("part_d0val", _F, True, "mm", "transverse impact parameter (0 for neutrals)"),
    _col("part_d0err", _F, True, "mm", "its uncertainty"),
    _col("part_dzval", _F, True, "mm", "longitudinal impact parameter relative to the primary vertex"),
    _col("part_dzerr", _F, True, "mm", "its uncertainty"),
    _col("part_charge", _I, True, "e", "electric charge"),
    _col("part_isElectron", _B, True, "", "abs(pid) == 11"),
    _col("part_isMuon", _B, True, "", "abs(pid) == 13"),
    _col("part_isPhoton", _B, True, "", "pid == 22"),
    _col("part_isChargedHadron", _B, True, "", "charge != 0 and not electron or muon"),
    _col("part_isNeutralHadron", _B, True, "", "charge == 0 and not photon"),
    # The jet.
    _col("jet_pt", _F, False, "GeV", "jet pT"),
    _col("jet_eta", _F, False, "", "jet η"),
    _col("jet_phi", _F, False, "rad", "jet φ"),
    _col("jet_energy", _F, False, "GeV", "jet energy"),
    _col("jet_sdmass", _F, False, "GeV", "soft-drop mass"),
    _col("jet_nparticles", _I, False, "", "number of constituents stored in part_*"),
    _col("jet_tau1", _F, False, "", "N-subjettiness τ1 (normalised)"),
    _col("jet_tau2", _F, False, "", "N-subjettiness τ2"),
    _col("jet_tau3", _F, False, "", "N-subjettiness τ3"),
    _col("jet_tau4", _F, False, "", "N-subjettiness τ4"),
    _col("jet_label", _I, False, "", "index into the label table (−1: no truth available)"),
    # Constituents of the matched generator-level jet (empty when no gen jet matched).
    _col("genpart_px", _F, True, "GeV", "gen constituent px"),
    _col("genpart_py", _F, True, "GeV", "gen constituent py"),
    _col("genpart_pz", _F, True, "GeV", "gen constituent pz"),
    _col("genpart_energy", _F, True, "GeV", "gen constituent energy"),
    _col("genpart_jet_deta", _F, True, "", "like part_deta, relative to the reconstructed jet"),
    _col("genpart_jet_dphi", _F, True, "rad", "like part_dphi, relative to the reconstructed jet"),
    _col("genpart_x", _F, True, "mm", "production vertex x (0 when produced at the primary vertex z)"),
    _col("genpart_y", _F, True, "mm", "production vertex y (0 when produced at the primary vertex z)"),
    _col("genpart_z", _F, True, "mm", "production vertex z relative to the primary vertex"),
    _col("genpart_t", _F, True, "s", "production time relative to the primary vertex"),
    _col("genpart_pid", _I, True, "", "PDG id"),
    # The matched generator-level jet (zeros when none matched).
    _col("genjet_pt", _F, False, "GeV", "gen jet pT"),
    _col("genjet_eta", _F, False, "", "gen jet η"),
    _col("genjet_phi", _F, False, "rad", "gen jet φ"),
    _col("genjet_energy", _F, False, "GeV", "gen jet energy"),
    _col("genjet_sdmass", _F, False, "GeV", "gen jet soft-drop mass"),
    _col("genjet_nparticles", _I, False, "", "number of gen constituents stored in genpart_*"),
    # Selected truth particles: the resonance chain of the jet, or the QCD partons inside it.
    _col("aux_genpart_pt", _F, True, "GeV", "pT"),
    _col("aux_genpart_eta", _F, True, "", "η"),
    _col("aux_genpart_phi", _F, True, "rad", "φ"),
    _col("aux_genpart_mass", _F, True, "GeV", "mass"),
    _col("aux_genpart_pid", _I, True, "", "PDG id"),
    _col("aux_genpart_isResX", _B, True, "", "the initial resonance X"),
    _col("aux_genpart_isResY", _B, True, "", "a secondary resonance Y (X → Y Y)"),
    _col("aux_genpart_isResDecayProd", _B, True, "", "a direct decay product of X or Y"),
    _col("aux_genpart_isTauDecayProd", _B, True, "", "a direct decay product of a τ from X or Y"),
    _col("aux_genpart_isQcdParton", _B, True, "", "a quark (pT above threshold) inside a QCD-labelled jet"),
)

JETCLASS2_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in JETCLASS2_COLUMNS)
COLUMNS_BY_NAME: Final[dict[str, JetColumn]] = {c.name: c for c in JETCLASS2_COLUMNS}

_ARROW_SCALARS: Final[dict[str, pa.DataType]] = {"float32": pa.float32(), "int32": pa.int32(), "bool": pa.bool_()}
_NUMPY: Final[dict[str, type]] = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


def arrow_type(column: JetColumn) -> pa.DataType:
    """The arrow type of a column as the JetClass-II file stores it (list items are non-nullable)."""
    scalar = _ARROW_SCALARS[column.dtype]
    return pa.list_(pa.field("item", scalar, nullable=False)) if column.is_list else scalar


JETCLASS2_SCHEMA: Final[pa.Schema] = pa.schema(
    [pa.field(c.name, arrow_type(c), nullable=False) for c in JETCLASS2_COLUMNS]
)


def schema_differences(schema: pa.Schema) -> list[str]:
    """How `schema` departs from JetClass-II (names, order, value types, list-ness); empty if it does not."""
    problems = []
    names = list(schema.names)
    missing = [n for n in JETCLASS2_NAMES if n not in names]
    extra = [n for n in names if n not in COLUMNS_BY_NAME]
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if not missing and not extra and names != list(JETCLASS2_NAMES):
        problems.append("columns are not in the JetClass-II order")
    for field in schema:
        column = COLUMNS_BY_NAME.get(field.name)
        if column is None:
            continue
        want = arrow_type(column)
        got = field.type
        if pa.types.is_list(got) != column.is_list:
            problems.append(f"{field.name}: list-ness differs (want {want}, got {got})")
        elif column.is_list and got.value_type != want.value_type:
            problems.append(f"{field.name}: value type {got.value_type}, want {want.value_type}")
        elif not column.is_list and got != want:
            problems.append(f"{field.name}: type {got}, want {want}")
    return problems


def _scalar_array(values: np.ndarray | ak.Array, column: JetColumn) -> pa.Array:
    data = np.asarray(ak.to_numpy(values) if isinstance(values, ak.Array) else values)
    if data.ndim != 1:
        raise ValueError(f"column {column.name!r} must be one value per jet, got shape {data.shape}")
    return pa.array(data.astype(_NUMPY[column.dtype], copy=False), type=arrow_type(column))


def _list_array(values: tuple[np.ndarray, np.ndarray] | ak.Array, column: JetColumn) -> pa.Array:
    if isinstance(values, ak.Array):
        counts = ak.to_numpy(ak.num(values, axis=1))
        flat = ak.to_numpy(ak.flatten(values, axis=1))
    else:
        flat, counts = values
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    flat = np.asarray(flat).astype(_NUMPY[column.dtype], copy=False)
    if offsets[-1] != len(flat):
        raise ValueError(f"column {column.name!r}: counts sum to {offsets[-1]} but {len(flat)} values were given")
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(flat), type=arrow_type(column))


def jetclass2_table(columns: Mapping[str, object]) -> pa.Table:
    """Build a table in the exact JetClass-II schema.

    Scalar columns are 1-d arrays (one value per jet); list columns are either awkward `var * T`
    arrays or (flat values, counts per jet) pairs, which is how the builder produces them without ever
    materialising nested Python objects. Values are cast to the column type; a missing or extra name is
    an error, because a silently incomplete table would be a different dataset.
    """
    missing = [n for n in JETCLASS2_NAMES if n not in columns]
    extra = [n for n in columns if n not in COLUMNS_BY_NAME]
    if missing or extra:
        raise ValueError(f"JetClass-II columns: missing {missing}, unexpected {extra}")
    arrays = []
    for column in JETCLASS2_COLUMNS:
        value = columns[column.name]
        arrays.append(_list_array(value, column) if column.is_list else _scalar_array(value, column))
    lengths = {len(a) for a in arrays}
    if len(lengths) > 1:
        raise ValueError(f"JetClass-II columns disagree on the number of jets: {sorted(lengths)}")
    return pa.Table.from_arrays(arrays, schema=JETCLASS2_SCHEMA)


def empty_jetclass2_table() -> pa.Table:
    """A table with the JetClass-II schema and no rows (an input without selected jets)."""
    return JETCLASS2_SCHEMA.empty_table()

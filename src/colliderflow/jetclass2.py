"""JetClass-II's contracts that are pure names: the jet columns (names, list-ness, units) and the label table.

Both are file contracts shared by the jet ntuplizer, the weights stages, training and evaluation, and
both are what a config names (`jet_weights.vars`, `tagger.labels`, `jet_weights.class_weights`). They
live here, without numpy, awkward or arrow, so that the workflow's config checks (colliderflow.params)
can read them when the Snakefile is parsed. colliderflow.jetschema adds the arrow schema on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


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


# JetClass-II's label table (jet_label 0..187), as listed in the Sophon data configuration.
# fmt: off
_JETCLASS2_X = (
    "bb", "cc", "ss", "qq", "bc", "cs", "bq", "cq", "sq", "gg", "ee", "mm", "tauhtaue", "tauhtaum", "tauhtauh",
)
_JETCLASS2_XYY = (
    "bbbb", "bbcc", "bbss", "bbqq", "bbgg", "bbee", "bbmm", "bbtauhtaue", "bbtauhtaum", "bbtauhtauh", "bbb", "bbc",
    "bbs", "bbq", "bbg", "bbe", "bbm", "cccc", "ccss", "ccqq", "ccgg", "ccee", "ccmm", "cctauhtaue", "cctauhtaum",
    "cctauhtauh", "ccb", "ccc", "ccs", "ccq", "ccg", "cce", "ccm", "ssss", "ssqq", "ssgg", "ssee", "ssmm",
    "sstauhtaue", "sstauhtaum", "sstauhtauh", "ssb", "ssc", "sss", "ssq", "ssg", "sse", "ssm", "qqqq", "qqgg",
    "qqee", "qqmm", "qqtauhtaue", "qqtauhtaum", "qqtauhtauh", "qqb", "qqc", "qqs", "qqq", "qqg", "qqe", "qqm",
    "gggg", "ggee", "ggmm", "ggtauhtaue", "ggtauhtaum", "ggtauhtauh", "ggb", "ggc", "ggs", "ggq", "ggg", "gge",
    "ggm", "bee", "cee", "see", "qee", "gee", "bmm", "cmm", "smm", "qmm", "gmm", "btauhtaue", "ctauhtaue",
    "stauhtaue", "qtauhtaue", "gtauhtaue", "btauhtaum", "ctauhtaum", "stauhtaum", "qtauhtaum", "gtauhtaum",
    "btauhtauh", "ctauhtauh", "stauhtauh", "qtauhtauh", "gtauhtauh", "qqqb", "qqqc", "qqqs", "bbcq", "ccbs", "ccbq",
    "ccsq", "sscq", "qqbc", "qqbs", "qqcs", "bcsq", "bcs", "bcq", "bsq", "csq", "bcev", "csev", "bqev", "cqev",
    "sqev", "qqev", "bcmv", "csmv", "bqmv", "cqmv", "sqmv", "qqmv", "bctauev", "cstauev", "bqtauev", "cqtauev",
    "sqtauev", "qqtauev", "bctaumv", "cstaumv", "bqtaumv", "cqtaumv", "sqtaumv", "qqtaumv", "bctauhv", "cstauhv",
    "bqtauhv", "cqtauhv", "sqtauhv", "qqtauhv",
)
_JETCLASS2_QCD = (
    "bbccss", "bbccs", "bbcc", "bbcss", "bbcs", "bbc", "bbss", "bbs", "bb", "bccss", "bccs", "bcc", "bcss", "bcs",
    "bc", "bss", "bs", "b", "ccss", "ccs", "cc", "css", "cs", "c", "ss", "s", "light",
)
# fmt: on
JETCLASS2_LABELS: Final[tuple[str, ...]] = tuple(
    [f"label_X_{t}" for t in _JETCLASS2_X]
    + [f"label_X_YY_{t}" for t in _JETCLASS2_XYY]
    + [f"label_QCD_{t}" for t in _JETCLASS2_QCD]
)


def label_name(name: str) -> str:
    """A label-table name in its canonical `label_…` form (configs may leave the prefix out)."""
    return name if name.startswith("label_") else f"label_{name}"

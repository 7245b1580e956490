"""The jet ntuplizer's parameters: the flat `jets` config section (JetSection) → the nested JetParams.

Plain dataclasses and the label-name grammar only (no numpy, numba or awkward), so the Snakefile's config
check (colliderflow.workflow_config) builds them for every jet sample exactly as the ntuplize-jets job does,
and a run by hand with a bad `label_table` fails before any data is read. `jets` (the builder),
`jet_substructure` and `jet_labels` take their settings from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, make_dataclass
from typing import Any, Final

from colliderflow.jetclass2 import JETCLASS2_LABELS
from colliderflow.ntuplize.label_grammar import label_keys
from colliderflow.params import stage_params

_TAU_N: Final = (1, 2, 3, 4)
_AXES: Final = ("KT_Axes", "OnePass_KT_Axes")
_BACKENDS: Final = ("numba", "fastjet")


@dataclass(frozen=True)
class SubstructureParams:
    """Grooming and N-subjettiness settings (defaults: the JetClass-II / Delphes ones)."""

    softdrop_zcut: float = 0.1
    softdrop_beta: float = 0.0
    r0: float = 0.8
    tau_beta: float = 1.0
    tau_axes: str = "OnePass_KT_Axes"
    tau_n: tuple[int, ...] = (1, 2, 3, 4)
    backend: str = "numba"

    def __post_init__(self) -> None:
        if self.tau_axes not in _AXES:
            raise ValueError(f"tau_axes {self.tau_axes!r} is not one of {_AXES}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"substructure backend {self.backend!r} is not one of {_BACKENDS}")
        if any(int(n) < 1 for n in self.tau_n):
            raise ValueError(f"tau_n must be positive integers (or empty for soft drop only), got {self.tau_n}")
        if self.r0 <= 0 or self.softdrop_zcut < 0 or self.tau_beta <= 0:
            raise ValueError(
                f"need r0 > 0, softdrop_zcut >= 0, tau_beta > 0; got r0={self.r0}, "
                f"zcut={self.softdrop_zcut}, tau_beta={self.tau_beta}"
            )


@dataclass(frozen=True)
class LabelParams:
    """How jets are matched to truth (defaults: JetClass-II's resonances and AK8 radius)."""

    radius: float = 0.8
    res_x_pdgids: tuple[int, ...] = (25, 37)
    res_y_pdgids: tuple[int, ...] = (35, 37)
    assign_qcd_label: bool = True
    qcd_parton_min_pt: float = 5.0
    table: tuple[str, ...] = JETCLASS2_LABELS

    def __post_init__(self) -> None:
        if self.radius <= 0:
            raise ValueError(f"label radius must be > 0, got {self.radius}")


# Keys of the flat config mapping, and where each goes (the jet's own, SubstructureParams, LabelParams).
_OWN_KEYS: Final = (
    "radius",
    "min_pt",
    "max_abs_eta",
    "genjet_min_pt",
    "genjet_match_dr",
    "max_constituent_abs_eta",
    "max_constituent_abs_pz",
    "drop_unlabelled",
)
_SUBSTRUCTURE_KEYS: Final = {
    "softdrop_zcut": "softdrop_zcut",
    "softdrop_beta": "softdrop_beta",
    "tau_beta": "tau_beta",
    "tau_axes": "tau_axes",
    "substructure_backend": "backend",
}
_LABEL_KEYS: Final = {
    "res_x_pdgids": "res_x_pdgids",
    "res_y_pdgids": "res_y_pdgids",
    "assign_qcd_label": "assign_qcd_label",
    "qcd_parton_min_pt": "qcd_parton_min_pt",
    "label_table": "table",
}


@dataclass(frozen=True)
class JetParams:
    """Every choice that shapes the rows (defaults: JetClass-II's AK8 jets).

    `JetSection.build` (the config path) ties the soft-drop R0, the N-subjettiness R0 and the labelling
    radius to `radius`; code that builds the nested parameters itself keeps them consistent itself.
    """

    radius: float = 0.8
    min_pt: float = 120.0
    max_abs_eta: float = 2.5
    genjet_min_pt: float = 20.0
    genjet_match_dr: float = 0.8
    max_constituent_abs_eta: float = 5.0
    max_constituent_abs_pz: float = 10000.0
    drop_unlabelled: bool = True
    substructure: SubstructureParams = field(default_factory=SubstructureParams)
    labels: LabelParams = field(default_factory=LabelParams)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return (*_OWN_KEYS, *_SUBSTRUCTURE_KEYS, *_LABEL_KEYS)

    def __post_init__(self) -> None:
        if self.radius <= 0 or self.min_pt < 0 or self.max_abs_eta <= 0 or self.genjet_match_dr <= 0:
            raise ValueError(
                f"jet parameters: need radius > 0, min_pt >= 0, max_abs_eta > 0, genjet_match_dr > 0; got "
                f"{self.radius}, {self.min_pt}, {self.max_abs_eta}, {self.genjet_match_dr}"
            )
        if tuple(self.substructure.tau_n) != _TAU_N:
            raise ValueError(f"the JetClass-II layout stores τ_N for N = {_TAU_N}, not {self.substructure.tau_n}")


def _build_jet_params(section: JetSection) -> JetParams:
    """JetParams from the flat section: absent keys keep JetParams' defaults; the soft-drop R0, the
    N-subjettiness R0 and the labelling radius all follow `radius`; label_table is a list of names or
    "jetclass2" (the default 188-class table)."""
    params = {k: v for k in JetParams.keys() if (v := getattr(section, k)) is not None}
    own = {k: params[k] for k in _OWN_KEYS if k in params}
    radius = float(own.get("radius", JetParams.radius))
    own.setdefault("genjet_match_dr", radius)
    sub = {v: params[k] for k, v in _SUBSTRUCTURE_KEYS.items() if k in params}
    lab = {v: params[k] for k, v in _LABEL_KEYS.items() if k in params}
    table = lab.get("table", "jetclass2")
    lab["table"] = JETCLASS2_LABELS if table == "jetclass2" else tuple(table)
    for key in ("res_x_pdgids", "res_y_pdgids"):
        if key in lab:
            lab[key] = tuple(int(v) for v in lab[key])
    built = JetParams(
        **own,
        substructure=SubstructureParams(r0=radius, **sub),
        labels=LabelParams(radius=radius, **lab),
    )
    label_keys(built.labels.table)  # a bad table fails here (and in the dry run), not after reading data
    return built


def _check_jet_section(section: JetSection, where: str) -> None:
    try:
        _build_jet_params(section)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


# The flat `jets` section as the jet ntuplizer reads it (a sample's jet_truth adds res_x/res_y_pdgids): one
# field per key of JetParams.keys(), None when absent. Built by colliderflow.params.stage_params, which names
# an unknown key; `build()` gives the nested JetParams.
JetSection = make_dataclass(
    "JetSection",
    [(k, Any, field(default=None)) for k in (*_OWN_KEYS, *_SUBSTRUCTURE_KEYS, *_LABEL_KEYS)],
    frozen=True,
    kw_only=True,
    namespace={"check": _check_jet_section, "build": _build_jet_params},
)


def jet_params_from_section(params: Mapping[str, Any], *, where: str = "jets") -> JetParams:
    """The one config path to JetParams: the section checked (stage_params), then built."""
    return stage_params(JetSection, params, where=where).build()

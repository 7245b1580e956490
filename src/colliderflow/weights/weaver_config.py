"""A weaver-core data config for our JetClass-II jet files, so that weaver trains on them unchanged.

The layout follows weaver-core's data configs (selection, new_variables, preprocess, inputs, labels,
observers, weights) and the particle inputs of the JetClass / JetClass-II configs of particle_transformer
and Sophon: pf_points (Δη, Δφ), pf_features (log pT, log E, relative logs, ΔR, charge, PID flags,
tanh-squashed impact parameters and their errors, Δη, Δφ), pf_vectors (four-momenta) and pf_mask.

Labels. Our files store the class as one integer, `jet_label` (its position in the label table);
weaver's `type: simple` labels are one boolean column per class. `new_variables` defines each as
`jet_label == k`, and the selection keeps only jets of the listed classes, so that every jet has exactly
one true label (a jet of another class would otherwise read as class 0).

Weights. The block mirrors the project's `weights` section: method → reweight_method, vars →
reweight_vars (two scalar jet columns with their bin edges), class_weights → reweight_classes and
class_weights in the same order, discard_under_overflow → reweight_discard_under_overflow. Our threshold
is a fraction, weaver's `reweight_threshold` the same number in percent (0.1 → 10).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import yaml

from colliderflow.io.atomic import atomic_path
from colliderflow.jetclass2 import JETCLASS2_LABELS, label_name
from colliderflow.params import ConfigError, WeaverConfigParams, stage_params

# Derived per-particle variables, as in the JetClass-II data config (all from JetClass-II columns).
PARTICLE_VARIABLES: Final[dict[str, str]] = {
    "part_mask": "ak.ones_like(part_energy)",
    "part_pt": "np.hypot(part_px, part_py)",
    "part_pt_log": "np.log(part_pt)",
    "part_e_log": "np.log(part_energy)",
    "part_logptrel": "np.log(part_pt/jet_pt)",
    "part_logerel": "np.log(part_energy/jet_energy)",
    "part_deltaR": "np.hypot(part_deta, part_dphi)",
    "part_d0": "np.tanh(part_d0val)",
    "part_dz": "np.tanh(part_dzval)",
}
# [name, subtract_by, multiply_by(, clip_min, clip_max)]: weaver's manual standardisation.
PF_FEATURES: Final[tuple[list[Any], ...]] = (
    ["part_pt_log", 1.7, 0.7],
    ["part_e_log", 2.0, 0.7],
    ["part_logptrel", -4.7, 0.7],
    ["part_logerel", -4.7, 0.7],
    ["part_deltaR", 0.2, 4.0],
    ["part_charge", None],
    ["part_isChargedHadron", None],
    ["part_isNeutralHadron", None],
    ["part_isPhoton", None],
    ["part_isElectron", None],
    ["part_isMuon", None],
    ["part_d0", None],
    ["part_d0err", 0, 1, 0, 1],
    ["part_dz", None],
    ["part_dzerr", 0, 1, 0, 1],
    ["part_deta", None],
    ["part_dphi", None],
)
OBSERVERS: Final = (
    "jet_pt",
    "jet_eta",
    "jet_phi",
    "jet_energy",
    "jet_sdmass",
    "jet_nparticles",
    "jet_tau1",
    "jet_tau2",
    "jet_tau3",
    "jet_tau4",
    "jet_label",
)
def weaver_data_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """The data config as a mapping (see the module docstring); ValueError naming a bad parameter.

    params: the `weights` section (method, vars, class_weights, threshold, discard_under_overflow,
    optional class_column = jet_label) plus optional `labels` (classes to train on, in output order;
    default: the class_weights classes), `label_table` ("jetclass2" or the list of names the jets were
    labelled with), `length` (particles per jet, default 128), `data_fraction` (default 1) and
    `selection` (an extra weaver expression, and-ed with the label selection).
    """
    p = stage_params(WeaverConfigParams, params, where="jet_weights")
    table = [label_name(n) for n in (JETCLASS2_LABELS if p.label_table == "jetclass2" else p.label_table)]
    classes = [label_name(c) for c in p.class_weights]
    labels = [label_name(n) for n in (p.labels if p.labels is not None else list(p.class_weights))]
    for name in {*classes, *labels} - set(table):
        raise ConfigError(f"jet_weights: class {name!r} is not in the label table")
    if missing := [c for c in classes if c not in labels]:
        raise ConfigError(f"jet_weights.class_weights: reweighted classes {missing} are not among the labels")
    if len(set(labels)) != len(labels):
        raise ConfigError(f"tagger.labels: labels repeat a class: {labels}")
    index = {name: i for i, name in enumerate(table)}
    selection = f"np.isin(jet_label, {[index[n] for n in labels]})"
    if p.selection:
        selection = f"({selection}) & ({p.selection})"
    length = p.length

    def block(vars_: Sequence[Any], pad_mode: str = "wrap") -> dict[str, Any]:
        return {"length": length, "pad_mode": pad_mode, "vars": [list(v) for v in vars_]}

    return {
        "selection": selection,
        "new_variables": {**PARTICLE_VARIABLES, **{n: f"jet_label == {index[n]}" for n in labels}},
        "preprocess": {"method": "manual", "data_fraction": float(p.data_fraction)},
        "inputs": {
            "pf_points": block([["part_deta", None], ["part_dphi", None]]),
            "pf_features": block(PF_FEATURES),
            "pf_vectors": block([[f"part_{c}", None] for c in ("px", "py", "pz", "energy")]),
            "pf_mask": block([["part_mask", None]], pad_mode="constant"),
        },
        "labels": {"type": "simple", "value": labels},
        "observers": list(OBSERVERS),
        "weights": {
            "use_precomputed_weights": False,
            "reweight_method": p.method,
            "reweight_vars": {name: [float(e) for e in edges] for name, edges in p.vars.items()},
            "reweight_classes": classes,
            "class_weights": [float(w) for w in p.class_weights.values()],
            # Absent keys take the weights stages' defaults (weaver's own, WeightsParams), so both sides weigh alike.
            "reweight_threshold": 100.0 * float(p.threshold),
            "reweight_discard_under_overflow": bool(p.discard_under_overflow),
            "reweight_hists": None,
        },
    }


def write_weaver_config(path: Path, *, params: Mapping[str, Any]) -> dict[str, Any]:
    """Write the weaver data config YAML to `path` (atomically) and return what was written."""
    config = weaver_data_config(params)
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return config

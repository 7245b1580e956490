"""The whole config as the Snakefile checks it: every stage's dataclass built, as each job will build it.

`colliderflow.params.check_config` checks the sections whose dataclasses live in params.py; the training,
model, loss, jet-ntuplizer and backend sections have their dataclasses beside their stages (train/config.py,
models/configs.py, ntuplize/jet_params.py, generate/backends/options.py: plain dataclasses, no torch, numba
or numpy). This module sits above all of them, so that the arrows still point down: it builds every one of
them through `stage_params`, from the section each job is given (`training_section`, `jet_ntuplizer_section`,
which rules/common.smk uses for the jobs' params too), and turns the first mistake into one ConfigError line
naming the key as the user wrote it. The Snakefile calls `check_workflow_config` right after the schema
validation, so `snakemake -n` stops on a mistake that would otherwise stop a job hours later.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from colliderflow.generate.backends.options import BACKEND_OPTIONS
from colliderflow.generate.processes import PP_JET_RESONANCES
from colliderflow.jetclass2 import label_name
from colliderflow.models.configs import MODEL_CONFIGS
from colliderflow.ntuplize.jet_params import JetSection
from colliderflow.params import ConfigError, check_config, stage_params
from colliderflow.train.config import LossConfig, train_params

JET_DATASET_KEYS = ("split_fractions", "jets_per_file")  # of `jets`: the dataset's, not the ntuplizer's


def training_section(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The training parameters of one model: `train` for the PF model; for a tagger, `tagger` with its model
    named and without the other taggers' architectures (so tuning one retrains only that one)."""
    if model == config["train"]["model"]:
        return dict(config["train"])
    own = {k: v for k, v in config["tagger"].items() if k not in ("models", "part", "pelican") or k == model}
    return {**own, "model": model}


def jet_ntuplizer_section(config: Mapping[str, Any], sample: str) -> dict[str, Any]:
    """The jet ntuplizer's parameters for a sample: `jets` less the dataset keys, plus the sample's truth
    (`jet_truth`, else the resonances of its process, processes.PP_JET_RESONANCES)."""
    own = config["samples"][sample]
    jets = {k: v for k, v in config["jets"].items() if k not in JET_DATASET_KEYS}
    truth = own.get("jet_truth", PP_JET_RESONANCES.get(own["process"], {}))
    return {**jets, **truth}


def _check_training(config: Mapping[str, Any], model: str) -> None:
    section = training_section(config, model)
    cfg = train_params(section)
    where = cfg.section
    stage_params(MODEL_CONFIGS[cfg.model], section.get(cfg.model), where=f"{where}.{cfg.model}")
    if where == "train":
        stage_params(LossConfig, section.get("loss"), where="train.loss")


def _check_jets(config: Mapping[str, Any], jet_samples: list[str]) -> None:
    for sample in jet_samples:
        section = jet_ntuplizer_section(config, sample)
        stage_params(JetSection, section, where="jets").build()  # as the sample's ntuplize-jets job does
    if config["jets"].get("assign_qcd_label", True) is False:
        qcd = [name for name in config["tagger"]["labels"] if label_name(str(name)).startswith("label_QCD_")]
        if qcd:
            raise ConfigError(f"jets.assign_qcd_label: false gives no jet a QCD label, but tagger.labels names "
                              f"{', '.join(map(str, qcd))}: set it true or train on resonance labels only")


def check_workflow_config(config: Mapping[str, Any]) -> None:
    """Every stage's params built from the schema-valid config; ConfigError naming the key at the first mistake."""
    check_config(config)
    samples = config["samples"]
    jet_samples = sorted(s for s, v in samples.items() if v.get("dataset", "pf") == "jets")
    try:
        for name in sorted(samples):
            backend = samples[name]["backend"]
            if backend in BACKEND_OPTIONS:
                stage_params(BACKEND_OPTIONS[backend], samples[name].get(backend), where=f"samples.{name}.{backend}")
        if any(v.get("dataset", "pf") == "pf" for v in samples.values()):
            _check_training(config, config["train"]["model"])
        if jet_samples:
            for model in config["tagger"]["models"]:
                _check_training(config, model)
            _check_jets(config, jet_samples)
    except ConfigError:
        raise
    except ValueError as exc:  # the stages' checks raise ValueError naming the key; the Snakefile wants one type
        raise ConfigError(str(exc)) from None

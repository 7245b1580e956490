"""Config mistakes that the config alone reveals stop the dry run with one line naming the key.

Each probe is a mistake that once passed `snakemake -n` and failed only after generation (hours, at
production scale), or drowned its one line in a dump of the schema. The checks are the stages' own
(colliderflow.params), so the same mistake given to a stage by hand fails the same way.
"""

from __future__ import annotations

import pytest
import yaml
from workflow_api import ROOT, copy_project, dry_run, run_snakemake

from colliderflow.params import ConfigError, check_config
from colliderflow.workflow_config import check_workflow_config


def _ci_config() -> dict:
    return yaml.safe_load((ROOT / "config/ci.yaml").read_text())


def _set(path: str, value):
    """A mutation setting the config key `a.b.c` to `value`."""
    *parents, last = path.split(".")

    def mutate(config: dict) -> None:
        node = config
        for key in parents:
            node = node[key]
        node[last] = value
    return mutate


# (probe, mutation, the line the user must see)
PROBES = [
    ("ntuplize fractions", _set("ntuplize.split_fractions", {"train": 0.6, "val": 0.3, "test": 0.3}),
     "ntuplize.split_fractions: fractions must sum to 1, got train 0.6 + val 0.3 + test 0.3 = 1.2"),
    ("jets fractions", _set("jets.split_fractions", {"train": 0.5, "val": 0.1, "test": 0.1}),
     "jets.split_fractions: fractions must sum to 1, got train 0.5 + val 0.1 + test 0.1 = 0.7"),
    ("tagger label", _set("tagger.labels", ["label_X_YY_qqb", "label_X_qq", "label_QCD_lite"]),
     "tagger.labels: 'label_QCD_lite' is not in the JetClass-II label table"),
    ("weights class", _set("weights.class_weights", {"ttbar": 1.0, "qq": 1.0, "zz": 1.0}),
     "weights.class_weights: 'zz' is not a particle-flow sample of `samples` (known: qq, ttbar, ww)"),
    ("jet_weights class", _set("jet_weights.class_weights", {"label_X_YY_qqb": 1.0, "label_X_zz": 1.0}),
     "jet_weights.class_weights: 'label_X_zz' is not in the JetClass-II label table"),
    ("jet_weights class not trained", _set("jet_weights.class_weights", {"label_X_YY_qqb": 1.0, "label_X_bb": 1.0}),
     "jet_weights.class_weights: 'label_X_bb' is not one of tagger.labels"),
    ("weights var", _set("weights.vars", {"n_element": [0, 100, 300], "genmet": [0, 10, 400]}),
     "weights.vars: 'n_element' is not a numeric per-event column of the ntuples"),
    ("weights class_column", _set("weights.class_column", "samples"),
     "weights.class_column: 'samples' is not a per-event column of the ntuples"),
    ("jet_weights var", _set("jet_weights.vars", {"jet_pt": [200, 400, 800], "jet_mass": [0, 100, 300]}),
     "jet_weights.vars: 'jet_mass' is not a per-jet JetClass-II column"),
    ("unsorted weights edges", _set("weights.vars", {"n_elements": [0, 100, 60, 300], "genmet": [0, 10, 400]}),
     "weights.vars.n_elements: bin edges must increase strictly, got [0, 100, 60, 300]"),
    ("unsorted jet_weights edges", _set("jet_weights.vars", {"jet_pt": [200, 800, 400], "jet_sdmass": [0, 300]}),
     "jet_weights.vars.jet_pt: bin edges must increase strictly, got [200, 800, 400]"),
    ("unsorted evaluate bins", _set("evaluate.jet_pt_bins", [10, 40, 20, 200]),
     "evaluate.jet_pt_bins: bin edges must increase strictly, got [10, 40, 20, 200]"),
    ("tagging class", _set("evaluate.tagging", {"qcd_classes": ["QCD_bb"]}),
     "evaluate.tagging.qcd_classes: 'QCD_bb' is not one of the tagger's labels"),
    # The training, model and jet-ntuplizer sections: their dataclasses live beside their stages
    # (train/config.py, models/configs.py, ntuplize/jet_params.py), built by colliderflow.workflow_config.
    ("train model heads", _set("train.mlpf.num_heads", 3),
     "train.mlpf: embedding_dim=32 not divisible by num_heads=3"),
    ("tagger model heads", _set("tagger.part.num_heads", 3),
     "tagger.part: embedding_dim=16 not divisible by num_heads=3"),
    ("tagger dropout", _set("tagger.part.dropout", 1.0),
     "tagger.part.dropout: expected a value in [0, 1), got 1.0"),
    ("jets without QCD labels", _set("jets.assign_qcd_label", False),
     "jets.assign_qcd_label: false gives no jet a QCD label, but tagger.labels names label_QCD_light"),
]


@pytest.mark.parametrize(("mutate", "line"), [p[1:] for p in PROBES], ids=[p[0] for p in PROBES])
def test_dry_run_stops_naming_the_key(tmp_path, mutate, line):
    """Through the Snakemake API, as `snakemake -n` runs it: no job is planned and the error is the line."""
    workdir = copy_project(tmp_path / "wf")
    config = _ci_config()
    mutate(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(Exception) as info, dry_run(workdir, [bad]):
        pass
    assert line in str(info.value), str(info.value)[-2000:]
    assert not (workdir / "results").exists()


def test_the_shipped_configs_pass():
    for name in ("config/config.yaml", "config/ci.yaml"):
        check_config(yaml.safe_load((ROOT / name).read_text()))
        check_workflow_config(yaml.safe_load((ROOT / name).read_text()))


def test_the_dry_runs_model_check_is_the_models_own():
    """The dry run builds the model's config as the train job's build_model does: the same line either way."""
    from colliderflow.models import build_model
    from colliderflow.workflow_config import training_section

    config = _ci_config()
    config["tagger"]["part"]["num_heads"] = 3
    with pytest.raises(ConfigError) as from_config:
        check_workflow_config(config)
    with pytest.raises(ValueError) as from_stage:
        build_model(training_section(config, "part"))
    assert str(from_config.value) == str(from_stage.value)


def test_the_dry_runs_jet_check_is_the_ntuplizers_own():
    """The check builds every jet sample's JetParams from the section its ntuplize-jets job gets (`jets` and
    the sample's truth), with the ntuplizer's own line. (The schema stops a radius of 0 first; here the check
    runs alone, to show it is the ntuplizer's.)"""
    from colliderflow.ntuplize.jet_params import jet_params_from_section
    from colliderflow.workflow_config import jet_ntuplizer_section

    config = _ci_config()
    config["jets"]["radius"] = 0.0
    with pytest.raises(ValueError) as from_stage:
        jet_params_from_section(jet_ntuplizer_section(config, "pp_qcd"))
    with pytest.raises(ConfigError) as from_config:
        check_workflow_config(config)
    assert str(from_config.value) == str(from_stage.value)
    assert str(from_config.value).startswith("jets: ")


def test_a_check_is_the_stages_own():
    """The dry run's check and the stage's CLI boundary share one function: the same line either way."""
    from colliderflow.params import EventWeightsParams, stage_params

    config = _ci_config()
    config["weights"]["vars"] = {"n_elements": [0, 100, 60, 300], "genmet": [0, 10, 400]}
    with pytest.raises(ConfigError) as from_config:
        check_config(config)
    with pytest.raises(ConfigError) as from_stage:
        stage_params(EventWeightsParams, config["weights"], where="weights")  # as colliderflow.weights.files
    assert str(from_config.value) == str(from_stage.value)


@pytest.mark.parametrize(("mutate", "line"), [
    (_set("weights.treshold", 0.1), "weights: Additional properties are not allowed ('treshold' was unexpected)"),
    (_set("weights.method", "flatt"), "weights.method: 'flatt' is not one of ['flat', 'ref']"),
    (_set("ntuplize.split_fractions", {"train": 0.6, "val": 0.3, "test": 0.3}),
     "ntuplize.split_fractions: fractions must sum to 1"),
])
def test_the_user_sees_one_line_not_a_schema_dump(tmp_path, mutate, line):
    """On the command line: the message and Snakemake's pointer to the Snakefile, nothing of the schema."""
    workdir = copy_project(tmp_path / "wf")
    config = _ci_config()
    mutate(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config, sort_keys=False))
    result = run_snakemake(workdir, "-n", "--configfile", str(bad), timeout=120)
    assert result.returncode != 0
    lines = [x for x in (result.stdout + result.stderr).splitlines() if x.strip()]
    assert any(line in x for x in lines), lines
    assert len(lines) <= 4, lines  # "ConfigError in file …, line N:", the line, the Snakefile frame
    assert not any("schema[" in x or "Failed validating" in x for x in lines)


def test_the_params_dataclasses_and_the_schema_agree():
    """The schema owns the keys; each stage's dataclass must know exactly those its section may hold."""
    import dataclasses

    from colliderflow.params import (
        EvaluateParams,
        JetDatasetParams,
        JetWeightsParams,
        SplitFractions,
        TaggingParams,
        WeightsParams,
    )

    props = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]

    def keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    assert keys(WeightsParams) == set(props["weights"]["properties"])
    assert keys(JetWeightsParams) == set(props["jet_weights"]["properties"]) | {"class_column"}  # fixed: jet_label
    assert keys(SplitFractions) == set(props["ntuplize"]["properties"]["split_fractions"]["properties"])
    assert keys(SplitFractions) == set(props["jets"]["properties"]["split_fractions"]["properties"])
    assert keys(JetDatasetParams) <= set(props["jets"]["properties"])
    evaluate = set(props["evaluate"]["properties"]) - {"tagging"}
    assert keys(EvaluateParams) == evaluate | {"jets", "sqrt_s"}  # the two the evaluate rule adds
    assert keys(TaggingParams) == set(props["evaluate"]["properties"]["tagging"]["properties"])


def test_the_event_stages_params_and_the_schema_agree():
    """generate, ntuplize (with its jets and baseline) and the validation thresholds."""
    import dataclasses

    from colliderflow.kinematics import EVENT_JETS
    from colliderflow.ntuplize.baseline import BaselineParams
    from colliderflow.ntuplize.validate import ValidationParams
    from colliderflow.params import EVENT_JET_KEYS, GenerateParams, NtuplizeParams

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]

    def keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    assert keys(GenerateParams) == set(props["generate"]["properties"])
    ntuplize = props["ntuplize"]["properties"]
    assert keys(NtuplizeParams) == set(ntuplize)
    assert set(EVENT_JET_KEYS) == set(ntuplize["jets"]["properties"]) == set(ntuplize["jets"]["required"])
    assert set(EVENT_JETS) == set(EVENT_JET_KEYS)
    assert EVENT_JETS["algorithm"] in ntuplize["jets"]["properties"]["algorithm"]["enum"]
    assert keys(BaselineParams) == set(ntuplize["baseline"]["properties"])
    assert keys(ValidationParams) == set(schema["$defs"]["validation_thresholds"]["properties"])


def test_the_jet_ntuplizer_section_and_the_schema_agree():
    """`jets` less the dataset's keys, plus a sample's `jet_truth`; `label_table` is for runs by hand."""
    import dataclasses

    from colliderflow.ntuplize.jet_params import JetSection

    props = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    truth = props["samples"]["additionalProperties"]["properties"]["jet_truth"]["properties"]
    fields = {f.name for f in dataclasses.fields(JetSection)}
    assert fields == set(props["jets"]["properties"]) - {"split_fractions", "jets_per_file"} | set(truth) | {
        "label_table"}


def test_the_training_dataclasses_and_the_schema_agree():
    """`train` and `tagger` (less `models`, plus the `model` the rule names) are one TrainConfig: it knows
    exactly their keys, and the keys of only one of them are the ones train_params refuses in the other."""
    import dataclasses

    from colliderflow.models import MLPFConfig, ParTConfig, PELICANConfig
    from colliderflow.train.config import PF_ONLY_KEYS, TAGGER_ONLY_KEYS, TrainConfig
    from colliderflow.train.losses import LossConfig

    props = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]

    def keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    train = set(props["train"]["properties"])
    tagger = set(props["tagger"]["properties"]) - {"models"} | {"model"}
    assert keys(TrainConfig) == train | tagger
    assert train - tagger == PF_ONLY_KEYS
    assert tagger - train == TAGGER_ONLY_KEYS
    assert keys(LossConfig) == set(props["train"]["properties"]["loss"]["properties"])
    # The models' sections; the sizes that follow from the data (classes, input features) are not config keys.
    assert keys(MLPFConfig) == set(props["train"]["properties"]["mlpf"]["properties"])
    assert keys(ParTConfig) == set(props["tagger"]["properties"]["part"]["properties"]) | {"num_features", "num_classes"}
    assert keys(PELICANConfig) == set(props["tagger"]["properties"]["pelican"]["properties"]) | {"num_classes"}


def test_the_backend_options_and_the_schema_agree():
    """`samples.<name>.delphes` (with its pileup) and `samples.<name>.key4hep`: keys and required keys."""
    import dataclasses

    from colliderflow.generate.backends.options import (
        BACKEND_OPTIONS,
        DelphesOptions,
        Key4hepOptions,
        PileupOptions,
    )

    sample = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]["samples"]
    props = sample["additionalProperties"]["properties"]

    def keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def required(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}

    assert keys(DelphesOptions) == set(props["delphes"]["properties"])
    assert keys(PileupOptions) == set(props["delphes"]["properties"]["pileup"]["properties"])
    assert keys(Key4hepOptions) == set(props["key4hep"]["properties"])
    assert required(Key4hepOptions) == set(props["key4hep"]["required"])
    assert required(DelphesOptions) == set(props["delphes"].get("required", ())) == set()
    assert set(BACKEND_OPTIONS) == set(props["backend"]["enum"]) - {"builtin"}


def test_the_weaver_config_params_and_the_schema_agree():
    import dataclasses

    from colliderflow.params import WeaverConfigParams, weaver_section

    props = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    fields = {f.name for f in dataclasses.fields(WeaverConfigParams)}
    # jet_weights, plus what weaver_section adds from `tagger`, plus the stage's own options for a run by hand
    assert fields == set(props["jet_weights"]["properties"]) | {"class_column", "labels", "length", "label_table",
                                                                 "data_fraction", "selection"}
    assert set(weaver_section(_ci_config())) <= fields


@pytest.mark.parametrize(("params", "line"), [
    ({"model": "mlpf", "bucket_batches": 2}, "train: unknown keys ['bucket_batches'] for model 'mlpf'"),
    ({"model": "mlpf", "task": "tagging"}, "train: unknown keys ['task']"),
    ({"model": "part", "task": "pf"}, "tagger: unknown keys ['task']"),
    ({"model": "part", "loss": {}}, "tagger: unknown keys ['loss'] for model 'part'"),
    ({"model": "part", "labels": ["X_bb", "QCD_lite"]}, "tagger.labels: 'QCD_lite' is not a JetClass-II label name"),
    ({"model": "pelican", "batch_size": 0}, "tagger.batch_size: expected a positive integer, got 0"),
    ({"model": "mlpf", "batch_size": 0}, "train.batch_size: expected a positive integer, got 0"),
])
def test_training_params_take_only_their_sections_keys_and_name_it(params, line):
    """The schema rejects `task` everywhere and `bucket_batches` in `train`; so does the train stage, and a
    tagger's mistakes are named under `tagger`, where the user wrote them."""
    from colliderflow.train.config import train_params

    with pytest.raises(ValueError) as info:
        train_params(params)
    assert str(info.value).startswith(line), str(info.value)


def test_a_tagger_model_section_is_named_under_tagger():
    from colliderflow.models import build_model

    with pytest.raises(ValueError, match=r"^tagger\.part: unknown keys \['depth'\]"):
        build_model({"model": "part", "part": {"depth": 3}})

"""One typed params path per stage: a config section → the stage's dataclass, checked in one place.

The JSON schema (workflow/schemas/config.schema.yaml) owns structure: keys, types, enums, defaults.
What the schema cannot say lives here, as each stage's dataclass and its `check`: fractions that must
sum to 1, bin edges that must increase, class names that must be samples or JetClass-II labels,
columns that must exist. `stage_params` is the one way to build such a dataclass; the stage calls it at
its CLI boundary on its `--params`, and the Snakefile calls the same checks through `check_config` right
after the schema validation, so a mistake that the config alone reveals stops the dry run, not a job
hours later. Errors name the key as the user wrote it (`tagger.labels`, `jet_weights.vars.jet_ptt`).

This module is imported when the Snakefile is parsed: it must stay free of numpy, arrow, torch and
matplotlib (the contracts it reads, colliderflow.schema and colliderflow.jetclass2, are pure names).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final, TypeVar

from colliderflow.config import dataclass_from_section
from colliderflow.jetclass2 import COLUMNS_BY_NAME, JETCLASS2_LABELS, label_name
from colliderflow.schema import EVENT_COLUMNS, EVENT_SCALAR_COLUMNS, SPLITS

T = TypeVar("T")

METHODS: Final = ("flat", "ref")
JET_CLASS_COLUMN: Final = "jet_label"
_SUM_TOLERANCE: Final = 1e-6


class ConfigError(ValueError):
    """A config value a stage cannot run with; the message starts with the key path."""


def stage_params(cls: type[T], section: Mapping[str, Any] | None, *, where: str) -> T:
    """The stage's typed params from its section: unknown or missing keys named, then its cross-field check.

    where: the section's key path in the config (`weights`, `jets.split_fractions`), the prefix of every
    error message.
    """
    section = {} if section is None else section
    if isinstance(section, Mapping):
        required = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in section]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        params = dataclass_from_section(cls, section, where=where)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    params.check(where)  # type: ignore[attr-defined]
    return params


# --------------------------------------------------------------------------------------------------
# Small shared rules
# --------------------------------------------------------------------------------------------------
def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def check_edges(edges: Any, where: str) -> list[float]:
    """Bin edges: at least two finite numbers, strictly increasing."""
    if not isinstance(edges, Sequence) or isinstance(edges, str) or len(edges) < 2:
        raise ConfigError(f"{where}: expected a list of at least 2 bin edges, got {edges!r}")
    values = [_number(e, where) for e in edges]
    if not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{where}: bin edges must be finite, got {list(edges)}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"{where}: bin edges must increase strictly, got {list(edges)}")
    return values


def _one_of(name: str, known: Collection[str], where: str, what: str) -> None:
    if name not in known:
        raise ConfigError(f"{where}: {name!r} is not {what} (known: {', '.join(sorted(known))})")


def check_labels(labels: Sequence[Any], where: str) -> list[str]:
    """JetClass-II label names (the `label_` prefix optional) in their canonical form; each once."""
    table = set(JETCLASS2_LABELS)
    out = []
    for name in labels:
        if not isinstance(name, str) or label_name(name) not in table:
            close = difflib.get_close_matches(label_name(str(name)), JETCLASS2_LABELS, n=3)
            hint = f"; closest: {', '.join(close)}" if close else " such as label_X_bb, label_QCD_light"
            raise ConfigError(f"{where}: {name!r} is not in the JetClass-II label table ({len(table)} names{hint})")
        out.append(label_name(name))
    if len(set(out)) != len(out):
        raise ConfigError(f"{where}: names a label twice: {list(labels)}")
    return out


# --------------------------------------------------------------------------------------------------
# The stages' params
# --------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SplitFractions:
    """train/val/test fractions of a dataset (ntuplize.split_fractions, jets.split_fractions)."""

    train: float
    val: float
    test: float

    def check(self, where: str) -> None:
        values = [_number(getattr(self, s), f"{where}.{s}") for s in SPLITS]
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ConfigError(f"{where}: fractions must be finite and ≥ 0, got {self.as_dict()}")
        if abs(sum(values) - 1.0) > _SUM_TOLERANCE:
            terms = " + ".join(f"{s} {v:g}" for s, v in zip(SPLITS, values))
            raise ConfigError(f"{where}: fractions must sum to 1, got {terms} = {sum(values):g}")

    def as_dict(self) -> dict[str, float]:
        return {s: float(getattr(self, s)) for s in SPLITS}


EVENT_JET_KEYS: Final = ("algorithm", "radius", "p", "min_pt")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerateParams:
    """The `generate` section as one sample's generate jobs see it (its own sqrt_s, when it sets one)."""

    sqrt_s: float
    detector: str

    def check(self, where: str) -> None:
        sqrt_s = _number(self.sqrt_s, f"{where}.sqrt_s")
        if not math.isfinite(sqrt_s) or sqrt_s <= 0:
            raise ConfigError(f"{where}.sqrt_s: must be a positive number of GeV, got {self.sqrt_s!r}")
        if not isinstance(self.detector, str) or not self.detector:
            raise ConfigError(f"{where}.detector: must be a detector name, got {self.detector!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class NtuplizeParams:
    """The `ntuplize` section; absent keys take the stage's defaults (colliderflow.ntuplize.events), the
    jet definition kinematics.EVENT_JETS. `validation` belongs to the validate stage (ntuplize.validate)."""

    split_fractions: Mapping[str, float] | None = None
    jets: Mapping[str, Any] | None = None
    baseline: Mapping[str, float] | None = None
    bfield_tesla: float | None = None
    validation: Mapping[str, Any] | None = None

    def check(self, where: str) -> None:
        if self.split_fractions is not None:
            stage_params(SplitFractions, self.split_fractions, where=f"{where}.split_fractions")
        if self.jets is not None:
            if not isinstance(self.jets, Mapping) or set(self.jets) != set(EVENT_JET_KEYS):
                raise ConfigError(f"{where}.jets: must have exactly the keys {', '.join(EVENT_JET_KEYS)}, "
                                  f"got {self.jets!r}")
            if not isinstance(self.jets["algorithm"], str):
                raise ConfigError(f"{where}.jets.algorithm: expected a name, got {self.jets['algorithm']!r}")
            for key in EVENT_JET_KEYS[1:]:
                _number(self.jets[key], f"{where}.jets.{key}")
        if self.baseline is not None and not isinstance(self.baseline, Mapping):
            raise ConfigError(f"{where}.baseline: expected a mapping, got {self.baseline!r}")
        if self.bfield_tesla is not None and not _number(self.bfield_tesla, f"{where}.bfield_tesla") > 0:
            raise ConfigError(f"{where}.bfield_tesla: must be a positive number of tesla, got {self.bfield_tesla!r}")


@dataclasses.dataclass(frozen=True)
class JetDatasetParams:
    """The jet-dataset stage: `jets.split_fractions` and `jets.jets_per_file`."""

    split_fractions: Mapping[str, float]
    jets_per_file: int

    def check(self, where: str) -> None:
        stage_params(SplitFractions, self.split_fractions, where=f"{where}.split_fractions")
        if isinstance(self.jets_per_file, bool) or not isinstance(self.jets_per_file, int) or self.jets_per_file < 1:
            raise ConfigError(f"{where}.jets_per_file: expected a positive integer, got {self.jets_per_file!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeightsParams:
    """The `weights` section (event-level datasets); weaver's semantics and defaults (weights/histogram.py)."""

    method: str
    class_column: str
    vars: Mapping[str, Sequence[float]]
    class_weights: Mapping[str, float]
    threshold: float = 0.1
    discard_under_overflow: bool = True

    def check(self, where: str) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"{where}.method: {self.method!r} is not one of {', '.join(METHODS)}")
        if not isinstance(self.class_column, str):
            raise ConfigError(f"{where}.class_column: expected a column name, got {self.class_column!r}")
        if not isinstance(self.vars, Mapping) or len(self.vars) != 2:
            got = list(self.vars) if isinstance(self.vars, Mapping) else self.vars
            raise ConfigError(f"{where}.vars: exactly 2 variables with bin edges are needed, got {got!r}")
        for name, edges in self.vars.items():
            check_edges(edges, f"{where}.vars.{name}")
        if not isinstance(self.class_weights, Mapping) or not self.class_weights:
            raise ConfigError(f"{where}.class_weights: must map each class (a {self.class_column} value) to a weight")
        for name, weight in self.class_weights.items():
            w = _number(weight, f"{where}.class_weights.{name}")
            if not math.isfinite(w) or w <= 0:
                raise ConfigError(f"{where}.class_weights.{name}: must be a positive number, got {weight!r}")
        t = _number(self.threshold, f"{where}.threshold")
        if not 0.0 <= t <= 1.0:
            raise ConfigError(f"{where}.threshold: must be a fraction in [0, 1], got {self.threshold!r} "
                              "(weaver's reweight_threshold is in percent: 10 there is 0.1 here)")
        if not isinstance(self.discard_under_overflow, bool):
            raise ConfigError(f"{where}.discard_under_overflow: must be true or false, "
                              f"got {self.discard_under_overflow!r}")

    def check_columns(self, columns: Collection[str], where: str, *, what: str,
                      numeric: Collection[str] | None = None) -> None:
        """vars and class_column must be columns of the table the stage reads (`what` says which);
        vars must be among `numeric` when it is given."""
        for name in self.vars:
            _one_of(name, columns if numeric is None else numeric, f"{where}.vars",
                    what if numeric is None else f"a numeric {what.removeprefix('a ')}")
        _one_of(self.class_column, columns, f"{where}.class_column", what)

    def check_classes(self, known: Collection[str], where: str, *, what: str) -> None:
        """Every class of class_weights must be one of `known` (`what` says what they are)."""
        for name in self.class_weights:
            _one_of(str(name), known, f"{where}.class_weights", what)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


EVENT_NUMERIC_COLUMNS: Final = tuple(c for c in EVENT_SCALAR_COLUMNS if not EVENT_COLUMNS[c].startswith("string"))
JET_SCALAR_COLUMNS: Final = tuple(
    c.name for c in COLUMNS_BY_NAME.values() if not c.is_list and c.name != JET_CLASS_COLUMN
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventWeightsParams(WeightsParams):
    """The `weights` section as the event-level weights stage reads it: vars and class_column must be
    per-event columns of the ntuples (vars numeric)."""

    def check(self, where: str) -> None:
        super().check(where)
        self.check_columns(EVENT_SCALAR_COLUMNS, where, what="a per-event column of the ntuples",
                           numeric=EVENT_NUMERIC_COLUMNS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class JetWeightsParams(WeightsParams):
    """The `jet_weights` section: classes are JetClass-II label names, vars per-jet JetClass-II columns."""

    class_column: str = JET_CLASS_COLUMN

    def check(self, where: str) -> None:
        super().check(where)
        if self.class_column != JET_CLASS_COLUMN:
            raise ConfigError(f"{where}.class_column: jet classes live in {JET_CLASS_COLUMN}, "
                              f"not {self.class_column!r}")
        for name in self.vars:
            _one_of(name, JET_SCALAR_COLUMNS, f"{where}.vars", "a per-jet JetClass-II column")
        check_labels(list(self.class_weights), f"{where}.class_weights")


DEFAULT_JET_LENGTH: Final = 128  # particles per jet, tagger.max_particles' default (the schema's too)


@dataclasses.dataclass(frozen=True, kw_only=True)
class WeaverConfigParams(JetWeightsParams):
    """The weaver-config stage: `jet_weights` plus the tagger's `labels` and `length` (tagger.max_particles).

    `label_table` is "jetclass2" (the workflow's) or the list of names the jets were labelled with; the
    JetClass-II name checks apply to the first only. Errors name `tagger.labels` and `tagger.max_particles`,
    the keys the workflow fills `labels` and `length` from.
    """

    labels: Sequence[str] | None = None
    label_table: str | Sequence[str] = "jetclass2"
    length: int = DEFAULT_JET_LENGTH
    data_fraction: float = 1.0
    selection: str | None = None

    def check(self, where: str) -> None:
        if self.label_table == "jetclass2":
            super().check(where)
        else:
            WeightsParams.check(self, where)
            for name in self.vars:
                _one_of(name, JET_SCALAR_COLUMNS, f"{where}.vars", "a per-jet JetClass-II column")
        if self.labels is not None and self.label_table == "jetclass2":
            labels = check_labels(self.labels, "tagger.labels")
            for name in self.class_weights:
                if label_name(name) not in labels:
                    raise ConfigError(f"{where}.class_weights: {name!r} is not one of tagger.labels"
                                      f" ({', '.join(self.labels)}): reweighted classes must be among the labels")
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 1:
            raise ConfigError(f"tagger.max_particles: expected a positive integer, got {self.length!r}")
        if not 0.0 < _number(self.data_fraction, f"{where}.data_fraction") <= 1.0:
            raise ConfigError(f"{where}.data_fraction: expected a fraction in (0, 1], got {self.data_fraction!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateParams:
    """The PF `evaluate` stage: the `evaluate` section, plus the jet definition and sqrt_s the rule adds."""

    jet_pt_bins: Sequence[float] = (10, 20, 40, 60, 80, 100, 200)
    jet_match_dr: float = 0.1
    jet_eta_bins: Sequence[float] | None = None
    met_bins: Sequence[float] | None = None
    particle_pt_bins: Sequence[float] | None = None
    allow_nonfinite: bool = False
    jets: Mapping[str, Any] | None = None
    sqrt_s: float | None = None

    def check(self, where: str) -> None:
        for name in ("jet_pt_bins", "jet_eta_bins", "met_bins", "particle_pt_bins"):
            if getattr(self, name) is not None:
                check_edges(getattr(self, name), f"{where}.{name}")
        if _number(self.jet_match_dr, f"{where}.jet_match_dr") <= 0:
            raise ConfigError(f"{where}.jet_match_dr: must be > 0, got {self.jet_match_dr!r}")
        if not isinstance(self.allow_nonfinite, bool):
            raise ConfigError(f"{where}.allow_nonfinite: must be true or false, got {self.allow_nonfinite!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaggingParams:
    """The tagger evaluation (`evaluate.tagging`); class lists name classes (or give indices)."""

    qcd_classes: Sequence[str | int] | None = None
    signal_classes: Sequence[str | int] | None = None
    plot_classes: Sequence[str | int] | None = None
    working_points: Sequence[float] | None = None
    sculpting_efficiency: float = 0.5
    sdmass_bins: Sequence[float] | None = None
    tau32_cuts: Sequence[float] | None = None
    mass_windows: Sequence[Sequence[float]] | None = None
    dataset_label: str = "JetClass-II"
    allow_nonfinite: bool = False

    def check(self, where: str) -> None:
        if self.sdmass_bins is not None:
            check_edges(self.sdmass_bins, f"{where}.sdmass_bins")
        for i, window in enumerate(self.mass_windows or ()):
            if len(window) != 2 or not _number(window[0], f"{where}.mass_windows") < _number(window[1], where):
                raise ConfigError(f"{where}.mass_windows[{i}]: expected [lo, hi] with lo < hi, got {window!r}")
        if not isinstance(self.allow_nonfinite, bool):
            raise ConfigError(f"{where}.allow_nonfinite: must be true or false, got {self.allow_nonfinite!r}")

    def check_classes(self, labels: Sequence[str], where: str) -> None:
        """Named classes must be among the tagger's labels (prefix `label_` optional, as in the scores)."""
        known = {label_name(n) for n in labels}
        for key in ("qcd_classes", "signal_classes", "plot_classes"):
            for name in getattr(self, key) or ():
                if isinstance(name, str) and label_name(name) not in known:
                    raise ConfigError(
                        f"{where}.{key}: {name!r} is not one of the tagger's labels ({', '.join(labels)})")


# --------------------------------------------------------------------------------------------------
# The whole config, as the Snakefile sees it after schema validation
# --------------------------------------------------------------------------------------------------
def check_config(config: Mapping[str, Any]) -> None:
    """Every cross-field rule the config alone can break, with the stages' own checks; ConfigError if one is."""
    samples = config["samples"]
    pf_samples = sorted(s for s, v in samples.items() if v.get("dataset", "pf") == "pf")
    jet_samples = sorted(s for s, v in samples.items() if v.get("dataset", "pf") == "jets")

    for name in sorted(samples):
        sqrt_s = samples[name].get("sqrt_s", config["generate"]["sqrt_s"])
        stage_params(GenerateParams, {**config["generate"], "sqrt_s": sqrt_s}, where="generate")
    stage_params(NtuplizeParams, config["ntuplize"], where="ntuplize")
    weights = stage_params(EventWeightsParams if pf_samples else WeightsParams, config["weights"], where="weights")
    if pf_samples:
        if weights.class_column == "sample":
            weights.check_classes(pf_samples, "weights", what="a particle-flow sample of `samples`")
    stage_params(EvaluateParams, evaluate_section(config), where="evaluate")
    tagging = stage_params(TaggingParams, config["evaluate"].get("tagging"), where="evaluate.tagging")

    if jet_samples:
        jets = config["jets"]
        stage_params(JetDatasetParams, {k: jets[k] for k in ("split_fractions", "jets_per_file")}, where="jets")
        stage_params(WeaverConfigParams, weaver_section(config), where="jet_weights")
        tagging.check_classes(config["tagger"]["labels"], "evaluate.tagging")


def evaluate_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The PF evaluate stage's params: `evaluate` less `tagging`, with the ntuplizer's jet definition (jets
    from predicted particles are built exactly as the gen jets were) and the global sqrt_s."""
    own = {k: v for k, v in config["evaluate"].items() if k != "tagging"}
    return {**own, "jets": config["ntuplize"]["jets"], "sqrt_s": config["generate"]["sqrt_s"]}


def weaver_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The weaver-config stage's params: `jet_weights` with the tagger's labels and particles per jet."""
    tagger = config["tagger"]
    length = tagger.get("max_particles", DEFAULT_JET_LENGTH)
    return {**config["jet_weights"], "labels": tagger["labels"], "length": length}


def schema_error_line(error: BaseException) -> str:
    """One line for a schema violation: the key path and the problem, without jsonschema's schema dump.

    error: snakemake's WorkflowError from `validate` (raised while handling jsonschema's ValidationError,
    its __context__) or the ValidationError itself; a ConfigError passes through as its message.
    """
    cause = error
    while cause is not None and not (hasattr(cause, "absolute_path") and hasattr(cause, "message")):
        cause = cause.__cause__ or cause.__context__  # WorkflowError is raised while handling the ValidationError
    if cause is None:
        lines = str(error).splitlines()
        return lines[0] if lines else type(error).__name__
    path = ".".join(str(p) for p in cause.absolute_path) or "config"
    message = cause.message
    if len(message) > 300:
        message = message[:300] + " …"
    return f"{path}: {message}"

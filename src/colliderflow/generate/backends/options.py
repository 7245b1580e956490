"""A sample's backend options (`samples.<name>.delphes`, `samples.<name>.key4hep`) as typed dataclasses.

Built like every stage's params, by `colliderflow.params.stage_params` with the key path the user wrote
(`samples.<name>.delphes`): the schema owns the keys and their types, `check` what it cannot state. The
generate job builds them at its boundary, the Snakefile's config check (colliderflow.workflow_config) and
the pile-up planning in rules/common.smk build the same from the config, so a mistake stops the dry run with
the same line. Plain dataclasses, nothing heavy imported: the Snakefile reads them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from colliderflow.params import ConfigError, stage_params

DEFAULT_DELPHES_CARD: Final = "delphes_card_CLICdet_Stage1.tcl"
# Minimum-bias events made for a pile-up file when the sample does not say.
DEFAULT_MINBIAS_EVENTS: Final = 1000
DEFAULT_SETUP_SCRIPT: Final = "/cvmfs/sw.hsf.org/key4hep/setup.sh"
# CLIC_o3_v14 from k4geo; $K4GEO is set by the Key4HEP setup script, so it is expanded in the job's shell.
DEFAULT_COMPACT_FILE: Final = "$K4GEO/CLIC/compact/CLIC_o3_v14/CLIC_o3_v14.xml"


@dataclass(frozen=True)
class PileupOptions:
    """`delphes.pileup` of a sample: mean number of pile-up interactions (None: the card's own MeanPileUp)
    and how many minimum-bias events the pile-up file holds (Delphes draws from them with replacement)."""

    mean: float | None = None
    minbias_events: int = DEFAULT_MINBIAS_EVENTS

    def check(self, where: str) -> None:
        mean = self.mean
        if mean is not None:
            if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean) or mean < 0:
                raise ConfigError(f"{where}.mean: must be a number >= 0, got {mean!r}")
            object.__setattr__(self, "mean", float(mean))  # ⟨μ⟩ is written into the card as a float
        n = self.minbias_events
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{where}.minbias_events: must be an integer >= 1, got {n!r}")


@dataclass(frozen=True)
class DelphesOptions:
    """The per-sample `delphes:` options of the config.

    `card` is a path to a Delphes card, or the bare name of a card shipped with Delphes (looked up in the
    installation's cards folders, `delphes_install.resolve_card`). `pileup` (None when not given) sets the
    pile-up of a card that merges it (a PileUpMerger module in its execution path); `check` builds it into
    PileupOptions.
    """

    card: str = DEFAULT_DELPHES_CARD
    pileup: PileupOptions | Mapping[str, Any] | None = None

    def check(self, where: str) -> None:
        if not isinstance(self.card, str) or not self.card:
            raise ConfigError(f"{where}.card: must be a path or a card name, got {self.card!r}")
        if self.pileup is not None and not isinstance(self.pileup, PileupOptions):
            object.__setattr__(self, "pileup", stage_params(PileupOptions, self.pileup, where=f"{where}.pileup"))


@dataclass(frozen=True)
class Key4hepOptions:
    """The per-sample `key4hep:` options of the config.

    `steering_file` (CLICPerformance's clicConfig/clic_steer.py) and `reco_options` (key4hep-sim's
    clic/clicRec_e4h_input.py, placed in a clicConfig checkout) have no default: they are files of a
    checkout the user chooses, and a silent default would simulate with an unknown configuration.
    """

    steering_file: str
    reco_options: str
    setup_script: str | None = DEFAULT_SETUP_SCRIPT
    release: str | None = None
    container: str | None = None
    compact_file: str = DEFAULT_COMPACT_FILE

    def check(self, where: str) -> None:
        hints = {"steering_file": "CLICPerformance clicConfig/clic_steer.py",
                 "reco_options": "clicRec_e4h_input.py inside clicConfig"}
        for key in ("steering_file", "reco_options", "setup_script", "release", "container", "compact_file"):
            value = getattr(self, key)
            optional = key in ("setup_script", "release", "container")
            if not (isinstance(value, str) and value) and not (optional and value is None):
                hint = f" ({hints[key]})" if key in hints else ""
                raise ConfigError(f"{where}.{key}: must be a non-empty string{hint}, got {value!r}")


# backend → its options' dataclass (the builtin backend takes none).
BACKEND_OPTIONS: Final[dict[str, type]] = {"delphes": DelphesOptions, "key4hep": Key4hepOptions}

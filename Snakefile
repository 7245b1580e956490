# colliderflow: event simulation → ntuples → sampling weights → training → evaluation and report.
#
#   snakemake --profile profiles/local           the embedded default (config/config.yaml)
#   snakemake --profile profiles/ci              the tiny test configuration
#   snakemake --profile profiles/slurm           the same DAG on a SLURM cluster
#
# Rules live in rules/, one file a stage; the logic lives in the colliderflow package they call.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, validate

from colliderflow.params import ConfigError, schema_error_line
from colliderflow.workflow_config import check_workflow_config

min_version("9.0")


# The embedded default, unless a config file is given on the command line (or by a profile): that one is
# then the whole config, never merged with the default, so no sample or key leaks in from here.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# The schema owns structure (one line naming the key, not jsonschema's dump of the schema); then every stage's
# own cross-field checks (colliderflow.workflow_config builds each stage's params: colliderflow.params, the
# training and model configs, the jet ntuplizer's, the backends'), so what the config alone can reveal stops
# the dry run.
# Raised from here, so the message is followed by this one frame only.
try:
    validate(config, "workflow/schemas/config.schema.yaml")
    check_workflow_config(config)
except (WorkflowError, ConfigError) as exc:
    raise ConfigError(schema_error_line(exc)) from None


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/generate.smk"
include: "rules/ntuplize.smk"
include: "rules/weights.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"


rule all:
    input:
        final_outputs(),
    default_target: True

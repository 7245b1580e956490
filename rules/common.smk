# Workflow-level helpers: output paths, per-job seeds and the per-stage config sections.
# Each rule's `params` carries only its own stage's section, so a changed key re-runs exactly the
# jobs that read it (Snakemake's params rerun trigger) and nothing upstream.
from colliderflow.config import canonical_json, derive_seed
from colliderflow.schema import SPLITS

RESULTS = f"results/{config['run']}"
LOGS = f"logs/{config['run']}"
BENCH = f"benchmarks/results/{config['run']}"
MODEL = config["train"]["model"]
SAMPLES = sorted(config["samples"])  # sorted: reordering a config file must not look like a change
# Several shards per generate/ntuplize job keep the DAG small at production scale (a dry run costs
# ~1.5 ms per job); every shard still has its own seed and its own file: sim/<sample>/<job>/<i>.root
# holds shard job · SHARDS_PER_JOB + i.
SHARDS_PER_JOB = config.get("shards_per_job", 1)
for _name, _sample in config["samples"].items():
    if _sample["n_shards"] % SHARDS_PER_JOB:
        raise ValueError(
            f"samples.{_name}.n_shards = {_sample['n_shards']} is not a multiple of shards_per_job = {SHARDS_PER_JOB}"
        )


wildcard_constraints:
    sample="|".join(SAMPLES),
    job=r"\d+",
    model=r"[A-Za-z0-9_]+",


def section(name, *, without=()):
    """A config section (less the keys `without`, which other rules read) as canonical JSON.

    This is the value of a rule's `params` and of its provenance: what is left out cannot trigger a rerun.
    """
    return canonical_json({k: v for k, v in config[name].items() if k not in without})


def jobs(sample):
    return range(config["samples"][sample]["n_shards"] // SHARDS_PER_JOB)


def job_shards(wildcards):
    return [int(wildcards.job) * SHARDS_PER_JOB + i for i in range(SHARDS_PER_JOB)]


def per_shard(stage, ext):
    """The files one job writes, one per shard: `<stage>/<sample>/<job>/<i><ext>`."""
    return [f"{RESULTS}/{stage}/{{sample}}/{{job}}/{i}{ext}" for i in range(SHARDS_PER_JOB)]


def sample_config(wildcards):
    return config["samples"][wildcards.sample]


def generate_seeds(wildcards):
    """One seed per shard, from the shard's global number, so seeds do not depend on SHARDS_PER_JOB."""
    return [derive_seed(config["seed"], "generate", wildcards.sample, shard) for shard in job_shards(wildcards)]


def split_seed(wildcards):
    return derive_seed(config["seed"], "split", wildcards.sample)


def _ntuples(sample):
    return [f"{RESULTS}/ntuples/{sample}/{j}/{i}.parquet" for j in jobs(sample) for i in range(SHARDS_PER_JOB)]


def sample_ntuple_records(wildcards):
    """The ntuplize jobs' records of a sample: the DAG handles of its Parquet shards."""
    return [f"{RESULTS}/ntuples/{wildcards.sample}/{j}/provenance.json" for j in jobs(wildcards.sample)]


def sample_ntuples(wildcards):
    return _ntuples(wildcards.sample)


def all_ntuples(wildcards=None):
    return [path for sample in SAMPLES for path in _ntuples(sample)]


def all_validations(wildcards=None):
    return [f"{RESULTS}/ntuples/{s}/validation.json" for s in SAMPLES]


def all_tfds(wildcards=None):
    return [f"{RESULTS}/tfds/{s}" for s in SAMPLES]


def final_outputs():
    return [
        f"{RESULTS}/eval/{MODEL}/summary.json",
        f"{RESULTS}/weights/pf_histograms.json",
    ]

# Workflow-level helpers: output paths, per-job seeds and the per-stage config sections.
# Each rule's `params` carries only its own stage's section, so a changed key re-runs exactly the
# jobs that read it (Snakemake's params rerun trigger) and nothing upstream.
from colliderflow.config import canonical_json, derive_seed
from colliderflow.schema import SPLITS

RESULTS = f"results/{config['run']}"
LOGS = f"logs/{config['run']}"
BENCH = f"benchmarks/results/{config['run']}"
MODEL = config["train"]["model"]
SAMPLES = list(config["samples"])


wildcard_constraints:
    sample="|".join(SAMPLES),
    shard=r"\d+",
    model=r"[A-Za-z0-9_]+",


def section(name, *, without=()):
    """A config section (less the keys `without`, which other rules read) as canonical JSON.

    This is the value of a rule's `params` and of its provenance: what is left out cannot trigger a rerun.
    """
    return canonical_json({k: v for k, v in config[name].items() if k not in without})


def shards(sample):
    return range(config["samples"][sample]["n_shards"])


def sample_config(wildcards):
    return config["samples"][wildcards.sample]


def generate_seed(wildcards):
    return derive_seed(config["seed"], "generate", wildcards.sample, int(wildcards.shard))


def split_seed(wildcards):
    return derive_seed(config["seed"], "split", wildcards.sample)


def sample_ntuples(wildcards):
    return expand(f"{RESULTS}/ntuples/{{sample}}/{{shard}}.parquet", sample=wildcards.sample, shard=shards(wildcards.sample))


def all_ntuples(wildcards=None):
    return [f"{RESULTS}/ntuples/{s}/{i}.parquet" for s in SAMPLES for i in shards(s)]


def all_tfds(wildcards=None):
    return [f"{RESULTS}/tfds/{s}" for s in SAMPLES]


def final_outputs():
    return [
        f"{RESULTS}/eval/{MODEL}/summary.json",
        *[f"{RESULTS}/ntuples/{s}/validation.json" for s in SAMPLES],
        f"{RESULTS}/weights/pf_histograms.json",
    ]

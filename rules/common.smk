# Workflow-level helpers: output paths, per-job seeds and the per-stage config sections.
# Each rule's `params` carries only its own stage's section, so a changed key re-runs exactly the
# jobs that read it (Snakemake's params rerun trigger) and nothing upstream.
#
# Cost at production scale: Snakemake calls every params/resources function once per job (tens of
# thousands of jobs), and this file is parsed again by every cluster job. So what depends only on the
# sample is computed once per sample (functools.cache) and handed to the rule as one value, and nothing
# here imports more than the standard library and the light colliderflow modules (config, schema,
# processes, workflow_config): no numpy, awkward, matplotlib or torch (tests/test_dag_scale.py checks it).
import functools

from colliderflow.config import canonical_json, derive_seed, ordered_pairs
from colliderflow.devices import uses_gpu
from colliderflow.generate.backends.delphes_cards import check_pileup_config
from colliderflow.generate.backends.delphes_install import DELPHES_EXECUTABLE, find_tool, resolve_card
from colliderflow.generate.backends.options import DEFAULT_MINBIAS_EVENTS, DelphesOptions
from colliderflow.params import evaluate_section, stage_params, weaver_section
from colliderflow.workflow_config import jet_ntuplizer_section, training_section
from colliderflow.schema import SPLITS

RESULTS = f"results/{config['run']}"
LOGS = f"logs/{config['run']}"
BENCH = f"benchmarks/results/{config['run']}"
MODEL = config["train"]["model"]
# Where predict and predict_tagger run (colliderflow.devices); the schema documents the defaults.
PREDICT = {"device": "auto", "precision": "fp32", **config.get("predict", {})}
SAMPLES = sorted(config["samples"])  # sorted: reordering a config file must not look like a change
# Each sample feeds one dataset: event-level particle flow (MLPF) or JetClass-II jets (taggers).
PF_SAMPLES = [s for s in SAMPLES if config["samples"][s].get("dataset", "pf") == "pf"]
JET_SAMPLES = [s for s in SAMPLES if config["samples"][s].get("dataset", "pf") == "jets"]
if JET_SAMPLES:
    _missing = [k for k in ("jets", "jet_weights", "tagger") if k not in config]
    if _missing:
        raise ValueError(f"samples {JET_SAMPLES} have dataset: jets, but the config has no {', '.join(_missing)} section")
TAGGERS = list(config["tagger"]["models"]) if JET_SAMPLES else []
# Several shards per generate/ntuplize job keep the DAG small at production scale (a dry run costs
# ~1.5 ms per job); every shard still has its own seed and its own file: sim/<sample>/<job>/<i>.root
# holds shard job · SHARDS_PER_JOB + i.
SHARDS_PER_JOB = config.get("shards_per_job", 1)
for _name, _sample in config["samples"].items():
    if _sample["n_shards"] % SHARDS_PER_JOB:
        raise ValueError(
            f"samples.{_name}.n_shards = {_sample['n_shards']} is not a multiple of shards_per_job = {SHARDS_PER_JOB}"
        )


include: "resources.smk"  # mem_mb and runtime of each job, from measured benchmark TSVs


wildcard_constraints:
    sample="|".join(SAMPLES),
    job=r"\d+",
    model=r"[A-Za-z0-9_]+",
    sqrts=r"[0-9]+(\.[0-9]+)?",
    nevents=r"[0-9]+",
    pseed=r"[0-9]+",


def section(name, *, without=()):
    """A config section (less the keys `without`, which other rules read) as canonical JSON.

    This is the value of a rule's `params` and of its provenance: what is left out cannot trigger a rerun.
    """
    return canonical_json({k: v for k, v in config[name].items() if k not in without})


def weights_section(name, **extra):
    """A weights section as JSON with class_weights as [name, weight] pairs: their order is the class order
    (the first is weaver's `ref` reference), which canonical JSON's sorted keys would otherwise lose."""
    return canonical_json({**ordered_pairs(config[name], "class_weights"), **extra})


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


def sample_sqrt_s(sample):
    return config["samples"][sample].get("sqrt_s", config["generate"]["sqrt_s"])


@functools.cache
def delphes_pileup(sample):
    """The pile-up file a Delphes sample's generate jobs need, with its (sqrt_s, n_events, seed); None if none.

    A sample needs one when its card runs a PileUpMerger (read from the card and the files it sources). The
    card is looked up in the Delphes installation found now; without one (a machine that does not run the
    generate jobs) no pile-up input is planned, and a generate job whose card merges pile-up then stops at once
    naming the card and the build command. A card that is not found although Delphes is installed, or a
    `delphes.pileup` for a card that merges none, stops the DAG here, naming the sample.
    """
    own = config["samples"][sample]
    if own["backend"] != "delphes":
        return None
    where = f"samples.{sample}"
    options = stage_params(DelphesOptions, own.get("delphes"), where=f"{where}.delphes")
    executable = find_tool(DELPHES_EXECUTABLE)
    try:
        card = resolve_card(options.card, executable=executable)
    except ValueError as exc:
        if executable is None:
            return None
        raise ValueError(f"{where}.delphes.card: {exc}") from None
    if not check_pileup_config(card, options.pileup, what=where):
        return None
    sqrt_s = float(sample_sqrt_s(sample))
    energy = format(sqrt_s, "f").rstrip("0").rstrip(".")  # 14000, 13600.5: plain digits, as the wildcard wants
    n_events = options.pileup.minbias_events if options.pileup else DEFAULT_MINBIAS_EVENTS
    seed = derive_seed(config["seed"], "pileup", energy, n_events)
    path = f"{RESULTS}/pileup/minbias_{energy}GeV_{n_events}ev_seed{seed}.pileup"
    return {"path": path, "sqrt_s": sqrt_s, "n_events": n_events, "seed": seed}


def pileup_input(wildcards):
    """The generate job's pile-up file, as a list (empty when its card merges no pile-up)."""
    plan = delphes_pileup(wildcards.sample)
    return [plan["path"]] if plan else []


def pileup_seed(wildcards):
    """The seed of a pile-up file, which its name carries and derive_seed must reproduce."""
    seed = derive_seed(config["seed"], "pileup", wildcards.sqrts, wildcards.nevents)
    if str(seed) != wildcards.pseed:
        raise ValueError(f"pile-up file seed{wildcards.pseed} does not belong to this config (expected seed{seed})")
    return seed


@functools.cache
def _generate_sample(sample):
    """What a sample's generate jobs share, serialised once per sample: the process, the backend and
    their options, the events per shard, and the `generate` section as this sample sees it (its own
    sqrt_s, when it sets one, replaces the global)."""
    own = config["samples"][sample]
    return {
        "process": own["process"],
        "backend": own["backend"],
        "backend_options": canonical_json(own.get(own["backend"], {})),
        "process_options": canonical_json(own.get("options", {})),
        "n_events": own["events_per_shard"],
        "cfg": canonical_json({**config["generate"], "sqrt_s": sample_sqrt_s(sample)}),
    }


def generate_sample(wildcards):
    return _generate_sample(wildcards.sample)


@functools.cache
def _split_seed(sample):
    return derive_seed(config["seed"], "split", sample)


def split_seed(wildcards):
    return _split_seed(wildcards.sample)


def validation_section(wildcards):
    """The validation thresholds of a sample: ntuplize.validation with the sample's own `validation` over it."""
    own = config["samples"][wildcards.sample].get("validation") or {}
    return canonical_json({**config["ntuplize"].get("validation", {}), **own})


@functools.cache
def _jet_section(sample):
    return canonical_json(jet_ntuplizer_section(config, sample))


def jet_section(wildcards):
    """The jet ntuplizer's parameters for a sample: `jets` less the dataset keys, plus the sample's truth.

    The resonances that label jets follow from the process (processes.PP_JET_RESONANCES) unless the
    sample sets `jet_truth` (colliderflow.workflow_config.jet_ntuplizer_section, which the dry run's check
    builds JetParams from). Serialised once per sample, not once per job.
    """
    return _jet_section(wildcards.sample)


def _ntuples(sample):
    return [f"{RESULTS}/ntuples/{sample}/{j}/{i}.parquet" for j in jobs(sample) for i in range(SHARDS_PER_JOB)]


def sample_ntuple_records(wildcards):
    """The ntuplize jobs' records of a sample: the DAG handles of its Parquet shards."""
    return [f"{RESULTS}/ntuples/{wildcards.sample}/{j}/provenance.json" for j in jobs(wildcards.sample)]


def sample_ntuples(wildcards):
    return _ntuples(wildcards.sample)


def all_ntuples(wildcards=None):
    return [path for sample in PF_SAMPLES for path in _ntuples(sample)]


def all_validations(wildcards=None):
    return [f"{RESULTS}/ntuples/{s}/validation.json" for s in PF_SAMPLES]


def all_tfds(wildcards=None):
    # local(): dataset directories stay on the filesystem even with remote storage (see rules/ntuplize.smk)
    return [local(f"{RESULTS}/tfds/{s}") for s in PF_SAMPLES]


def all_jet_records(wildcards=None):
    """The jet ntuplize jobs' records of every jet sample: the DAG handles of their Parquet shards."""
    return [f"{RESULTS}/jets/{s}/{j}/provenance.json" for s in JET_SAMPLES for j in jobs(s)]


def all_jet_shards(wildcards=None):
    return [f"{RESULTS}/jets/{s}/{j}/{i}.parquet" for s in JET_SAMPLES for j in jobs(s) for i in range(SHARDS_PER_JOB)]


def all_generation_records(wildcards=None):
    return [f"{RESULTS}/sim/{s}/{j}/provenance.json" for s in SAMPLES for j in jobs(s)]


JETSET = f"{RESULTS}/jetset"


# On a filesystem a job's record (provenance.json, written with its shards; a missing shard re-runs the
# job) stands for its shards in the DAG, and the shard paths are a parameter: a production DAG then holds
# tens of thousands fewer files (benchmarks/bench_dryrun.py). On remote storage (--default-storage-provider,
# e.g. XRootD) a job sees only local copies of its declared inputs, so there every shard it reads is an input.
ON_STORAGE = workflow.storage_settings.default_storage_provider is not None


def shard_inputs(files, records=None):
    """A rule's shard inputs: the files themselves on remote storage, else `records` (their jobs' records)."""
    return files if ON_STORAGE else (records or [])


def shard_paths(paths, name=None):
    """A params function for the shard files a job reads: the local copies of its inputs (`input.<name>`)
    on remote storage, else `paths(wildcards)`."""

    def get(wildcards, input):
        if ON_STORAGE:
            return list(getattr(input, name) if name else input)
        return paths(wildcards)

    return get


def job_roots(wildcards):
    return [f.format(sample=wildcards.sample, job=wildcards.job) for f in per_shard("sim", ".root")]


def train_section(model):
    """The training parameters of one model: `train` for the PF model; for a tagger, `tagger` with its
    model named and without the other taggers' architectures (so tuning one retrains only that one)."""
    return canonical_json(training_section(config, model))  # colliderflow.workflow_config, as the dry run checks it


def final_outputs():
    outputs = [f"{RESULTS}/run_summary.json"]
    if PF_SAMPLES:
        outputs += [f"{RESULTS}/eval/{MODEL}/summary.json", f"{RESULTS}/weights/pf_histograms.json"]
    if JET_SAMPLES:
        outputs += [f"{RESULTS}/eval/{m}/summary.json" for m in TAGGERS]
        outputs += [local(f"{JETSET}/weaver_data_config.yaml"), local(f"{RESULTS}/tfds_jets")]
    return outputs


def train_inputs(wildcards):
    """What a model trains on: TFDS datasets for the PF model, the jet dataset's splits for a tagger."""
    if wildcards.model == MODEL:
        return {"data": all_tfds(), "weights": f"{RESULTS}/weights/pf.parquet"}
    return {"data": local(f"{JETSET}/train"), "val": local(f"{JETSET}/val"), "weights": f"{RESULTS}/weights/jets.parquet"}


def train_device(model):
    """The device setting of a model's training job: train.device for the PF model, tagger.device for taggers."""
    return (config["train"] if model == MODEL else config["tagger"]).get("device", "auto")


def gpus_for(device):
    """GPUs a job asks the cluster for (the `gpu` resource): one unless its device is cpu."""
    return 1 if uses_gpu(device) else 0


# --------------------------------------------------------------------------------------------------
# Params, one helper per workflow step (`params: **<name>_params()`): the values its shell line
# reads, built here so that the rules stay declarations. A value that depends only on the config is
# computed once here; one that depends on the sample is cached per sample above. The config sections
# are those the stage's dataclass in colliderflow.params checks (the dry run ran the same checks).
# --------------------------------------------------------------------------------------------------
def _output_dir(name):
    """The directory of output `name` (on remote storage, the local copy's)."""
    return lambda wildcards, output: os.path.dirname(getattr(output, name))


def _input_dir(name):
    return lambda wildcards, input: os.path.dirname(getattr(input, name))


def delphes_pileup_params():
    return {"seed": pileup_seed}


def _pileup_option(wildcards, input):
    return f"--pileup-file {input.pileup[0]}" if input.pileup else ""


def generate_params():
    # One value for what the whole sample shares (process, backend, options, events, `generate` section):
    # computed once per sample, and any change in it re-runs that sample's jobs.
    return {"sample_cfg": generate_sample, "shards": job_shards, "seeds": generate_seeds, "pileup": _pileup_option}


def ntuplize_params():
    return {
        "roots": shard_paths(job_roots, "roots"),
        "shards": job_shards,
        "seed": split_seed,
        "cfg": section("ntuplize", without=("validation",)),
    }


def validate_params():
    return {"shards": shard_paths(sample_ntuples), "cfg": validation_section}


def tfds_params():
    return {"shards": shard_paths(sample_ntuples, "shards")}


def ntuplize_jets_params():
    return {"roots": shard_paths(job_roots, "roots"), "shards": job_shards, "cfg": jet_section}


def jet_dataset_params():
    """The dataset keys of `jets` (the rest configures the jet ntuplizer), the split seed, the output folder."""
    cfg = canonical_json({k: config["jets"][k] for k in ("split_fractions", "jets_per_file")}) if JET_SAMPLES else None
    return {
        "shards": shard_paths(all_jet_shards),
        "cfg": cfg,
        "seed": derive_seed(config["seed"], "jet_dataset"),
        "outdir": _output_dir("provenance"),
    }


def weights_params():
    return {"shards": shard_paths(all_ntuples, "shards"), "cfg": weights_section("weights")}


def jet_weights_params():
    return {"cfg": weights_section("jet_weights") if JET_SAMPLES else None}


def weaver_config_params():
    """`jet_weights` plus the tagger's labels and particles per jet (colliderflow.params.weaver_section)."""
    return {"cfg": canonical_json(ordered_pairs(weaver_section(config), "class_weights")) if JET_SAMPLES else None}


def _train_seed(wildcards):
    return derive_seed(config["seed"], "train", wildcards.model)


def _train_cfg(wildcards):
    return train_section(wildcards.model)


def _val_option(wildcards, input):
    # Taggers validate on the jet dataset's own val split; the PF model on the TFDS val splits.
    return f"--val-data {input.val}" if "val" in input.keys() else ""


def _launcher(wildcards, resources):
    # One process per GPU (DDP, NCCL) when the job holds several; a plain process otherwise.
    gpus = int(resources.get("gpu", 0))
    return f"torchrun --standalone --nnodes=1 --nproc_per_node={gpus} -m colliderflow" if gpus > 1 else "colliderflow"


def train_params():
    return {"seed": _train_seed, "cfg": _train_cfg, "outdir": _output_dir("model"), "val": _val_option,
            "launcher": _launcher}


def train_threads(wildcards):
    return (config["train"] if wildcards.model == MODEL else config["tagger"]).get("threads", 2)


def predict_params():
    """For predict and predict_tagger: the model's folder and where the predictions run (`predict`)."""
    return {"model_dir": _input_dir("model"), "device": PREDICT["device"], "precision": PREDICT["precision"]}


def evaluate_params():
    """`evaluate` less its tagging part, with the jet definition of the ntuplizer (jets from predicted
    particles are built exactly as the gen jets were) and sqrt_s (colliderflow.params.evaluate_section)."""
    return {"cfg": canonical_json(evaluate_section(config)), "plots_dir": _output_dir("loss_curves")}


def evaluate_tagger_params():
    return {"cfg": canonical_json(config["evaluate"].get("tagging", {})), "plots_dir": _output_dir("loss_curves")}

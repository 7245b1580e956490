# What each job asks the cluster for (mem_mb, runtime in minutes), from measured benchmark TSVs.
#
# benchmarks/resource_fit.py fits, from the `benchmark:` TSVs of runs at several sizes,
#     peak memory [MB] = a + b · events one shard holds   (a job makes/reads its shards one after another; the
#                                                          builtin generator holds one chunk of ≤ 1,000 events)
#     wall time   [s]  = c + d · events of the job         (events_per_shard × shards_per_job)
# per rule (generate per backend and collider); for the rules that read a whole sample (validate_ntuples, tfds)
# or dataset (weights, jet_weights, jet_dataset, jet_tfds) the events are the sample's or dataset's. Each fit
# is an upper envelope of its points. A job asks MEM_SAFETY × the fitted memory (rounded up to 100 MB) and
# TIME_SAFETY × the fitted time (whole minutes), never under the floors, and `attempt` times that on each retry
# (profiles/slurm: retries: 2). The measured table and what ci, default and production jobs ask:
# profiles/slurm/config.yaml. Refresh the numbers with resource_fit.py on new TSVs, then paste them here.
#
# Called once per job at production scale: the per-sample part is computed once per sample (functools.cache),
# and this file imports nothing beyond the standard library and colliderflow.generate.processes.
import math

from colliderflow.generate.processes import is_pp

# (MB, MB per event, s, s per event), fitted on the builtin backend (see profiles/slurm/config.yaml).
RESOURCE_FITS = {
    "generate/builtin/ee": (290, 0.0262, 4.6, 0.00047),
    "generate/builtin/pp": (157, 0.5344, 3.8, 0.01710),
    "ntuplize/builtin": (315, 0.1981, 4.7, 0.00012),
    "ntuplize_jets/builtin": (247, 0.4714, 4.1, 0.00152),
    "validate_ntuples": (200, 0.1, 5, 0.001),
    "tfds": (200, 0.1, 5, 0.001),
    "weights": (200, 0.1, 5, 0.001),
    "jet_weights": (200, 0.1, 5, 0.001),
    "jet_dataset": (200, 0.1, 5, 0.001),
    "jet_tfds": (200, 0.1, 5, 0.001),
}
MEM_SAFETY = 1.5   # peak RSS varies a few % between runs and sites' library builds; a kill costs the whole job
TIME_SAFETY = 3.0  # wall time varies with the node's speed and load, and the fit's points came from a busy machine
MIN_MEM_MB = 500
MIN_RUNTIME = 10   # minutes: start-up of the environment on a shared filesystem is not in the TSVs
GENERATE_CHUNK = 1000  # colliderflow.generate.run.EVENTS_PER_CHUNK (tests/test_resources.py checks they agree)
# Backends whose jobs were not measured keep the requests they had before: per job, and minutes per shard.
UNMEASURED_MEM_MB = 2000
UNMEASURED_MINUTES_PER_SHARD = 60


def fitted_request(key, mem_events, time_events):
    """(mem_mb, runtime minutes) of a first attempt: the fit `key` at these sizes, with safety factor and floors."""
    a, b, c, d = RESOURCE_FITS[key]
    mem_mb = max(MIN_MEM_MB, 100 * math.ceil(MEM_SAFETY * (a + b * mem_events) / 100))
    runtime = max(MIN_RUNTIME, math.ceil(TIME_SAFETY * (c + d * time_events) / 60))
    return mem_mb, runtime


@functools.cache
def _shard_job_request(rule, sample):
    """A per-shard job's first-attempt request: generate, ntuplize or ntuplize_jets of one sample."""
    own = config["samples"][sample]
    backend, events = own["backend"], own["events_per_shard"]
    if backend != "builtin":
        return UNMEASURED_MEM_MB, UNMEASURED_MINUTES_PER_SHARD * SHARDS_PER_JOB
    if rule == "generate":
        key = f"generate/builtin/{'pp' if is_pp(own['process']) else 'ee'}"
        held = min(events, GENERATE_CHUNK)
    else:
        key, held = f"{rule}/builtin", events
    return fitted_request(key, held, events * SHARDS_PER_JOB)


def _sample_events(sample):
    own = config["samples"][sample]
    return own["events_per_shard"] * own["n_shards"]


@functools.cache
def _whole_request(rule, sample=None):
    """A per-sample (sample given) or whole-dataset job's first-attempt request."""
    if sample is not None:
        events = _sample_events(sample)
    else:
        dataset = JET_SAMPLES if rule.startswith("jet_") else PF_SAMPLES
        events = sum(_sample_events(s) for s in dataset)
    return fitted_request(rule, events, events)


def shard_resources(rule):
    """`resources:` mem_mb and runtime functions of a per-shard rule, growing with the attempt."""
    return {
        "mem_mb": lambda wc, attempt: _shard_job_request(rule, wc.sample)[0] * attempt,
        "runtime": lambda wc, attempt: _shard_job_request(rule, wc.sample)[1] * attempt,
    }


def sample_resources(rule, per_sample):
    """`resources:` of a rule that reads one sample (per_sample) or its whole dataset, growing with the attempt."""
    if per_sample:
        return {
            "mem_mb": lambda wc, attempt: _whole_request(rule, wc.sample)[0] * attempt,
            "runtime": lambda wc, attempt: _whole_request(rule, wc.sample)[1] * attempt,
        }
    return {
        "mem_mb": lambda wc, attempt: _whole_request(rule)[0] * attempt,
        "runtime": lambda wc, attempt: _whole_request(rule)[1] * attempt,
    }

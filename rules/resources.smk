# What each job asks the cluster for (mem_mb, runtime in minutes), from measured benchmark TSVs.
#
# benchmarks/resource_fit.py fits, from the `benchmark:` TSVs of runs at several sizes (benchmarks/measured/),
#     peak memory [MB] = a + b · min(n, chunk) + e · max(n − chunk, 0) + g · (k − 1) · n
#     wall time   [s]  = c + d · k · n
# n = events_per_shard, k = shards_per_job, per rule (generate per backend and collider); a job makes or reads
# its shards one after another, so memory follows the shard, plus g for what the earlier shards of the job
# leave behind, and time follows the job; the builtin generator simulates 1,000-event chunks, beyond which only
# its output buffers grow (e; e = 0 for every other rule). For the rules that read a whole sample
# (validate_ntuples, tfds) or dataset (weights, jet_weights, jet_dataset, jet_tfds), which read it shard by
# shard, n is the largest events_per_shard and k · n the sample's or dataset's events. Each fit is an upper
# envelope of its points. A job asks MEM_SAFETY × the fitted memory (rounded up to 100 MB) and TIME_SAFETY × the
# fitted time (whole minutes), never under the floors, and `attempt` times that on each retry (profiles/slurm:
# retries: 2). The measured table and what ci, default and production jobs ask: profiles/slurm/config.yaml.
# Refresh: measure, run resource_fit.py, paste its literal below.
#
# Called once per job at production scale: the per-sample part is computed once per sample (functools.cache),
# and this file imports nothing beyond the standard library and colliderflow.generate.processes.
import math

from colliderflow.generate.processes import is_pp

# (a MB, b MB/event, e MB/event beyond a generator chunk, g MB/event of earlier shards, c s, d s/event of the job)
# python benchmarks/resource_fit.py benchmarks/measured/configs/*.yaml config/ci.yaml --results benchmarks/measured
RESOURCE_FITS = {
    "generate/builtin/ee": (355, 0.0384, 0.0132, 0.0019, 76.8, 0.00041),
    "generate/builtin/pp": (406, 0.2852, 0.1048, 0.0090, 378.5, 0.00575),
    "jet_dataset": (162, 0.0096, 0.0000, 0.0011, 34.6, 0.00337),
    "jet_tfds": (184, 0.0041, 0.0000, 0.0056, 11.9, 0.00017),
    "jet_weights": (580, 0.0000, 0.0000, 0.0000, 22.1, 0.00000),
    "ntuplize/builtin": (365, 0.1782, 0.0000, 0.0049, 31.4, 0.00018),
    "ntuplize_jets/builtin": (422, 0.3741, 0.0000, 0.0140, 71.4, 0.00132),
    "tfds": (250, 0.0617, 0.0000, 0.0103, 35.1, 0.00033),
    "validate_ntuples": (218, 0.0561, 0.0000, 0.0005, 5.4, 0.00003),
    "weights": (365, 0.0000, 0.0000, 0.0002, 15.2, 0.00000),
}
MEM_SAFETY = 1.5   # peak RSS at one size varies with the seed (pp generate, 1,000 events: 496-691 MB)
TIME_SAFETY = 3.0  # wall time varies with the node's speed and load; the slopes are CPU time's
MIN_MEM_MB = 500
MIN_RUNTIME = 10   # minutes: start-up of the environment on a shared filesystem is not in the TSVs
GENERATE_CHUNK = 1000  # colliderflow.generate.run.EVENTS_PER_CHUNK (tests/test_resources.py checks they agree)
# Backends whose jobs were not measured (delphes, key4hep) keep the requests they had before: per job, and
# minutes per shard.
UNMEASURED_MEM_MB = 2000
UNMEASURED_MINUTES_PER_SHARD = 60


def fitted_request(key, events, job_events):
    """(mem_mb, runtime minutes) of a first attempt of a job of `job_events` events in shards (or a whole sample
    or dataset) of `events`: the fit `key`, with safety factors and floors."""
    a, b, e, g, c, d = RESOURCE_FITS[key]
    knee = GENERATE_CHUNK if key.startswith("generate/") else events
    fitted_mb = a + b * min(events, knee) + e * max(events - knee, 0) + g * (job_events - events)
    mem_mb = max(MIN_MEM_MB, 100 * math.ceil(MEM_SAFETY * fitted_mb / 100))
    runtime = max(MIN_RUNTIME, math.ceil(TIME_SAFETY * (c + d * job_events) / 60))
    return mem_mb, runtime


@functools.cache
def _shard_job_request(stage, sample):
    """A per-shard job's first-attempt request: generate, ntuplize or ntuplize_jets of one sample."""
    own = config["samples"][sample]
    backend, events = own["backend"], own["events_per_shard"]
    if backend != "builtin":
        return UNMEASURED_MEM_MB, UNMEASURED_MINUTES_PER_SHARD * SHARDS_PER_JOB
    if stage == "generate":
        key = f"generate/builtin/{'pp' if is_pp(own['process']) else 'ee'}"
    else:
        key = f"{stage}/builtin"
    return fitted_request(key, events, events * SHARDS_PER_JOB)


@functools.cache
def _whole_request(rule, sample=None):
    """A per-sample (sample given) or whole-dataset job's first-attempt request: it reads the shards one after
    another, so its memory follows the largest shard plus the other shards' events, its time all events."""
    members = [sample] if sample is not None else (JET_SAMPLES if rule.startswith("jet_") else PF_SAMPLES)
    shards = [config["samples"][s] for s in members]
    largest = max(s["events_per_shard"] for s in shards)
    return fitted_request(rule, largest, sum(s["events_per_shard"] * s["n_shards"] for s in shards))


# The samples whose jobs each per-shard rule runs.
_SHARD_RULE_SAMPLES = {"generate": SAMPLES, "ntuplize": PF_SAMPLES, "ntuplize_jets": JET_SAMPLES}


@functools.cache
def _array_request(stage):
    """One request for every job of a per-shard rule: the largest of its samples' (memory and time apart).

    profiles/slurm submits these rules as job arrays, and the SLURM executor gives an array the resources of its
    first job; a request per sample would then give a pp generate job an e+e- job's memory."""
    requests = [_shard_job_request(stage, sample) for sample in _SHARD_RULE_SAMPLES[stage]]
    return max(mem for mem, _ in requests), max(minutes for _, minutes in requests)


def shard_resources(rule):
    """`resources:` mem_mb and runtime of a per-shard rule (the same for all its jobs), growing with the attempt."""
    return {
        "mem_mb": lambda wc, attempt: _array_request(rule)[0] * attempt,
        "runtime": lambda wc, attempt: _array_request(rule)[1] * attempt,
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

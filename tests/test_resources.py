"""What each job asks the cluster for follows the measured fits (rules/resources.smk), at any shard size.

The DAG test dry-runs the workflow at two shard sizes through the Snakemake API and recomputes every per-shard,
per-sample and per-dataset job's mem_mb and runtime from the fit constants (read from rules/resources.smk, the
formula written out here again), for the first attempt and two retries. benchmarks/resource_fit.py is checked
on benchmark TSVs with known costs.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import sys

import pytest
import yaml
from workflow_api import ROOT, copy_project, dry_run

from colliderflow.generate.processes import is_pp
from colliderflow.generate.run import EVENTS_PER_CHUNK


def _constants() -> dict:
    """The top-level literal assignments of rules/resources.smk (RESOURCE_FITS, safety factors, floors)."""
    tree = ast.parse((ROOT / "rules/resources.smk").read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


K = _constants()


def _expected(key: str, events: int, job_events: int, attempt: int) -> tuple[int, int]:
    """The request of a job of `job_events` events in shards (or a sample) of `events`, written out again."""
    a, b, e, g, c, d = K["RESOURCE_FITS"][key]
    chunk = K["GENERATE_CHUNK"] if key.startswith("generate/") else math.inf
    fitted = a + b * min(events, chunk) + e * max(events - chunk, 0) + g * (job_events - events)
    mem = max(K["MIN_MEM_MB"], 100 * math.ceil(K["MEM_SAFETY"] * fitted / 100))
    minutes = max(K["MIN_RUNTIME"], math.ceil(K["TIME_SAFETY"] * (c + d * job_events) / 60))
    return mem * attempt, minutes * attempt


def _expectations(config: dict, job) -> tuple[str, int, int] | None:
    """(fit key, events the memory follows, events the runtime follows) of a job, or None for rules not fitted."""
    samples, spj = config["samples"], config.get("shards_per_job", 1)
    rule = job.rule.name
    if rule in ("generate", "ntuplize", "ntuplize_jets"):
        return _shard_plan(config, rule, samples[job.wildcards_dict["sample"]])
    if rule in ("validate_ntuples", "tfds"):
        own = samples[job.wildcards_dict["sample"]]
        return rule, own["events_per_shard"], own["events_per_shard"] * own["n_shards"]
    if rule in ("weights", "jet_weights", "jet_dataset", "jet_tfds"):
        dataset = "jets" if rule.startswith("jet_") else "pf"
        members = [s for s in samples.values() if s.get("dataset", "pf") == dataset]
        total = sum(s["events_per_shard"] * s["n_shards"] for s in members)
        return rule, max(s["events_per_shard"] for s in members), total
    return None


def _shard_plan(config: dict, rule: str, own: dict) -> tuple[str, int, int]:
    """(fit key, events per shard, events per job) of one sample's jobs of a per-shard rule."""
    eps, spj = own["events_per_shard"], config.get("shards_per_job", 1)
    if rule == "generate":
        return f"generate/builtin/{'pp' if is_pp(own['process']) else 'ee'}", eps, eps * spj
    return f"{rule}/builtin", eps, eps * spj


def _shard_rule_expected(config: dict, rule: str, attempt: int) -> tuple[int, int]:
    """A per-shard rule goes to SLURM as job arrays, one request per array: every job asks the largest of its
    samples' requests (memory and time apart)."""
    dataset = {"ntuplize": "pf", "ntuplize_jets": "jets"}.get(rule)
    own = [s for s in config["samples"].values() if dataset is None or s.get("dataset", "pf") == dataset]
    wants = [_expected(*_shard_plan(config, rule, s), attempt) for s in own]
    return max(mem for mem, _ in wants), max(minutes for _, minutes in wants)


def _production_like(config: dict) -> dict:
    """ci's samples at 5,000 events a shard (more than a generator chunk), 2 shards a job."""
    config = {**config, "run": "resources_big", "shards_per_job": 2}
    config["samples"] = {
        name: {**s, "events_per_shard": 5000, "n_shards": 2 * s["n_shards"]} for name, s in config["samples"].items()
    }
    return config


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return copy_project(tmp_path_factory.mktemp("resources") / "wf")


@pytest.mark.parametrize("size", ["ci", "big"])
def test_requests_follow_the_fits_and_grow_with_the_attempt(work, size):
    config = yaml.safe_load((work / "config/ci.yaml").read_text())
    if size == "big":
        config = _production_like(config)
    configfile = work / f"config/resources_{size}.yaml"
    configfile.write_text(yaml.safe_dump(config))
    checked = set()
    with dry_run(work, [configfile]) as dag:
        for job in dag.jobs:
            plan = _expectations(config, job)
            if plan is None:
                continue
            for attempt in (1, 2, 3):
                job.attempt = attempt
                if job.rule.name in ("generate", "ntuplize", "ntuplize_jets"):
                    want = _shard_rule_expected(config, job.rule.name, attempt)
                else:
                    want = _expected(*plan, attempt)
                got = (job.resources["mem_mb"], job.resources["runtime"])
                assert got == want, f"{job.rule.name} {job.wildcards_dict} attempt {attempt}: {got} != {want}"
            checked.add(job.rule.name)
    assert checked == {"generate", "ntuplize", "ntuplize_jets", "validate_ntuples", "tfds", "weights", "jet_weights",
                       "jet_dataset", "jet_tfds"}


def test_bigger_shards_ask_more():
    """The fits are not flat: 10x the events of a shard asks more memory of the readers and the pp generator,
    and a production job of 100,000 pp events more time than the floor."""
    for key in ("ntuplize/builtin", "ntuplize_jets/builtin", "generate/builtin/pp"):
        assert _expected(key, 5000, 5000, 1)[0] > _expected(key, 500, 500, 1)[0], key
    assert _expected("generate/builtin/pp", 1000, 100_000, 1)[1] > K["MIN_RUNTIME"]


def test_generate_chunk_matches_the_generator():
    assert K["GENERATE_CHUNK"] == EVENTS_PER_CHUNK


def _load_fit_script():
    spec = importlib.util.spec_from_file_location("resource_fit", ROOT / "benchmarks/resource_fit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_fit_script_recovers_a_known_linear_cost(tmp_path, capsys):
    """Three sizes with memory 300 + 0.2/event (+ noise under the line) and wall time 5 + 0.01/event (CPU 1 s
    less): the fit is the upper envelope, and the printed literal carries it."""
    fit = _load_fit_script()
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    configs = []
    for n, dip in ((100, 0.0), (1000, 20.0), (4000, 0.0)):
        run = f"r{n}"
        (tmp_path / run / "ntuplize/s").mkdir(parents=True)
        wall = 5 + 0.01 * n
        row = f"{wall}\t0\t{300 + 0.2 * n - dip}\t0\t0\t0\t0\t0\t0\t{wall - 1}\n"
        (tmp_path / run / "ntuplize/s/0.tsv").write_text(header + row)
        cfg = tmp_path / f"{run}.yaml"
        sample = {"process": "ee_qq", "backend": "builtin", "n_shards": 1, "events_per_shard": n}
        cfg.write_text(yaml.safe_dump({"run": run, "samples": {"s": sample}}))
        configs.append(cfg)
    points = [p for c in configs for p in fit.read_run(c, tmp_path)]
    table = fit.fit(points)
    (a, b, e, g), (c, d) = table["ntuplize/builtin"]["mem"], table["ntuplize/builtin"]["time"]
    assert e == 0 and g == 0  # no generator chunk, one shard a job
    for n, dip in ((100, 0.0), (1000, 20.0), (4000, 0.0)):
        assert a + b * n >= 300 + 0.2 * n - dip - 1e-6
    assert b == pytest.approx(0.2, rel=0.02) and c == pytest.approx(5, abs=0.05) and d == pytest.approx(0.01, rel=1e-6)
    assert fit.main([*map(str, configs), "--results", str(tmp_path)]) == 0
    assert '"ntuplize/builtin": (' in capsys.readouterr().out


def test_fit_script_names_a_missing_benchmark_folder(tmp_path):
    fit = _load_fit_script()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"run": "nothing", "samples": {}}))
    with pytest.raises(FileNotFoundError, match="c.yaml: no benchmark folder"):
        fit.read_run(cfg, tmp_path)

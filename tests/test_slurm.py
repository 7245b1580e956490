"""The ci configuration through a real SLURM scheduler, with the project's real-cluster profile.

Needs a running SLURM whose partitions match profiles/slurm (`debug`, `gpu` with one GPU), such as
the single-node cluster that ci/setup_local_slurm.sh starts on localhost; skipped otherwise.

The profile is used unchanged. The command line adds only what a small local cluster needs:
  --slurm-init-seconds-before-status-checks 1   first status check after 1 s instead of 40 s
  --slurm-keep-successful-logs                  keep every job's SLURM log, to be checked below
ci/bin (an sbatch that records its arguments) goes first on PATH, so every submission is logged.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings
from workflow_api import ROOT, copy_project, planned_jobs

PROFILE = "profiles/slurm"
LOCAL_OVERRIDES = ("--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs")
SBATCH_WRAPPER_DIR = ROOT / "ci" / "bin"
# On the profile's gpu partition; each asks for a GPU where its device is not cpu.
GPU_RULES = ("train", "predict", "predict_tagger")
# The many small jobs that profiles/slurm submits as job arrays (slurm-array-jobs).
ARRAY_RULES = ("generate", "ntuplize", "ntuplize_jets")
# Generous limits for a run that takes minutes; they only stop a hung scheduler from hanging CI.
FULL_RUN_TIMEOUT = 1800
RERUN_TIMEOUT = 900
SQUEUE_FORMAT = "%i|%j|%k|%P|%T|%C|%m|%l"  # id, name (run uuid), comment (rule_...), partition, ...


def _why_no_slurm() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) on PATH; ci/setup_local_slurm.sh starts a local cluster"
    if "SLURM_CONF" not in os.environ and not Path("/etc/slurm/slurm.conf").is_file():
        # Without a slurm.conf the client would look for a controller in DNS; there is none to find.
        return "no /etc/slurm/slurm.conf; ci/setup_local_slurm.sh starts a local cluster"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], check=False, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s (is slurmctld running?)"
    if "idle" not in out.stdout.split():
        found = (out.stdout + out.stderr).strip() or "no output"
        return f"no idle SLURM node (ci/setup_local_slurm.sh starts one); sinfo: {found}"
    return None


WHY_NO_SLURM = _why_no_slurm()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(WHY_NO_SLURM is not None, reason=str(WHY_NO_SLURM)),
]


# --- what the workflow asks for ----------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What one rule's jobs should ask SLURM for, per the profile and the rule."""

    partition: str
    mem_mb: int
    runtime: int  # minutes
    threads: int
    gpu: int | None
    cpus_per_gpu: int | None

    @property
    def cpus(self) -> int:
        return self.cpus_per_gpu * self.gpu if self.gpu and self.cpus_per_gpu else self.threads


def declared_requests(workdir: Path, configfile: Path) -> tuple[dict[str, Request], set[str]]:
    """Per rule of the planned jobs: the resources Snakemake resolves from the rules and the
    profile's default-resources/set-resources (first attempt); and the input-only rules (such as
    `all`), which have nothing to submit. Every other job, a `localrules` one included, is
    expected to go through sbatch."""
    profile = yaml.safe_load((workdir / PROFILE / "config.yaml").read_text())
    requests: dict[str, Request] = {}
    input_only: set[str] = set()
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(
                # A dry run caps threads at --cores; a cluster submission does not.
                cores=1024,
                default_resources=profile.get("default-resources"),
                overwrite_resources=profile.get("set-resources", {}),
            ),
            config_settings=ConfigSettings(configfiles=[configfile.absolute()]),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        workflow_api.dag(DAGSettings()).execute_workflow(pseudo_executor="dryrun")
        workflow = workflow_api._workflow
        for job in workflow.dag.jobs:
            rule = job.rule
            if rule.norun:
                input_only.add(rule.name)
                continue
            res = job.resources
            request = Request(
                partition=res.get("slurm_partition"),
                mem_mb=res.get("mem_mb"),
                runtime=res.get("runtime"),
                threads=job.threads,
                gpu=res.get("gpu"),
                cpus_per_gpu=res.get("cpus_per_gpu"),
            )
            assert requests.setdefault(rule.name, request) == request, f"{rule.name}: jobs differ in resources"
    return requests, input_only


# --- what was submitted and what SLURM recorded -------------------------------------------------


@dataclass
class Submission:
    """One sbatch call, from the argv that ci/bin/sbatch recorded."""

    argv: list[str]
    options: dict[str, str] = field(init=False)

    def __post_init__(self):
        self.options = {}
        i = 0
        while i < len(self.argv):
            arg = self.argv[i]
            i += 1
            if arg.startswith("--wrap"):
                break  # the job's own command line
            if arg.startswith("--") and "=" in arg:
                key, value = arg.split("=", 1)
                self.options[key] = value
            elif arg.startswith("-"):
                # `-p gpu`, `--mem 8000`; an option followed by another option is a flag
                has_value = i < len(self.argv) and not self.argv[i].startswith("-")
                self.options[arg] = self.argv[i] if has_value else ""
                i += has_value

    @property
    def comment(self) -> str:
        return self.options["--comment"]

    @property
    def tasks(self) -> int:
        """The jobs this call submitted: the tasks of `--array=A-B`, or 1."""
        if "--array" not in self.options:
            return 1
        first, _, last = self.options["--array"].partition("-")
        return int(last or first) - int(first) + 1

    @property
    def run_uuid(self) -> str:
        return self.options["--job-name"]


def read_submissions(log: Path) -> list[Submission]:
    if not log.exists():
        return []
    return [Submission(shlex.split(line)) for line in log.read_text().splitlines() if line.strip()]


def rule_of(comment: str, rules) -> str:
    """The rule of a plugin comment `rule_<name>` or `rule_<name>_wildcards_<values>`."""
    for name in sorted(rules, key=len, reverse=True):
        if comment == f"rule_{name}" or comment.startswith(f"rule_{name}_wildcards_"):
            return name
    raise AssertionError(f"sbatch comment {comment!r} names none of the rules {sorted(rules)}")


def slurm_minutes(limit: str) -> int:
    """A SLURM time limit ([D-]H:M:S, M:S) in minutes."""
    days, _, hms = limit.rpartition("-")
    parts = [int(p) for p in hms.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


def parse_scontrol(line: str) -> dict[str, str]:
    """One job of `scontrol -o show job` as {key: value}."""
    return dict(re.findall(r"(\w+)=(\S*)", line))


class SlurmWatcher:
    """Polls SLURM while a run goes on and keeps what it recorded about every job.

    SLURM forgets a finished job MinJobAge (300 s) after it ends, and a full run takes longer
    than that, so the records are collected while they are still there: the last `squeue -t all`
    row of every job, and its full `scontrol show job` record once it has ended."""

    FIELDS = ("id", "name", "comment", "partition", "state", "cpus", "mem", "limit")
    RUNNING_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"})

    def __init__(self, interval: float = 2.0):
        self.interval = interval
        self.rows: dict[str, dict[str, str]] = {}
        self.records: dict[str, dict[str, str]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _poll(self):
        try:
            out = subprocess.run(
                ["squeue", "-t", "all", "-h", "-o", SQUEUE_FORMAT],
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            for line in out.stdout.splitlines():
                fields = line.split("|")
                if len(fields) != len(self.FIELDS):
                    continue
                row = dict(zip(self.FIELDS, fields))
                if "[" in row["id"]:
                    continue  # the array's not-yet-started tasks (`12_[3-6]`): each shows up by itself once it starts
                self.rows[row["id"]] = row
                if row["state"] not in self.RUNNING_STATES and row["id"] not in self.records:
                    show = subprocess.run(
                        ["scontrol", "-o", "show", "job", row["id"]],
                        check=False,
                        capture_output=True,
                        text=True,
                        timeout=60,
                    )
                    if show.returncode == 0:
                        self.records[row["id"]] = parse_scontrol(show.stdout)
        except (subprocess.SubprocessError, OSError) as exc:
            self.errors.append(repr(exc))

    def _loop(self):
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._poll()

    def jobs_of(self, run_uuids) -> list[dict[str, str]]:
        """squeue rows of the given runs, each with its scontrol record under "record"."""
        rows = [dict(row) for row in self.rows.values() if row["name"] in set(run_uuids)]
        for row in rows:
            row["record"] = self.records.get(row["id"], {})
        return rows


@dataclass
class Run:
    workdir: Path
    returncode: int
    output: str
    submissions: list[Submission]
    slurm_jobs: list[dict[str, str]]
    seconds: float
    watch_errors: list[str]

    def tail(self, n: int = 6000) -> str:
        return self.output[-n:]


def run_through_slurm(workdir: Path, configfile: str, tag: str, timeout: float) -> Run:
    """`snakemake --profile profiles/slurm --configfile CONFIGFILE` plus the local overrides, with
    ci/bin and the venv's bin first on PATH, watched by SlurmWatcher."""
    log = workdir.parent / f"sbatch-{tag}.log"
    output = workdir.parent / f"snakemake-{tag}.log"
    log.unlink(missing_ok=True)
    path = os.pathsep.join([str(SBATCH_WRAPPER_DIR), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = dict(os.environ, PATH=path, SBATCH_LOG=str(log))
    snakemake = shutil.which("snakemake", path=path)
    assert snakemake, "no snakemake on PATH"
    cmd = [snakemake, "--profile", PROFILE, "--configfile", configfile, *LOCAL_OVERRIDES]
    start = time.monotonic()
    with SlurmWatcher() as watcher, output.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGINT lets Snakemake cancel its SLURM jobs and release its lock; whatever is left of
            # this run is then cancelled by job name (= the run's uuid).
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for uuid in {s.run_uuid for s in read_submissions(log)}:
                subprocess.run(["scancel", "--name", uuid], check=False)
            pytest.fail(f"snakemake through SLURM did not finish within {timeout} s:\n{output.read_text()[-6000:]}")
    seconds = time.monotonic() - start
    submissions = read_submissions(log)
    print(f"[{tag}] {len(submissions)} sbatch calls, snakemake took {seconds:.0f} s")
    return Run(
        workdir=workdir,
        returncode=proc.returncode,
        output=output.read_text(),
        submissions=submissions,
        slurm_jobs=watcher.jobs_of({s.run_uuid for s in submissions}),
        seconds=seconds,
        watch_errors=watcher.errors,
    )


def assert_requests(run: Run, requests: dict[str, Request]):
    """Every sbatch call asks for exactly what its rule declares (partition, memory, time, CPUs, GPU)."""
    for sub in run.submissions:
        rule = rule_of(sub.comment, requests)
        want = requests[rule]
        opts = sub.options
        where = f"{sub.comment}: {shlex.join(a for a in sub.argv if not a.startswith('--wrap'))}"
        assert opts.get("-p") == want.partition, where
        assert opts.get("--mem") == str(want.mem_mb), where
        assert opts.get("-t") == str(want.runtime), where
        if want.gpu and want.cpus_per_gpu:
            assert opts.get("--cpus-per-gpu") == str(want.cpus_per_gpu), where
            assert "--cpus-per-task" not in opts, where
        else:
            assert opts.get("--cpus-per-task") == str(want.threads), where
        if want.gpu:
            assert opts.get("--gpus") == str(want.gpu) or opts.get("--gres") == f"gpu:{want.gpu}", where
        else:
            assert "--gpus" not in opts and "gpu" not in opts.get("--gres", ""), where


def assert_recorded_by_slurm(run: Run, requests: dict[str, Request]):
    """SLURM ran every submission to COMPLETED with what was asked for."""
    submitted = Counter()
    for s in run.submissions:
        submitted[s.comment] += s.tasks  # an array's tasks share its comment
    recorded = Counter(row["comment"] for row in run.slurm_jobs)
    assert recorded == submitted, (
        f"SLURM jobs of this run {sorted(recorded.items())} != submissions {sorted(submitted.items())}"
        f" (squeue/scontrol errors while watching: {run.watch_errors or 'none'})"
    )
    for row in run.slurm_jobs:
        comment = row["comment"]
        want = requests[rule_of(comment, requests)]
        assert row["state"] == "COMPLETED", row
        assert row["partition"] == want.partition, row
        assert row["mem"] == f"{want.mem_mb}M", row
        assert slurm_minutes(row["limit"]) == want.runtime, row
        assert int(row["cpus"]) == want.cpus, row
        # The full record: the same, and the GPU where one was asked for (--gpus → TresPerJob,
        # --gres → TresPerNode).
        record = row["record"]
        assert record, f"no scontrol record of job {row['id']} ({comment})"
        assert record["JobState"] == "COMPLETED" and record["Partition"] == want.partition, record
        gpu_tres = record.get("TresPerJob", "") + record.get("TresPerNode", "")
        if want.gpu:
            assert f"gpu:{want.gpu}" in gpu_tres, record
        else:
            assert "gpu" not in gpu_tres, record
        # --slurm-keep-successful-logs: the job's own SLURM log, named by its job id
        logs = list((run.workdir / ".snakemake" / "slurm_logs").rglob(f"{row['id']}.log"))
        assert len(logs) == 1, f"no SLURM log for job {row['id']} ({comment})"


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    """The jobs the ci configuration plans on a fresh copy, and what each rule asks for."""
    fresh = copy_project(tmp_path_factory.mktemp("slurm-plan") / "wf")
    ci = fresh / "config" / "ci.yaml"
    requests, input_only = declared_requests(fresh, ci)
    jobs = planned_jobs(fresh, [ci])
    return jobs, requests, input_only


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """The whole ci configuration run once through SLURM in a fresh copy of the workflow."""
    workdir = copy_project(tmp_path_factory.mktemp("slurm") / "wf")
    run = run_through_slurm(workdir, "config/ci.yaml", "full", FULL_RUN_TIMEOUT)
    assert run.returncode == 0, run.tail()
    return run


def test_full_run_succeeds_and_builds_the_final_outputs(full_run):
    ci = yaml.safe_load((full_run.workdir / "config" / "ci.yaml").read_text())
    summary = full_run.workdir / "results" / ci["run"] / "eval" / ci["train"]["model"] / "summary.json"
    assert summary.is_file(), full_run.tail()
    assert planned_jobs(full_run.workdir, [full_run.workdir / "config" / "ci.yaml"]) == {}


def test_every_job_went_through_sbatch_once(full_run, plan):
    jobs, requests, input_only = plan
    expected = {rule: n for rule, n in jobs.items() if rule not in input_only}
    submitted = Counter()
    for s in full_run.submissions:
        submitted[rule_of(s.comment, requests)] += s.tasks
    assert dict(submitted) == expected, (
        f"jobs submitted per rule {dict(submitted)} != planned jobs {expected} (a retried job is submitted twice)"
    )
    assert len({s.comment for s in full_run.submissions}) == len(full_run.submissions), "a job was submitted twice"
    assert len({s.run_uuid for s in full_run.submissions}) == 1


def test_many_small_jobs_went_as_arrays(full_run, plan):
    """generate's jobs are all ready at the start: one sbatch with one array task each. The ntuplizers'
    jobs become ready as generation tasks finish, so they go as arrays of those that are ready together
    (a lone ready job as a plain submission). Every other rule: one plain sbatch a job."""
    jobs, requests, _ = plan
    by_rule: dict[str, list[Submission]] = {}
    for s in full_run.submissions:
        by_rule.setdefault(rule_of(s.comment, requests), []).append(s)
    generate = by_rule["generate"]
    assert len(generate) == 1 and generate[0].options.get("--array") == f"1-{jobs['generate']}", [
        g.options for g in generate
    ]
    for rule in ("ntuplize", "ntuplize_jets"):
        assert sum(s.tasks for s in by_rule[rule]) == jobs[rule]
        assert all(("--array" in s.options) == (s.tasks > 1) for s in by_rule[rule])
    for rule, subs in by_rule.items():
        if rule not in ARRAY_RULES:
            assert all("--array" not in s.options for s in subs), rule
    array_jobs = sum(jobs[r] for r in ARRAY_RULES)
    array_calls = sum(len(by_rule[r]) for r in ARRAY_RULES)
    print(f"array rules: {array_jobs} jobs in {array_calls} sbatch calls")
    assert array_calls < array_jobs


def test_sbatch_requests_what_the_profile_and_rules_declare(full_run, plan):
    _, requests, _ = plan
    assert_requests(full_run, requests)


def job_device(rule: str, comment: str, config: dict) -> str:
    """The device setting of a train or predict job (the `model` wildcard tells the PF model from a tagger)."""
    if rule == "train":
        model = comment.removeprefix("rule_train_wildcards_")
        section = config["train"] if model == config["train"]["model"] else config["tagger"]
        return section.get("device", "auto")
    return config.get("predict", {}).get("device", "auto")


def test_a_gpu_is_asked_for_exactly_where_the_device_is_not_cpu(full_run, plan):
    """ci.yaml trains on cpu and predicts with the default device (auto): training asks for no GPU, prediction
    for one (and runs on the CPU of a node without CUDA). Every other rule stays on the debug partition."""
    _, requests, _ = plan
    config = yaml.safe_load((full_run.workdir / "config" / "ci.yaml").read_text())
    asked = set()
    for sub in full_run.submissions:
        rule = rule_of(sub.comment, requests)
        gpu_request = sub.options.get("--gpus") == "1" or sub.options.get("--gres") == "gpu:1"
        if rule in GPU_RULES:
            assert sub.options.get("-p") == "gpu", sub.argv[:-1]
            assert gpu_request == (job_device(rule, sub.comment, config) != "cpu"), sub.argv[:-1]
        else:
            assert sub.options.get("-p") == "debug" and not gpu_request, sub.argv[:-1]
        asked |= {rule} if gpu_request else set()
    assert {rule_of(s.comment, requests) for s in full_run.submissions} >= set(GPU_RULES)
    assert "predict" in asked and "train" not in asked, asked  # both sides of the rule were exercised


def test_slurm_recorded_every_job_as_completed(full_run, plan):
    _, requests, _ = plan
    assert_recorded_by_slurm(full_run, requests)


def test_changed_training_key_resubmits_only_training_and_after(full_run, plan, tmp_path):
    _, requests, input_only = plan
    workdir = full_run.workdir
    config = yaml.safe_load((workdir / "config" / "ci.yaml").read_text())
    config["train"]["lr"] = config["train"]["lr"] * 2
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    downstream = {"train": 1, "predict": 1, "evaluate": 1}
    planned = planned_jobs(workdir, [changed])
    assert {r: n for r, n in planned.items() if r not in input_only} == downstream

    rerun = run_through_slurm(workdir, str(changed), "rerun", RERUN_TIMEOUT)
    assert rerun.returncode == 0, rerun.tail()
    assert dict(Counter(rule_of(s.comment, requests) for s in rerun.submissions)) == downstream
    assert_requests(rerun, requests)
    assert_recorded_by_slurm(rerun, requests)
    assert planned_jobs(workdir, [changed]) == {}

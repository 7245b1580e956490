"""The `colliderflow` command: one subcommand per pipeline stage, so any stage also runs by hand.

Rules call these subcommands; each parses its arguments and hands them to one function of the stage's
module. Stage sections of the config arrive as one JSON object (`--params`), which is also what the
stage's provenance records.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from colliderflow.config import from_ordered_pairs, parse_json_arg
from colliderflow.provenance import write_job_provenance

log = logging.getLogger("colliderflow")


def _paired(args: argparse.Namespace, *names: str) -> list[tuple]:
    """The per-shard options of a job that handles several shards, zipped, or an error naming the mismatch."""
    values = [getattr(args, n) or [] for n in names]
    lengths = {n: len(v) for n, v in zip(names, values, strict=True) if v}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-shard options need one value per shard each, got {lengths}")
    n = max(lengths.values())
    return list(zip(*[v if v else [None] * n for v in values], strict=True))


@contextlib.contextmanager
def _job_provenance(path: Path | None, *, stage: str, n_shards: int) -> Iterator[list[Path | None]]:
    """Per-shard record paths for a job's shards, combined into the job's one record at `path` at the end."""
    if path is None:
        yield [None] * n_shards
        return
    from colliderflow.io.atomic import temporary_dir

    with temporary_dir(path) as tmp:  # .colliderflow-tmp-provenance.json~…, removed by the next run if killed
        records = [tmp / f"{i}.json" for i in range(n_shards)]
        yield records
        write_job_provenance(path, stage=stage, shard_records=records)


SKIP_FAILED_ENV = "COLLIDERFLOW_SKIP_FAILED_SHARDS"


def _skip_failed_setting(flag: bool | None) -> bool:
    """--skip-failed / --no-skip-failed when given, else the environment's COLLIDERFLOW_SKIP_FAILED_SHARDS.

    The workflow sets the variable from the config's `skip_failed_shards` instead of adding the flag to
    the command, so that switching the setting does not make Snakemake rerun every generate job. Unset
    means off; the value used is written into every shard's record either way.
    """
    import os

    if flag is not None:
        return flag
    value = os.environ.get(SKIP_FAILED_ENV, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{SKIP_FAILED_ENV}={value!r}: expected 1 or 0 (true or false)")


def _cmd_generate(args: argparse.Namespace) -> None:
    from colliderflow.generate.run import generate_shard
    from colliderflow.io.atomic import atomic_path
    from colliderflow.provenance import SHARD_OK, annotate_record, failed_shard_record, write_provenance

    params = parse_json_arg(args.params, what="--params")
    backend_options = parse_json_arg(args.backend_options, what="--backend-options") or None
    process_options = parse_json_arg(args.process_options, what="--process-options") or None
    skip_failed = _skip_failed_setting(args.skip_failed)
    if skip_failed and args.provenance is None:
        raise ValueError("--skip-failed needs --provenance: the job's record is where a skipped shard is reported")
    jobs = _paired(args, "shard", "seed", "output")
    failures: list[tuple[int, int, Path, Exception]] = []
    # One job may make several shards (config `shards_per_job`): each keeps its own seed and file.
    with _job_provenance(args.provenance, stage="generate", n_shards=len(jobs)) as shard_records:
        for (shard, seed, output), record in zip(jobs, shard_records, strict=True):
            identity = {"sample": args.sample, "process": args.process, "backend": args.backend, "shard": shard,
                        "n_events": args.n_events, "output": str(output), "skip_failed_shards": skip_failed}
            try:
                generate_shard(
                    sample=args.sample,
                    process=args.process,
                    backend=args.backend,
                    shard=shard,
                    n_events=args.n_events,
                    seed=seed,
                    params=params,
                    output=output,
                    provenance=record,
                    backend_options=backend_options,
                    process_options=process_options,
                    pileup_file=args.pileup_file,
                )
            except Exception as exc:
                if not skip_failed:
                    raise
                # Skipped, not hidden: logged here, marked failed in the record, listed by the run summary.
                log.error("generate %s shard %d (seed %d) failed and is skipped (skip_failed_shards on): %s: %s",
                          args.sample, shard, seed, type(exc).__name__, exc, exc_info=exc)
                failures.append((shard, seed, output, exc))
                write_provenance(record, failed_shard_record(
                    stage="generate", config=params, seeds={"generate": int(seed)}, error=exc,
                    extra={**identity, "backend_options": backend_options or {},
                           "process_options": process_options or {}},
                ))
                continue
            if record is not None:
                annotate_record(record, status=SHARD_OK, output=str(output), skip_failed_shards=skip_failed)
        if failures and len(failures) == len(jobs):
            # Still skipped: with one shard per job this is the only way a shard is ever skipped. A sample
            # left with too few events then fails its validation step, which names it.
            log.error("generate %s: all %d shard(s) of the job failed and are skipped", args.sample, len(jobs))
        for shard, _, output, _ in failures:
            # Snakemake needs the declared file; an empty one holds no events, and every ROOT reader
            # refuses it as "empty file (0 bytes)", naming it. A stale file from an earlier run is replaced.
            with atomic_path(output):
                pass
            log.warning("generate %s shard %d: wrote an empty placeholder %s (no events)", args.sample, shard, output)


def _cmd_pileup(args: argparse.Namespace) -> None:
    from colliderflow.generate.backends.pileup import make_pileup_file
    from colliderflow.provenance import provenance_record, write_provenance

    start = time.perf_counter()
    info = make_pileup_file(args.output, sqrt_s=args.sqrt_s, n_events=args.n_events, seed=args.seed)
    wall = time.perf_counter() - start
    if args.provenance is not None:
        record = provenance_record(stage="pileup", config={"sqrt_s": args.sqrt_s, "n_events": args.n_events},
                                   seeds={"pileup": args.seed}, extra={"output": str(args.output), **info})
        write_provenance(args.provenance, record)
    log.info("pile-up file %s: %d minimum-bias events at %g GeV in %.1f s", args.output, args.n_events,
             args.sqrt_s, wall)


def _shard_groups(args: argparse.Namespace) -> tuple[list[tuple], dict[int, str]]:
    """(inputs, shard, output) per output of an ntuplize job, and the shards its generation record marks failed.

    One output takes every input as one shard; one output per input makes each input its own shard (as
    a job of several shards runs). With --generation-record, inputs are matched to generation shards by
    shard number, which needs one shard per input.
    """
    from colliderflow.ntuplize.empty_shard import failed_generation_shards

    if len(args.output) == 1:
        groups = [(args.inputs, (args.shard or [0])[0], args.output[0])]
    elif len(args.output) == len(args.inputs):
        args.inputs = [[path] for path in args.inputs]
        args.shard = args.shard or list(range(len(args.inputs)))
        groups = _paired(args, "inputs", "shard", "output")
    else:
        raise ValueError(f"-o takes one output, or one per input ({len(args.inputs)}); got {len(args.output)}")
    failed: dict[int, str] = {}
    if args.generation_record is not None:
        if any(len(inputs) != 1 for inputs, _, _ in groups):
            raise ValueError("--generation-record needs one output per input (each input its own shard)")
        recorded, failed = failed_generation_shards(args.generation_record, sample=args.sample)
        missing = sorted({shard for _, shard, _ in groups} - recorded)
        if missing:
            raise ValueError(f"{args.generation_record}: no record of shard(s) {missing} (it has {sorted(recorded)});"
                             " is it the record of the job that made these inputs?")
    return groups, failed


def _cmd_ntuplize(args: argparse.Namespace) -> None:
    from colliderflow.ntuplize.empty_shard import ntuplize_skipped_shard
    from colliderflow.ntuplize.events import default_sample_name, ntuplize_files
    from colliderflow.provenance import annotate_record

    params = parse_json_arg(args.params, what="--params")
    groups, failed = _shard_groups(args)
    with _job_provenance(args.provenance, stage="ntuplize", n_shards=len(groups)) as shard_records:
        for (inputs, shard, output), record in zip(groups, shard_records, strict=True):
            if shard in failed:
                ntuplize_skipped_shard(inputs=inputs, output=output,
                                       sample=args.sample or default_sample_name(inputs[0]), shard=shard,
                                       params=params, seed=args.seed, reason=failed[shard], provenance=record)
                continue
            ntuplize_files(
                inputs,
                output=output,
                sample=args.sample,
                shard=shard,
                params=params,
                seed=args.seed,
                provenance=record,
            )
            if record is not None:
                annotate_record(record, skipped=False)


def _cmd_run_summary(args: argparse.Namespace) -> None:
    from colliderflow.run_summary import write_run_summary

    write_run_summary(generation_records=args.records, output=args.output)


def _cmd_ntuplize_jets(args: argparse.Namespace) -> None:
    from colliderflow.ntuplize.empty_shard import write_skipped_jet_shard
    from colliderflow.provenance import annotate_record, provenance_record, write_provenance

    params = parse_json_arg(args.params, what="--params")
    groups, failed = _shard_groups(args)
    with _job_provenance(args.provenance, stage="ntuplize_jets", n_shards=len(groups)) as shard_records:
        for (inputs, shard, output), record in zip(groups, shard_records, strict=True):
            if shard in failed:  # generation failed and was skipped: an empty shard that says why
                write_skipped_jet_shard(output, reason=failed[shard])
                if record is not None:
                    write_provenance(record, provenance_record(
                        stage="ntuplize_jets", config=params, inputs=[str(p) for p in inputs],
                        extra={"shard": shard, "skipped": True, "reason": failed[shard], "stats": {"jets_written": 0}},
                    ))
                continue
            _jet_ntuplizer(inputs)(inputs, output=output, params=params, provenance=record)
            if record is not None:
                annotate_record(record, shard=shard, skipped=False)


def _jet_ntuplizer(inputs: list[Path]) -> Any:
    """The jet ntuplizer for the inputs' format (all builtin or all Delphes; detected from the files)."""
    from colliderflow.io.sim_reader import detect_format
    from colliderflow.ntuplize.builtin_jets import ntuplize_builtin_jets
    from colliderflow.ntuplize.delphes_jets import ntuplize_delphes_jets

    formats = {path: detect_format(path) for path in inputs}
    kinds = set(formats.values())
    if kinds == {"builtin"}:
        return ntuplize_builtin_jets
    if kinds == {"delphes"}:
        return ntuplize_delphes_jets
    listing = ", ".join(f"{path} ({fmt})" for path, fmt in formats.items())
    raise ValueError(f"ntuplize-jets reads builtin or Delphes files, all of one kind; got {listing}")


def _cmd_tfds(args: argparse.Namespace) -> None:
    from colliderflow.io.tfds_writer import build_tfds

    build_tfds(args.inputs, name=args.name, output_dir=args.output)


def _cmd_validate(args: argparse.Namespace) -> None:
    from colliderflow.ntuplize.validate import validate_dataset

    validate_dataset(
        args.inputs,
        params=parse_json_arg(args.params, what="--params"),
        summary=args.summary,
        plot=args.plot,
    )


def _cmd_weights(args: argparse.Namespace) -> None:
    from colliderflow.weights import compute_weights_from_files

    compute_weights_from_files(
        args.inputs,
        params=_weights_params(args.params),
        output=args.output,
        histograms=args.histograms,
        plot=args.plot,
        provenance=args.provenance,
    )


def _cmd_train(args: argparse.Namespace) -> None:
    from colliderflow.train import train

    train(
        data=args.data,
        val_data=args.val_data,
        weights=args.weights,
        params=parse_json_arg(args.params, what="--params"),
        seed=args.seed,
        output_dir=args.output_dir,
    )


def _weights_params(text: str) -> dict:
    """A weights section from --params; class_weights may come as [name, weight] pairs (their order is the class order)."""
    return from_ordered_pairs(parse_json_arg(text, what="--params"), "class_weights", what="--params")


def _cmd_jet_dataset(args: argparse.Namespace) -> None:
    from colliderflow.jetset import assemble_jet_dataset

    from colliderflow.params import JetDatasetParams, stage_params

    params = stage_params(JetDatasetParams, parse_json_arg(args.params, what="--params"), where="jets")
    assemble_jet_dataset(
        args.inputs,
        output_dir=args.output,
        split_fractions=params.split_fractions,
        jets_per_file=params.jets_per_file,
        seed=args.seed,
        provenance=args.provenance,
    )


def _cmd_jet_tfds(args: argparse.Namespace) -> None:
    from colliderflow.io.jet_tfds import build_jet_tfds

    build_jet_tfds(args.inputs, name=args.name, output_dir=args.output)


def _cmd_jet_weights(args: argparse.Namespace) -> None:
    from colliderflow.jetclass2 import JETCLASS2_LABELS
    from colliderflow.weights.jet_files import compute_jet_weights_from_files

    compute_jet_weights_from_files(
        args.inputs,
        params=_weights_params(args.params),
        label_table=JETCLASS2_LABELS,
        output=args.output,
        histograms=args.histograms,
        plot=args.plot,
        provenance=args.provenance,
    )


def _cmd_weaver_config(args: argparse.Namespace) -> None:
    from colliderflow.weights.weaver_config import write_weaver_config

    write_weaver_config(args.output, params=_weights_params(args.params))


def _cmd_predict_tagger(args: argparse.Namespace) -> None:
    from colliderflow.evaluate.tagging.predict import predict_tagger

    predict_tagger(model_dir=args.model_dir, inputs=args.inputs, output=args.output, device=args.device,
                   precision=args.precision)


def _cmd_evaluate_tagger(args: argparse.Namespace) -> None:
    from colliderflow.evaluate.tagging.run import evaluate_tagger

    evaluate_tagger(
        predictions=args.predictions,
        metrics_log=args.metrics_log,
        params=parse_json_arg(args.params, what="--params"),
        summary=args.summary,
        plots_dir=args.plots_dir,
        allow_nonfinite=args.allow_nonfinite,
    )


def _add_inference_options(p: argparse.ArgumentParser) -> None:
    from colliderflow.devices import DEVICE_CHOICES, PRECISIONS

    p.add_argument("--device", default="auto", help=f"where the model runs: {DEVICE_CHOICES} (default auto: "
                   "the GPU when there is one)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (default, reproducible) or bf16 autocast (faster on GPUs)")


def _cmd_predict(args: argparse.Namespace) -> None:
    from colliderflow.evaluate.pf.predict import predict

    predict(model_dir=args.model_dir, tfds_dirs=args.tfds, output=args.output, split=args.split, device=args.device,
            precision=args.precision)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from colliderflow.evaluate.pf.run import evaluate

    evaluate(
        predictions=args.predictions,
        metrics_log=args.metrics_log,
        params=parse_json_arg(args.params, what="--params"),
        summary=args.summary,
        plots_dir=args.plots_dir,
        allow_nonfinite=args.allow_nonfinite,
    )


def _cmd_export(args: argparse.Namespace) -> None:
    from colliderflow.models.export import export_onnx

    export_onnx(args.model_dir, args.output)


def _add_weight_outputs(p: argparse.ArgumentParser, *, rows: str) -> None:
    """The outputs both weights stages write (colliderflow.weights.files.write_weight_outputs)."""
    p.add_argument("-o", "--output", type=Path, required=True, help=f"per-{rows} weights, Parquet")
    p.add_argument("--histograms", type=Path, required=True, help="histograms and weight maps, JSON")
    p.add_argument("--plot", type=Path, required=True, help="weighted vs unweighted distributions, PNG")
    p.add_argument("--provenance", type=Path)


def _add_allow_nonfinite(p: argparse.ArgumentParser, *, rows: str, key: str) -> None:
    p.add_argument("--allow-nonfinite", action="store_true",
                   help=f"drop {rows} holding NaN/inf/null values instead of failing (the summary says how many); "
                        f"also config {key}: true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colliderflow", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = sub.add_parser("generate", help="simulate one shard of a sample into a ROOT file")
    p.add_argument("--sample", required=True, help="sample name (a key of `samples` in the config)")
    p.add_argument("--process", required=True, help="physics process, e.g. ee_ttbar")
    p.add_argument("--backend", default="builtin", choices=["builtin", "delphes", "key4hep"])
    p.add_argument("--shard", type=int, nargs="+", required=True, help="shard number(s)")
    p.add_argument("--n-events", type=int, required=True, help="events per shard")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one seed per shard")
    p.add_argument("--params", default="{}", help="the config's `generate` section as JSON")
    p.add_argument("--backend-options", default="{}",
                   help="the sample's `delphes:` or `key4hep:` mapping as JSON (docs/backends.md)")
    p.add_argument("--process-options", default="{}",
                   help="the sample's `options` of a pp process as JSON (pthat_min, mpi; docs/jets.md)")
    p.add_argument("-o", "--output", type=Path, nargs="+", required=True, help="one output ROOT file per shard")
    p.add_argument("--provenance", type=Path, help="the job's provenance JSON (one record per shard inside)")
    p.add_argument("--pileup-file", type=Path, default=None,
                   help="Delphes pile-up file (colliderflow pileup) for a card that merges pile-up")
    p.add_argument("--skip-failed", action=argparse.BooleanOptionalAction, default=None,
                   help="a shard whose generation raises is logged, marked failed in the record and left as an "
                        "empty file instead of failing the job (needs --provenance; the job still fails when "
                        f"every shard fails). Default: ${SKIP_FAILED_ENV} (1 or 0), else off")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("pileup", help="a Delphes pile-up file: minimum-bias Pythia events through hepmc2pileup")
    p.add_argument("--sqrt-s", type=float, required=True, help="centre-of-mass energy, GeV")
    p.add_argument("--n-events", type=int, required=True, help="minimum-bias events in the file")
    p.add_argument("--seed", type=int, required=True, help="Pythia seed")
    p.add_argument("-o", "--output", type=Path, required=True, help="the pile-up file to write")
    p.add_argument("--provenance", type=Path, help="provenance JSON")
    p.set_defaults(func=_cmd_pileup)

    p = sub.add_parser("ntuplize", help="simulation ROOT file(s) → one event-level Parquet shard")
    p.add_argument("inputs", nargs="+", type=Path, help="ROOT files (builtin, EDM4hep or Delphes; detected)")
    p.add_argument("-o", "--output", type=Path, nargs="+", required=True,
                   help="output Parquet file, or one per input (then each input is its own shard)")
    p.add_argument("--sample", default=None, help="sample name stored in each row (default: input stem)")
    p.add_argument("--shard", type=int, nargs="+", help="shard number(s), part of each event_id (default 0, 1, …)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test assignment")
    p.add_argument("--params", default="{}", help="the config's `ntuplize` section as JSON")
    p.add_argument("--provenance", type=Path, help="the job's provenance JSON (one record per output inside)")
    p.add_argument("--generation-record", type=Path, default=None,
                   help="the generate job's provenance JSON: shards it marks failed are not read, their outputs "
                        "are written as zero-row shards")
    p.set_defaults(func=_cmd_ntuplize)

    p = sub.add_parser("run-summary", help="per-sample shards requested, made and failed, from generate records")
    p.add_argument("records", nargs="+", type=Path, help="the generate jobs' provenance JSON files")
    p.add_argument("-o", "--output", type=Path, required=True, help="run summary JSON")
    p.set_defaults(func=_cmd_run_summary)

    p = sub.add_parser("ntuplize-jets", help="simulation ROOT file(s) → JetClass-II jet Parquet file(s)")
    p.add_argument("inputs", nargs="+", type=Path, help="ROOT files, all builtin or all Delphes (detected)")
    p.add_argument("-o", "--output", type=Path, nargs="+", required=True,
                   help="output Parquet file, or one per input (then each input is its own shard)")
    p.add_argument("--params", default="{}", help="jet parameters as JSON (docs/jets.md)")
    p.add_argument("--sample", default=None, help="sample name, checked against --generation-record")
    p.add_argument("--shard", type=int, nargs="+", help="shard number(s) of the inputs (default 0, 1, …)")
    p.add_argument("--generation-record", type=Path, default=None,
                   help="the generate job's provenance.json: shards it marks failed become empty jet shards")
    p.add_argument("--provenance", type=Path, default=None, help="provenance JSON (one record per output inside)")
    p.set_defaults(func=_cmd_ntuplize_jets)

    p = sub.add_parser("validate", help="check a dataset's Parquet shards; fail when they are broken")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--params", default="{}", help="validation thresholds as JSON")
    p.add_argument("--summary", type=Path, required=True, help="JSON summary")
    p.add_argument("--plot", type=Path, required=True, help="PNG with the validation distributions")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("tfds", help="Parquet shards → a TFDS (array_record) dataset with train/val/test")
    p.add_argument("inputs", nargs="+", type=Path, help="Parquet shards of one dataset")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument("-o", "--output", type=Path, required=True, help="TFDS data directory to create")
    p.set_defaults(func=_cmd_tfds)

    p = sub.add_parser("weights", help="sampling weights that flatten chosen distributions per class")
    p.add_argument("inputs", nargs="+", type=Path, help="Parquet shards (training split is used)")
    p.add_argument("--params", default="{}", help="the config's `weights` section as JSON")
    _add_weight_outputs(p, rows="event")
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser("train", help="train a model; resumes from the newest checkpoint in OUTPUT_DIR")
    p.add_argument("--data", "--tfds", dest="data", nargs="+", type=Path, required=True,
                   help="training data: TFDS data directories (PF model) or jet Parquet files/directories (taggers)")
    p.add_argument("--val-data", nargs="+", type=Path, default=None,
                   help="a tagger's validation jets (default: a fixed hash split of --data)")
    p.add_argument("--weights", type=Path, default=None, help="per-event sampling weights (Parquet)")
    p.add_argument("--params", default="{}", help="the config's `train` section as JSON")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output-dir", type=Path, required=True)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="run a trained model over a split and store per-element predictions")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--tfds", nargs="+", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("-o", "--output", type=Path, required=True, help="predictions Parquet")
    _add_inference_options(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="metrics and plots from predictions")
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--metrics-log", type=Path, default=None, help="the training metrics.jsonl, for loss curves")
    p.add_argument("--params", default="{}", help="the config's `evaluate` section as JSON")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--plots-dir", type=Path, required=True)
    _add_allow_nonfinite(p, rows="events", key="evaluate.allow_nonfinite")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("jet-dataset", help="jet shards of every jet sample → one shuffled train/val/test dataset")
    p.add_argument("inputs", nargs="+", type=Path, help="JetClass-II Parquet shards")
    p.add_argument("-o", "--output", type=Path, required=True, help="dataset directory (train/, val/, test/ inside)")
    p.add_argument("--params", required=True, help="split_fractions and jets_per_file as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffle and of the split")
    p.add_argument("--provenance", type=Path, default=None)
    p.set_defaults(func=_cmd_jet_dataset)

    p = sub.add_parser("jet-tfds", help="the jet dataset's split directories → a TFDS (array_record) dataset")
    p.add_argument("inputs", nargs="+", type=Path, help="jet dataset or split directories (train/, val/, test/)")
    p.add_argument("--name", required=True, help="dataset name")
    p.add_argument("-o", "--output", type=Path, required=True, help="TFDS data directory to create")
    p.set_defaults(func=_cmd_jet_tfds)

    p = sub.add_parser("jet-weights", help="per-jet sampling weights with weaver's semantics")
    p.add_argument("inputs", nargs="+", type=Path, help="the training split: jet Parquet files or a directory")
    p.add_argument("--params", required=True, help="the config's `jet_weights` section as JSON")
    _add_weight_outputs(p, rows="jet")
    p.set_defaults(func=_cmd_jet_weights)

    p = sub.add_parser("weaver-config", help="a weaver data config for the jet files")
    p.add_argument("--params", required=True, help="the `jet_weights` section plus labels and length, as JSON")
    p.add_argument("-o", "--output", type=Path, required=True, help="YAML file")
    p.set_defaults(func=_cmd_weaver_config)

    p = sub.add_parser("predict-tagger", help="run a trained tagger over jet files; scores per class, Parquet")
    p.add_argument("inputs", nargs="+", type=Path, help="jet Parquet files or directories")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("-o", "--output", type=Path, required=True, help="tagger predictions Parquet (docs/schema.md)")
    _add_inference_options(p)
    p.set_defaults(func=_cmd_predict_tagger)

    p = sub.add_parser("evaluate-tagger", help="ROC, AUC, rejection, mass sculpting and figures of a tagger")
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--metrics-log", type=Path, default=None, help="the training metrics.jsonl, for loss curves")
    p.add_argument("--params", default="{}", help="the config's `evaluate.tagging` section as JSON")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--plots-dir", type=Path, required=True)
    _add_allow_nonfinite(p, rows="jets", key="evaluate.tagging.allow_nonfinite")
    p.set_defaults(func=_cmd_evaluate_tagger)

    p = sub.add_parser("export", help="a trained model → ONNX, checked against torch with ONNX Runtime")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("-o", "--output", type=Path, required=True, help="ONNX file")
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    from colliderflow.train.preemption import PREEMPTED_EXIT_CODE, Preempted

    try:
        args.func(args)
    except Preempted as exc:  # a checkpoint is written: exit so that the workflow manager retries
        log.warning("%s", exc)
        return PREEMPTED_EXIT_CODE
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Bad input: one clear line naming the file and the problem, no traceback noise.
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

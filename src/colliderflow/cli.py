"""The `colliderflow` command: one subcommand per pipeline stage, so any stage also runs by hand.

Rules call these subcommands; each parses its arguments and hands them to one function of the stage's
module. Stage sections of the config arrive as one JSON object (`--params`), which is also what the
stage's provenance records.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from colliderflow.config import from_ordered_pairs, parse_json_arg
from colliderflow.jobs import SKIP_FAILED_ENV

log = logging.getLogger("colliderflow")


def _cmd_generate(args: argparse.Namespace) -> None:
    from colliderflow.jobs import generate_job

    generate_job(
        sample=args.sample,
        process=args.process,
        backend=args.backend,
        n_events=args.n_events,
        shards=args.shard,
        seeds=args.seed,
        outputs=args.output,
        params=parse_json_arg(args.params, what="--params"),
        backend_options=parse_json_arg(args.backend_options, what="--backend-options") or None,
        process_options=parse_json_arg(args.process_options, what="--process-options") or None,
        pileup_file=args.pileup_file,
        provenance=args.provenance,
        skip_failed=args.skip_failed,
    )


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


def _cmd_ntuplize(args: argparse.Namespace) -> None:
    from colliderflow.jobs import ntuplize_job

    ntuplize_job(inputs=args.inputs, shards=args.shard, outputs=args.output, sample=args.sample,
                 params=parse_json_arg(args.params, what="--params"), seed=args.seed,
                 generation_record=args.generation_record, provenance=args.provenance)


def _cmd_run_summary(args: argparse.Namespace) -> None:
    from colliderflow.jobs import write_run_summary

    write_run_summary(generation_records=args.records, output=args.output)


def _cmd_ntuplize_jets(args: argparse.Namespace) -> None:
    from colliderflow.jobs import ntuplize_jets_job

    ntuplize_jets_job(inputs=args.inputs, shards=args.shard, outputs=args.output, sample=args.sample,
                      params=parse_json_arg(args.params, what="--params"),
                      generation_record=args.generation_record, provenance=args.provenance)


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

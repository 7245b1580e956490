"""The `colliderflow` command: one subcommand per pipeline stage, so any stage also runs by hand.

Rules call these subcommands; each parses its arguments and hands them to one function of the stage's
module. Stage sections of the config arrive as one JSON object (`--params`), which is also what the
stage's provenance records.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from colliderflow.config import parse_json_arg

log = logging.getLogger("colliderflow")


def _cmd_generate(args: argparse.Namespace) -> None:
    from colliderflow.generate.run import generate_shard

    generate_shard(
        sample=args.sample,
        process=args.process,
        backend=args.backend,
        shard=args.shard,
        n_events=args.n_events,
        seed=args.seed,
        params=parse_json_arg(args.params, what="--params"),
        output=args.output,
        provenance=args.provenance,
    )


def _cmd_ntuplize(args: argparse.Namespace) -> None:
    from colliderflow.ntuplize.events import ntuplize_files

    ntuplize_files(
        args.inputs,
        output=args.output,
        sample=args.sample,
        shard=args.shard,
        params=parse_json_arg(args.params, what="--params"),
        seed=args.seed,
        provenance=args.provenance,
    )


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
        params=parse_json_arg(args.params, what="--params"),
        output=args.output,
        histograms=args.histograms,
        plot=args.plot,
        provenance=args.provenance,
    )


def _cmd_train(args: argparse.Namespace) -> None:
    from colliderflow.train import train

    train(
        tfds_dirs=args.tfds,
        weights=args.weights,
        params=parse_json_arg(args.params, what="--params"),
        seed=args.seed,
        output_dir=args.output_dir,
    )


def _cmd_predict(args: argparse.Namespace) -> None:
    from colliderflow.evaluate.predict import predict

    predict(model_dir=args.model_dir, tfds_dirs=args.tfds, output=args.output, split=args.split)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from colliderflow.evaluate.run import evaluate

    evaluate(
        predictions=args.predictions,
        metrics_log=args.metrics_log,
        params=parse_json_arg(args.params, what="--params"),
        summary=args.summary,
        plots_dir=args.plots_dir,
    )


def _cmd_export(args: argparse.Namespace) -> None:
    from colliderflow.export import export_onnx

    export_onnx(args.model_dir, args.output)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colliderflow", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = sub.add_parser("generate", help="simulate one shard of a sample into a ROOT file")
    p.add_argument("--sample", required=True, help="sample name (a key of `samples` in the config)")
    p.add_argument("--process", required=True, help="physics process, e.g. ee_ttbar")
    p.add_argument("--backend", default="builtin", choices=["builtin", "delphes", "key4hep"])
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--n-events", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--params", default="{}", help="the config's `generate` section as JSON")
    p.add_argument("-o", "--output", type=Path, required=True, help="output ROOT file")
    p.add_argument("--provenance", type=Path, help="provenance JSON written beside the output")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("ntuplize", help="simulation ROOT file(s) → one event-level Parquet shard")
    p.add_argument("inputs", nargs="+", type=Path, help="ROOT files (builtin, EDM4hep or Delphes; detected)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output Parquet file")
    p.add_argument("--sample", default=None, help="sample name stored in each row (default: input stem)")
    p.add_argument("--shard", type=int, default=0, help="shard number, part of each event_id")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test assignment")
    p.add_argument("--params", default="{}", help="the config's `ntuplize` section as JSON")
    p.add_argument("--provenance", type=Path)
    p.set_defaults(func=_cmd_ntuplize)

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
    p.add_argument("-o", "--output", type=Path, required=True, help="per-event weights, Parquet")
    p.add_argument("--histograms", type=Path, required=True, help="histograms and weight maps, JSON")
    p.add_argument("--plot", type=Path, required=True, help="weighted vs unweighted distributions, PNG")
    p.add_argument("--provenance", type=Path)
    p.set_defaults(func=_cmd_weights)

    p = sub.add_parser("train", help="train a model; resumes from the newest checkpoint in OUTPUT_DIR")
    p.add_argument("--tfds", nargs="+", type=Path, required=True, help="TFDS data directories")
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
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="metrics and plots from predictions")
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--metrics-log", type=Path, default=None, help="the training metrics.jsonl, for loss curves")
    p.add_argument("--params", default="{}", help="the config's `evaluate` section as JSON")
    p.add_argument("--summary", type=Path, required=True)
    p.add_argument("--plots-dir", type=Path, required=True)
    p.set_defaults(func=_cmd_evaluate)

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
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Bad input: one clear line naming the file and the problem, no traceback noise.
        log.error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

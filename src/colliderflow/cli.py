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
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from colliderflow.config import parse_json_arg
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
    with tempfile.TemporaryDirectory(prefix=".provenance.", dir=path.parent if path.parent.exists() else None) as tmp:
        records = [Path(tmp) / f"{i}.json" for i in range(n_shards)]
        yield records
        write_job_provenance(path, stage=stage, shard_records=records)


def _cmd_generate(args: argparse.Namespace) -> None:
    from colliderflow.generate.run import generate_shard

    params = parse_json_arg(args.params, what="--params")
    backend_options = parse_json_arg(args.backend_options, what="--backend-options") or None
    # One job may make several shards (config `shards_per_job`): each keeps its own seed and file.
    with _job_provenance(args.provenance, stage="generate", n_shards=len(args.output)) as shard_records:
        for (shard, seed, output), record in zip(_paired(args, "shard", "seed", "output"), shard_records, strict=True):
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
            )


def _cmd_ntuplize(args: argparse.Namespace) -> None:
    from colliderflow.ntuplize.events import ntuplize_files

    params = parse_json_arg(args.params, what="--params")
    if len(args.output) == 1:  # every input into one shard
        groups = [(args.inputs, (args.shard or [0])[0], args.output[0])]
    elif len(args.output) == len(args.inputs):  # one shard per input, as a job of several shards runs it
        args.inputs = [[path] for path in args.inputs]
        args.shard = args.shard or list(range(len(args.inputs)))
        groups = _paired(args, "inputs", "shard", "output")
    else:
        raise ValueError(f"-o takes one output, or one per input ({len(args.inputs)}); got {len(args.output)}")
    with _job_provenance(args.provenance, stage="ntuplize", n_shards=len(groups)) as shard_records:
        for (inputs, shard, output), record in zip(groups, shard_records, strict=True):
            ntuplize_files(
                inputs,
                output=output,
                sample=args.sample,
                shard=shard,
                params=params,
                seed=args.seed,
                provenance=record,
            )


def _cmd_ntuplize_jets(args: argparse.Namespace) -> None:
    from colliderflow.io.sim_reader import detect_format
    from colliderflow.ntuplize.builtin_jets import ntuplize_builtin_jets
    from colliderflow.ntuplize.jets import ntuplize_delphes_jets

    formats = {path: detect_format(path) for path in args.inputs}
    kinds = set(formats.values())
    if kinds == {"builtin"}:
        ntuplize = ntuplize_builtin_jets
    elif kinds == {"delphes"}:
        ntuplize = ntuplize_delphes_jets
    else:
        listing = ", ".join(f"{path} ({fmt})" for path, fmt in formats.items())
        raise ValueError(f"ntuplize-jets reads builtin or Delphes files, all of one kind; got {listing}")
    ntuplize(
        args.inputs,
        output=args.output,
        params=parse_json_arg(args.params, what="--params"),
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
    p.add_argument("--shard", type=int, nargs="+", required=True, help="shard number(s)")
    p.add_argument("--n-events", type=int, required=True, help="events per shard")
    p.add_argument("--seed", type=int, nargs="+", required=True, help="one seed per shard")
    p.add_argument("--params", default="{}", help="the config's `generate` section as JSON")
    p.add_argument("--backend-options", default="{}",
                   help="the sample's `delphes:` or `key4hep:` mapping as JSON (docs/backends.md)")
    p.add_argument("-o", "--output", type=Path, nargs="+", required=True, help="one output ROOT file per shard")
    p.add_argument("--provenance", type=Path, help="the job's provenance JSON (one record per shard inside)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("ntuplize", help="simulation ROOT file(s) → one event-level Parquet shard")
    p.add_argument("inputs", nargs="+", type=Path, help="ROOT files (builtin, EDM4hep or Delphes; detected)")
    p.add_argument("-o", "--output", type=Path, nargs="+", required=True,
                   help="output Parquet file, or one per input (then each input is its own shard)")
    p.add_argument("--sample", default=None, help="sample name stored in each row (default: input stem)")
    p.add_argument("--shard", type=int, nargs="+", help="shard number(s), part of each event_id (default 0, 1, …)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test assignment")
    p.add_argument("--params", default="{}", help="the config's `ntuplize` section as JSON")
    p.add_argument("--provenance", type=Path, help="the job's provenance JSON (one record per output inside)")
    p.set_defaults(func=_cmd_ntuplize)

    p = sub.add_parser("ntuplize-jets", help="simulation ROOT file(s) → one JetClass-II jet Parquet file")
    p.add_argument("inputs", nargs="+", type=Path, help="ROOT files, all builtin or all Delphes (detected)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output Parquet file")
    p.add_argument("--params", default="{}", help="jet parameters as JSON (docs/jets.md)")
    p.add_argument("--provenance", type=Path, default=None, help="provenance JSON of the output")
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

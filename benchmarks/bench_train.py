"""Is training limited by the model or by the data adapter, and how fast is it on CPU?

At the default model (config/config.yaml `train` section) on synthetic events of 100–200 elements,
this measures, in events (samples) per second, median of several repeats:

* collate      — data.collate_events alone: a list of in-memory events → one padded Batch;
* train step   — forward + loss + backward + clip + AdamW on pre-collated batches (what the model consumes);
* loader+step  — both together through the DataLoader and EpochBatchSampler, as train() runs them;
* forward      — inference only (what predict needs; it includes the track–cluster geometry, which
                 has no backward pass and so weighs more here than in a training step);
* train()      — the real entry point for a few dozen steps, samples_per_s from its metrics.jsonl;

for each torch thread count given (intra-op threads are the only parallelism on a 2-core CPU).
Rates are given per wall-clock second and per CPU second of this process: on a shared machine the
second is the steadier figure, and at one thread it is what an idle core would deliver.

    python benchmarks/bench_train.py [--events 256] [--steps 10] [--threads 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from colliderflow.train import data
from colliderflow.config import load_yaml
from colliderflow.models.normalise import fit_normalisation
from colliderflow.train.data import collate_events, synthetic_events
from colliderflow.train.sampling import EpochBatchSampler
from colliderflow.train.losses import LossConfig, mlpf_loss
from colliderflow.params import stage_params
from colliderflow.models import build_model, count_parameters
from colliderflow.models.mlpf import fit_regression_standardisation
from colliderflow.train import make_optimizer, train

ROOT = Path(__file__).resolve().parents[1]


def median_rate(fn: Callable[[], int], repeats: int) -> tuple[float, float]:
    """Median over `repeats` runs of fn() of (items / wall second, items / CPU second)."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        n = fn()
        wall.append(n / (time.perf_counter() - w0))
        cpu.append(n / (time.process_time() - c0))
    return statistics.median(wall), statistics.median(cpu)


def bench(params: dict[str, Any], events: list[dict], *, steps: int, repeats: int) -> dict[str, Any]:
    batch_size = params["batch_size"]
    batches = [events[i : i + batch_size] for i in range(0, len(events) - batch_size + 1, batch_size)]
    collated = [collate_events(b) for b in batches]
    torch.manual_seed(0)
    model = build_model(params)
    model.normaliser.set_statistics(fit_normalisation(events))
    model.set_regression_standardisation(*fit_regression_standardisation(events))
    optimizer = make_optimizer(model, lr=params["lr"], weight_decay=params["weight_decay"])
    loss_cfg = stage_params(LossConfig, params.get("loss"), where="train.loss")

    def step(batch: data.Batch) -> None:
        losses = mlpf_loss(model(batch.X, batch.mask), batch.X, batch.ytarget, batch.mask, loss_cfg,
                           scale=model.element_regression_scale(batch.X))
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), params["grad_clip"])
        optimizer.step()

    def run_collate() -> int:
        for b in batches:
            collate_events(b)
        return len(batches) * batch_size

    def run_steps() -> int:
        model.train()
        for i in range(steps):
            step(collated[i % len(collated)])
        return steps * batch_size

    def run_loader() -> int:
        model.train()
        sampler = EpochBatchSampler(len(events), batch_size=batch_size, seed=0, num_steps=steps)
        loader = torch.utils.data.DataLoader(events, batch_sampler=sampler, collate_fn=collate_events)
        for batch in loader:
            step(batch)
        return steps * batch_size

    @torch.inference_mode()
    def run_forward() -> int:
        model.eval()
        for b in collated:
            model(b.X, b.mask)
        return len(collated) * batch_size

    run_steps()  # warm-up: allocator, first-call overheads
    return {
        "collate": median_rate(run_collate, repeats),
        "train_step": median_rate(run_steps, repeats),
        "loader_plus_step": median_rate(run_loader, repeats),
        "forward": median_rate(run_forward, repeats),
        "param_count": count_parameters(model),
    }


def bench_train_entry(params: dict[str, Any], events: list[dict], *, steps: int) -> float:
    """samples/s that train() itself reports (median over its train lines after the first window)."""
    with tempfile.TemporaryDirectory() as tmp:
        tfds = Path(tmp) / "tfds"
        tfds.mkdir()
        splits = {"train": events, "val": events[: params["batch_size"] * 2]}
        original = data.open_split
        data.open_split = lambda d, split: splits[split]  # serve the synthetic events as a dataset
        try:
            train(tfds_dirs=[tfds], weights=None, seed=0, output_dir=Path(tmp) / "out",
                  params={**params, "max_steps": steps, "log_every": 10, "eval_every": steps,
                          "checkpoint_every": steps, "device": "cpu"})
        finally:
            data.open_split = original
        lines = [json.loads(x) for x in (Path(tmp) / "out" / "metrics.jsonl").read_text().splitlines()]
        rates = [r["samples_per_s"] for r in lines if r["split"] == "train"][1:]
        return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--events", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    params = load_yaml(args.config)["train"]
    events = synthetic_events(args.events, seed=0, min_elements=100, max_elements=200)
    mean_n = sum(len(ev["X"]) for ev in events) / len(events)
    print(f"model {params['model']} {params[params['model']]}, batch {params['batch_size']}, "
          f"{args.events} synthetic events, {mean_n:.0f} elements on average")
    results: dict[str, Any] = {"params": params, "mean_elements": mean_n, "by_threads": {}}
    for threads in args.threads:
        torch.set_num_threads(threads)
        r = bench(params, events, steps=args.steps, repeats=args.repeats)
        r["train_entry_samples_per_s"] = bench_train_entry(params, events, steps=max(30, 3 * args.steps))
        results["by_threads"][threads] = r
        print(f"threads={threads}: params {r['param_count']:,}          per wall s   per CPU s")
        for key, label in [("collate", "collate (events)"), ("train_step", "train step (samples)"),
                           ("loader_plus_step", "loader + step (samples)"), ("forward", "forward only (events)")]:
            print(f"  {label:24s} {r[key][0]:10.1f}  {r[key][1]:10.1f}")
        print(f"  {'train() (samples)':24s} {r['train_entry_samples_per_s']:10.1f}")
        share = r["train_step"][1] / r["collate"][1]
        print(f"  collate share of a training step's CPU time: {100 * share:.2f} %")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Training throughput of each model at its default size on CPU, and whether the data adapter keeps up.

For mlpf (synthetic events of 100–200 elements) and part / pelican (synthetic JetClass-II jets of
20–80 constituents, read through jet_data.JetDataset), in samples per second, median of repeats:

* collate    — the adapter alone: a list of in-memory items → one padded batch;
* train step — forward + loss + backward + clip + AdamW on pre-collated batches (what the model consumes).

If collate is much faster than train step, the loop is model-bound and loader workers would not help.

    python benchmarks/bench_models.py [--batch-size 32] [--steps 3] [--threads 2] [--json out.json]
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

import pyarrow.parquet as pq
import torch

from colliderflow.models.normalise import fit_normalisation
from colliderflow.train.data import collate_events, synthetic_events
from colliderflow.train.jet_data import JetDataset, collate_jets, synthetic_jet_table
from colliderflow.train.losses import LossConfig, mlpf_loss
from colliderflow.models import build_model, count_parameters
from colliderflow.models.registry import MODEL_INPUTS
from colliderflow.train import make_optimizer


def median_rate(fn: Callable[[], int], repeats: int) -> float:
    """Median over `repeats` runs of fn() of items per wall-clock second."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def bench(name: str, *, batch_size: int, steps: int, repeats: int, jets: JetDataset) -> dict[str, Any]:
    torch.manual_seed(0)
    loss_cfg = LossConfig()
    if name == "mlpf":
        items: Any = synthetic_events(batch_size * steps, seed=0, min_elements=100, max_elements=200)
        model = build_model({"model": name})
        model.normaliser.set_statistics(fit_normalisation(items))
        collate: Callable[[list[Any]], Any] = collate_events

        def loss_of(batch: Any) -> torch.Tensor:
            return mlpf_loss(model(batch.X, batch.mask), batch.X, batch.ytarget, batch.mask, loss_cfg)["loss"]
    else:
        items = [jets[i % len(jets)] for i in range(batch_size * steps)]
        model = build_model({"model": name, name: {"num_classes": len(jets.labels)}})
        collate = collate_jets

        def loss_of(batch: Any) -> torch.Tensor:
            logits = model(*(getattr(batch, k) for k in MODEL_INPUTS[name]))
            return torch.nn.functional.cross_entropy(logits, batch.label)

    chunks = [items[i * batch_size : (i + 1) * batch_size] for i in range(steps)]
    batches = [collate(c) for c in chunks]
    optimizer = make_optimizer(model, lr=1e-4, weight_decay=0.01)
    model.train()

    def run_collate() -> int:
        for c in chunks:
            collate(c)
        return batch_size * steps

    def run_steps() -> int:
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss_of(batch).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return batch_size * steps

    run_steps()  # warm-up
    return {"model": name, "param_count": count_parameters(model), "batch_size": batch_size,
            "collate_samples_per_s": median_rate(run_collate, repeats),
            "train_step_samples_per_s": median_rate(run_steps, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["mlpf", "part", "pelican"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "jets.parquet"
        pq.write_table(synthetic_jet_table(512, seed=0, labels=tuple(range(10)), min_particles=20,
                                           max_particles=80), shard)
        jets = JetDataset([shard])
    results = []
    for name in args.models:
        r = bench(name, batch_size=args.batch_size, steps=args.steps, repeats=args.repeats, jets=jets)
        results.append(r)
        print(f"{name:8s} {r['param_count']:>9,d} params  collate {r['collate_samples_per_s']:9.0f}/s  "
              f"train step {r['train_step_samples_per_s']:7.1f}/s")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()

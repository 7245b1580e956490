"""Training throughput of MLPF, ParT and PELICAN in float32 and in bf16 autocast, on a GPU (or a CPU smoke run).

Each model trains for a fixed number of AdamW steps on synthetic, learnable batches that live on the device
(no loader: this measures the model, forward + backward + step). For each model and dtype it prints

    <model> <dtype>: <samples/s> samples/s, batch <B>×<N>, loss <before> -> <after> (fixed batch, fp32, eval)

and per model the ratio bf16 / fp32 samples/s (goal ≥ 2× for mlpf and part on a GPU). The loss of one fixed
batch, in float32 and eval mode, is taken before and after training: if it did not fall, or anything is not
finite, the run fails (exit status 1). With --ddp under torchrun, every rank trains its own batches in
DistributedDataParallel (NCCL on CUDA, gloo on CPU) and rank 0 prints the global samples/s.

    python benchmarks/bench_gpu.py --device cuda            # the GPU figures (benchmarks/bench_gpu.sh)
    python benchmarks/bench_gpu.py --device cpu --steps 3   # a smoke run of the same code on a CPU
    torchrun --standalone --nproc_per_node=2 benchmarks/bench_gpu.py --device cuda --ddp

float32 on CUDA is true float32 (TF32 matmuls off, PyTorch's default), so the ratio is bf16 against fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colliderflow.models import build_model
from colliderflow.models.registry import MODEL_INPUTS
from colliderflow.schema import ELEM_TYPE_CLUSTER, ELEM_TYPE_TRACK, N_CLASSES, N_ELEM_FEATURES

MODELS = ("mlpf", "part", "pelican")
GOAL = {"mlpf": 2.0, "part": 2.0}  # bf16 / fp32 samples/s on a GPU
N_JET_CLASSES = 3
N_JET_FEATURES = 17
POOL = 4  # distinct batches cycled through by the training steps
# Model sizes: the defaults (ParT: the published ~2 M parameters) on a GPU, config/ci.yaml-like on a CPU.
SIZES = {
    "default": {"mlpf": {}, "part": {"dropout": 0.0}, "pelican": {}},
    "small": {
        "mlpf": {"embedding_dim": 32, "num_heads": 2, "num_layers": 1, "ff_dim": 64},
        "part": {"embedding_dim": 16, "embed_hidden": 32, "num_heads": 2, "num_layers": 1, "num_cls_layers": 1,
                 "ff_dim": 32, "pair_hidden": 8, "dropout": 0.0},
        "pelican": {"embed_channels": 4, "hidden_channels": 8, "num_layers": 1, "readout_hidden": 16},
    },
}
# (batch, elements or constituents) per model: production-like on a GPU, tiny on a CPU.
SHAPES = {
    "cuda": {"mlpf": (32, 256), "part": (256, 128), "pelican": (128, 64)},
    "cpu": {"mlpf": (8, 48), "part": (8, 32), "pelican": (8, 24)},
}


# --- synthetic, learnable data ---------------------------------------------------------------------------


def jet_batch(batch: int, length: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Boosted jets whose class sets their width (0.05, 0.15, 0.3 in η-φ): features [B, N, 17], p4 [B, N, 4]
    (px, py, pz, E), mask [B, N], label [B]. The width is in every pair's ΔR and d_ij, so all taggers can learn."""
    label = torch.randint(0, N_JET_CLASSES, (batch,), generator=gen)
    width = torch.tensor([0.05, 0.15, 0.3])[label][:, None]
    eta0 = torch.rand(batch, 1, generator=gen) * 4 - 2
    phi0 = torch.rand(batch, 1, generator=gen) * 2 * math.pi - math.pi
    frac = -torch.log(torch.rand(batch, length, generator=gen)) ** 2
    pt = 500.0 * frac / frac.sum(dim=1, keepdim=True) + 0.5
    deta, dphi = width * torch.randn(batch, length, generator=gen), width * torch.randn(batch, length, generator=gen)
    eta, phi = eta0 + deta, phi0 + dphi
    p4 = torch.stack([pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta), pt * torch.cosh(eta)], dim=-1)
    mask = torch.arange(length)[None, :] < torch.randint(length // 2, length + 1, (batch, 1), generator=gen)
    kin = torch.stack([torch.log(pt), torch.log(p4[..., 3]), deta, dphi, torch.hypot(deta, dphi)], dim=-1)
    noise = torch.randn(batch, length, N_JET_FEATURES - kin.shape[-1], generator=gen)
    features = torch.cat([kin, noise], dim=-1)
    return {"features": torch.where(mask[..., None], features, 0.0), "p4": torch.where(mask[..., None], p4, 0.0),
            "mask": mask, "label": label}


def pf_batch(batch: int, length: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Tracks and clusters X [B, N, 17] (type, pT, η, sin φ, cos φ, E, then standard normal columns) and
    targets that are functions of them: class (from the type and the sign of column 6), charge (tracks: sign
    of column 8), five regression values (0.1·tanh of columns 9–13)."""
    etype = torch.where(torch.rand(batch, length, generator=gen) < 0.5, ELEM_TYPE_TRACK, ELEM_TYPE_CLUSTER)
    pt = torch.exp(torch.randn(batch, length, generator=gen)) * 5.0
    eta = torch.randn(batch, length, generator=gen) * 1.5
    phi = torch.rand(batch, length, generator=gen) * 2 * math.pi - math.pi
    rest = torch.randn(batch, length, N_ELEM_FEATURES - 6, generator=gen)
    X = torch.cat([torch.stack([etype.float(), pt, eta, torch.sin(phi), torch.cos(phi), pt * torch.cosh(eta)],
                               dim=-1), rest], dim=-1)
    mask = torch.arange(length)[None, :] < torch.randint(length // 2, length + 1, (batch, 1), generator=gen)
    X = torch.where(mask[..., None], X, 0.0)
    is_track = etype == ELEM_TYPE_TRACK
    positive = X[..., 6] > 0
    cls = torch.where(is_track, torch.where(positive, 1, 4), torch.where(positive, 2, 3))  # ch. had., e, n. had., γ
    charge = torch.where(is_track, torch.where(X[..., 8] > 0, 2, 0), 1)  # charge + 1
    reg = 0.1 * torch.tanh(X[..., 9:14])
    return {"X": X, "mask": mask, "cls": torch.where(mask, cls, 0), "charge": charge, "reg": reg}


def loss_of(name: str, out: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Float32 loss of a model's outputs: cross-entropy of the jet class, or for MLPF cross-entropy of class
    and charge plus the mean squared regression error, over real elements."""
    if name != "mlpf":
        return F.cross_entropy(out.float(), batch["label"])
    m = batch["mask"]
    cls = F.cross_entropy(out.cls_logits.float()[m], batch["cls"][m])
    charge = F.cross_entropy(out.charge_logits.float()[m], batch["charge"][m])
    reg = F.mse_loss(out.regression.float()[m], batch["reg"][m])
    return cls + charge + reg


# --- one training run ---------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_run(name: str, dtype: str, *, device: torch.device, size: str, batch: int, length: int, steps: int,
              warmup: int, lr: float, seed: int, wrap: Callable[[nn.Module], nn.Module] = lambda m: m,
              ) -> dict[str, Any]:
    """Train `name` for warmup + steps steps in `dtype`; samples/s over the last `steps`; the fixed batch's loss."""
    torch.manual_seed(seed)
    section = dict(SIZES[size][name])
    if name != "mlpf":
        section["num_classes"] = N_JET_CLASSES
    if name == "part":
        section["num_features"] = N_JET_FEATURES
    model = build_model({"model": name, name: section}).to(device)
    net = wrap(model)
    gen = torch.Generator().manual_seed(seed)
    make = pf_batch if name == "mlpf" else jet_batch
    pool = [{k: v.to(device) for k, v in make(batch, length, gen).items()} for _ in range(POOL)]
    inputs = MODEL_INPUTS[name]

    def fixed_loss() -> float:
        model.eval()
        with torch.no_grad():
            value = float(loss_of(name, model(*(pool[0][k] for k in inputs)), pool[0]))
        model.train()
        return value

    before = fixed_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16"
                else contextlib.nullcontext())
    losses, t0 = [], time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            sync(device)
            t0 = time.perf_counter()
        b = pool[step % POOL]
        with autocast:
            out = net(*(b[k] for k in inputs))
        loss = loss_of(name, out, b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
    sync(device)
    seconds = time.perf_counter() - t0
    after = fixed_loss()
    finite = bool(torch.isfinite(torch.stack(losses)).all()) and all(
        bool(torch.isfinite(p).all()) for p in model.parameters())
    return {"model": name, "dtype": dtype, "batch": batch, "length": length, "steps": steps,
            "seconds": seconds, "samples_per_s": batch * steps / seconds, "loss_before": before,
            "loss_after": after, "finite": finite, "loss_fell": after < before}


def check(result: dict[str, Any]) -> str | None:
    """Why a run failed, or None."""
    if not result["finite"]:
        return "non-finite loss or parameters"
    if not result["loss_fell"]:
        return f"loss did not fall ({result['loss_before']:.4f} -> {result['loss_after']:.4f})"
    return None


def line(result: dict[str, Any], world: int = 1) -> str:
    ranks = f" on {world} ranks" if world > 1 else ""
    return (f"{result['model']} {result['dtype']}: {result['samples_per_s']:.1f} samples/s{ranks}, batch "
            f"{result['batch']}x{result['length']}, loss {result['loss_before']:.4f} -> {result['loss_after']:.4f}"
            " (fixed batch, fp32, eval)")


# --- drivers ----------------------------------------------------------------------------------------------


def single(args: argparse.Namespace, device: torch.device) -> int:
    shapes = SHAPES["cuda" if device.type == "cuda" else "cpu"]
    failures, results = [], []
    for name in args.models:
        batch, length = shapes[name]
        batch = args.batch_size or batch
        rates = {}
        for dtype in args.dtypes:
            r = train_run(name, dtype, device=device, size=args.size, batch=batch, length=length, steps=args.steps,
                          warmup=args.warmup, lr=args.lr, seed=args.seed)
            print(line(r), flush=True)
            results.append(r)
            rates[dtype] = r["samples_per_s"]
            if (why := check(r)) is not None:
                failures.append(f"{name} {dtype}: {why}")
        if {"fp32", "bf16"} <= set(rates):
            ratio = rates["bf16"] / rates["fp32"]
            goal = GOAL.get(name)
            verdict = f" (goal >= {goal:.1f}x on a GPU: {'met' if ratio >= goal else 'NOT met'})" if goal else ""
            print(f"{name}: bf16/fp32 = {ratio:.2f}x{verdict}", flush=True)
    _finish(args, device, results, failures)
    return 1 if failures else 0


def distributed(args: argparse.Namespace, device_type: str) -> int:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    local_rank = int(os.environ["LOCAL_RANK"])
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    shapes = SHAPES["cuda" if device_type == "cuda" else "cpu"]

    def wrap(model: nn.Module) -> nn.Module:
        return DistributedDataParallel(model, device_ids=[local_rank] if device_type == "cuda" else None)

    failures, results = [], []
    try:
        for name in args.models:
            batch, length = shapes[name]
            batch = args.batch_size or batch
            for dtype in args.dtypes:
                r = train_run(name, dtype, device=device, size=args.size, batch=batch, length=length,
                              steps=args.steps, warmup=args.warmup, lr=args.lr, seed=args.seed + rank, wrap=wrap)
                stats = torch.tensor([r["seconds"], 0.0 if check(r) is None else 1.0], dtype=torch.float64,
                                     device=device)
                dist.all_reduce(stats, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace; any failure fails
                r["seconds"], r["samples_per_s"] = float(stats[0]), world * batch * args.steps / float(stats[0])
                results.append(r)
                if rank == 0:
                    print(line(r, world), flush=True)
                if stats[1] > 0:
                    failures.append(f"{name} {dtype} ({world} ranks): {check(r) or 'failed on another rank'}")
    finally:
        dist.destroy_process_group()
    if rank == 0:
        _finish(args, device, results, failures)
    return 1 if failures else 0


def _finish(args: argparse.Namespace, device: torch.device, results: list[dict[str, Any]],
            failures: list[str]) -> None:
    if args.json:
        info = {"device": str(device), "torch": torch.__version__, "size": args.size,
                "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
        Path(args.json).write_text(json.dumps({**info, "results": results}, indent=2))
    for failure in failures:
        print(f"FAILED {failure}", file=sys.stderr, flush=True)
    print("bench_gpu: " + ("FAILED" if failures else "ok"), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda or cpu (the CPU smoke run)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 30 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="untimed first steps (default 5 on CUDA, 1 on CPU)")
    p.add_argument("--size", choices=sorted(SIZES), default=None, help="model sizes (default: default on CUDA, "
                   "small on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="override every model's batch size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ddp", action="store_true", help="under torchrun: DistributedDataParallel over the ranks")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.device not in ("cuda", "cpu"):
        p.error(f"--device: expected cuda or cpu, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: --device cuda but no CUDA device is available (use --device cpu for the smoke run)",
              file=sys.stderr)
        return 2
    on_gpu = args.device == "cuda"
    args.steps = args.steps or (30 if on_gpu else 3)
    args.warmup = args.warmup if args.warmup is not None else (5 if on_gpu else 1)
    args.size = args.size or ("default" if on_gpu else "small")
    if args.ddp:
        return distributed(args, args.device)
    if on_gpu:
        print(f"bench_gpu: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, TF32 matmul "
              f"{torch.backends.cuda.matmul.allow_tf32}", flush=True)
    return single(args, torch.device(args.device))


if __name__ == "__main__":
    sys.exit(main())

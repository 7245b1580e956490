#!/usr/bin/env bash
# The GPU checks in one call (< 5 minutes on one H100): every model trained in fp32 and in bf16 autocast on
# CUDA (loss must fall; samples/s per model and dtype, and the bf16/fp32 ratio: goal >= 2x for mlpf and part),
# a 2-GPU NCCL DDP run when two GPUs are visible, and the tests that only run on CUDA (predict on the GPU,
# models under CUDA bf16 autocast). Exits non-zero if any of it fails.
# On a machine without CUDA it runs the CPU smoke version of the same driver (--device cpu --steps 3).
#
#   benchmarks/bench_gpu.sh [extra bench_gpu.py options, e.g. --json results.json]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "bench_gpu.sh: no CUDA device, CPU smoke run"
    exec "$PY" benchmarks/bench_gpu.py --device cpu --steps 3 "$@"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" benchmarks/bench_gpu.py --device cuda "$@"

n_gpus=$("$PY" -c 'import torch; print(torch.cuda.device_count())')
if [ "$n_gpus" -ge 2 ]; then
    echo "bench_gpu.sh: DDP over 2 GPUs (NCCL)"
    "$PY" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node=2 benchmarks/bench_gpu.py \
        --device cuda --ddp --models mlpf part --steps 20
else
    echo "bench_gpu.sh: DDP skipped ($n_gpus GPU visible)"
fi

echo "bench_gpu.sh: CUDA-only tests"
"$PY" -m pytest -q -x -p no:cacheprovider tests/test_mixed_precision.py tests/test_predict.py \
    tests/test_predict_tagger.py -k cuda
echo "bench_gpu.sh: ok"

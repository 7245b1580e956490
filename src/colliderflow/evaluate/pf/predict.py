"""Run a trained model over a split and store one row per event: targets, baseline and prediction.

The output (colliderflow.schema.PREDICTION_COLUMNS) is all that evaluation needs, so metrics and plots
never load torch or the model. It uses the project's canonical Parquet layout (colliderflow.io.parquet:
per-element blocks list<fixed_size_list<float32, 8>>, jets list<fixed_size_list<float32, 4>>, no nulls);
`ypred` has the layout of `ytarget` (see models.mlpf.decode_particles).

The model runs on the job's device (colliderflow.devices: auto | cpu | cuda | cuda:N), in batches whose
inputs are moved there one at a time; the decoded rows come back to the CPU for writing. Precision is
float32 unless bf16 is asked for. Batches and their order do not depend on the device, so a CPU run writes
the same bytes as before devices were configurable; a GPU run in float32 agrees to float32 rounding.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from colliderflow.devices import check_precision, inference_autocast, resolve_device
from colliderflow.train.data import Event, collate_events, open_splits
from colliderflow.io.atomic import atomic_path
from colliderflow.io.parquet import canonicalize_table, row_list_type
from colliderflow.models.mlpf import decode_particles
from colliderflow.models.registry import load_trained
from colliderflow.schema import JET_FEATURES, N_PARTICLE_FEATURES, PREDICTION_COLUMNS

log = logging.getLogger(__name__)

BATCH_SIZE = 64
# The model builds [B, N, N] track–cluster tables (models.mlpf.track_cluster_distance2): a batch holds at most
# this many element pairs, so that a split of large events (thousands of elements) is cut into smaller
# batches instead of needing gigabytes. 64 events of the default samples (≤ ~250 elements) fit in one.
MAX_PAIRS_PER_BATCH = 1 << 22


SCHEMA = pa.schema([
    pa.field("event_id", pa.int64(), nullable=False),
    pa.field("sample", pa.string(), nullable=False),
    pa.field("ytarget", row_list_type(N_PARTICLE_FEATURES), nullable=False),
    pa.field("ycand", row_list_type(N_PARTICLE_FEATURES), nullable=False),
    pa.field("ypred", row_list_type(N_PARTICLE_FEATURES), nullable=False),
    pa.field("genmet", pa.float32(), nullable=False),
    pa.field("genjets", row_list_type(len(JET_FEATURES)), nullable=False),
])
assert SCHEMA.names == list(PREDICTION_COLUMNS)


def _nested(blocks: Sequence[np.ndarray], width: int) -> pa.ListArray:
    """Per-event [n_i, width] arrays → one list<fixed_size_list<float32, width>> column, without a Python loop
    over rows."""
    flat = [np.asarray(b, np.float32).reshape(-1, width) for b in blocks]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in flat])]).astype(np.int32)
    values = np.concatenate(flat).reshape(-1) if flat else np.zeros(0, np.float32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.FixedSizeListArray.from_arrays(pa.array(values), width))


@torch.inference_mode()
def _predict_batch(model: torch.nn.Module, events: list[Event], where: str, *, device: torch.device,
                   precision: str = "fp32") -> pa.Table:
    batch = collate_events(events)
    on_device = batch.to(device)
    with inference_autocast(device, precision):
        out = model(on_device.X, on_device.mask)
    rows = decode_particles(on_device.X, out).cpu().numpy()  # [B, N, 8]
    n = batch.mask.sum(dim=1).tolist()  # real elements per event
    table = pa.Table.from_arrays(
        [
            pa.array(batch.event_id.numpy()),
            pa.array(batch.sample, pa.string()),
            _nested([ev["ytarget"] for ev in events], N_PARTICLE_FEATURES),
            _nested([ev["ycand"] for ev in events], N_PARTICLE_FEATURES),
            _nested([rows[i, : n[i]] for i in range(len(events))], N_PARTICLE_FEATURES),
            pa.array(np.asarray([ev["genmet"] for ev in events], np.float32).reshape(-1)),
            _nested([ev["genjets"] for ev in events], len(JET_FEATURES)),
        ],
        names=SCHEMA.names,
    )
    return canonicalize_table(table, where)  # → SCHEMA (non-nullable, fixed-width rows)


def pair_limited_batches(events: list[Event], *, max_pairs: int) -> list[list[Event]]:
    """`events` cut, in order, into consecutive batches whose padded size B × N_max² stays within
    `max_pairs` (a single event larger than that is a batch of its own)."""
    batches: list[list[Event]] = []
    current: list[Event] = []
    longest = 0
    for ev in events:
        n = len(ev["X"])
        grown = max(longest, n)
        if current and (len(current) + 1) * grown * grown > max_pairs:
            batches.append(current)
            current, grown = [], n
        current.append(ev)
        longest = grown
    if current:
        batches.append(current)
    return batches


def predict(*, model_dir: Path, tfds_dirs: list[Path], output: Path, split: str = "test", device: str = "auto",
            precision: str = "fp32") -> None:
    """Write `output` (Parquet, atomically): the model in `model_dir` applied to `split` of every dataset,
    one row per event, datasets in the order given, computed on `device` in `precision` (colliderflow.devices).
    No event at all in the split is an error."""
    check_precision(precision, where="predict.precision")
    torch_device = resolve_device(device, where="predict.device")
    model, meta = load_trained(Path(model_dir))
    model.to(torch_device)
    sources = [open_splits([Path(d)], split, allow_empty=True) for d in tfds_dirs]
    if not tfds_dirs or sum(len(s) for s in sources) == 0:
        raise ValueError(f"{', '.join(map(str, tfds_dirs)) or 'no TFDS directory'}: split {split!r} holds no events")
    n_written = 0
    with atomic_path(output) as tmp, pq.ParquetWriter(tmp, SCHEMA, compression="zstd",
                                                      use_dictionary=["sample"]) as writer:
        for events in sources:
            for start in range(0, len(events), BATCH_SIZE):
                idx = list(range(start, min(start + BATCH_SIZE, len(events))))
                chunk = events.__getitems__(idx)
                for part in pair_limited_batches(chunk, max_pairs=MAX_PAIRS_PER_BATCH):
                    writer.write_table(_predict_batch(model, part, str(output), device=torch_device,
                                                      precision=precision))
                n_written += len(idx)
    log.info("%s: predictions of %s (step %s) for %d %s events on %s (%s)", output, meta["model"], meta.get("step"),
             n_written, split, torch_device, precision)

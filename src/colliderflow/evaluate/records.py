"""What both evaluations (pf/ and tagging/) read and write besides figures: the training log and strict JSON."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_LOG_COLUMNS = ("step", "loss", "loss_cls", "loss_charge", "loss_reg", "loss_gev", "lr", "samples_per_s", "elapsed_s")


def read_training_log(path: Path | None) -> dict[str, dict[str, np.ndarray]] | None:
    """metrics.jsonl → split → column → array; None when there is no log.

    Tolerant by design: a log of a run that was interrupted may end in a half-written line, and older
    runs may lack some keys; such lines are skipped and missing keys become NaN. Lines with split
    "event" (training's notes of a resume, a pre-emption, a corrupt checkpoint: no loss, no rate) are not
    metrics and are left out, so no figure or summary shows them as a split.
    """
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        log.warning("%s: no training log; the loss figure will say so", path)
        return None
    rows: dict[str, list[dict[str, Any]]] = {}
    skipped = 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), (int, float)):
            skipped += 1
            continue
        if record.get("split") == "event":
            continue
        rows.setdefault(str(record.get("split", "train")), []).append(record)
    if skipped:
        log.warning("%s: skipped %d unreadable line(s)", path, skipped)

    def number(value: Any) -> float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan

    out: dict[str, dict[str, np.ndarray]] = {}
    for split, records in rows.items():
        records.sort(key=lambda r: r["step"])
        out[split] = {key: np.array([number(r.get(key)) for r in records]) for key in _LOG_COLUMNS}
    return out


def json_safe(obj: Any) -> Any:
    """numpy → lists, NaN/inf → null: strict JSON that any reader (and jq) accepts."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, (np.integer, int)) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    return obj

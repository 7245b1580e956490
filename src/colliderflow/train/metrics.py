"""metrics.jsonl: one JSON object per logged step, appended as training goes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from colliderflow.io.atomic import write_text_atomic

METRICS_FILE = "metrics.jsonl"


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """One JSON object per line; appended and closed each time so a crash loses at most one line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def truncate_metrics(path: Path, *, after_step: int) -> None:
    """Drop lines logged after `after_step` (all of them for a fresh start), so that a resumed run's log
    reads as if it had never stopped."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= after_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut short by a crash
    write_text_atomic(path, "".join(line + "\n" for line in kept))


def last_metric(path: Path, split: str) -> float | None:
    last = None
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("split") == split:
                last = record["loss"]
    return last

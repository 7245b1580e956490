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


def read_metric_lines(path: Path) -> list[str]:
    """The complete lines of the log (a line cut short by a crash is left out)."""
    if not path.exists():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        kept.append(line)
    return kept


def restore_metrics(path: Path, history: list[str], *, after_step: int) -> None:
    """Make the log read as if the run had never stopped: the lines a checkpoint carried (`history`),
    or else the file's own, up to `after_step` (nothing for a fresh start)."""
    lines = history if history else read_metric_lines(path)
    kept = [line for line in lines if json.loads(line)["step"] <= after_step] if after_step > 0 else []
    if kept or path.exists():
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def last_metric(path: Path, split: str) -> float | None:
    last = None
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("split") == split:
                last = record["loss"]
    return last

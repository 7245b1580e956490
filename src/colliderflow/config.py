"""Seeds, hashes and small typed views of the validated workflow config.

The Snakefile validates the whole config against workflow/schemas/config.schema.yaml; stages receive
only their own section (as JSON on the command line), so a changed key re-runs only the jobs whose
section changed. Seeds are derived here, from the global seed and the job's identity, so that the same
config always gives the same events and no two shards share a random stream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

# Pythia accepts Random:seed in [0, 900_000_000].
_PYTHIA_MAX_SEED = 900_000_000


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the form every hash in the project is taken of."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(obj: Any) -> str:
    """A short, stable hash of a config section (sha256 of its canonical JSON, 16 hex digits)."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:16]


def derive_seed(global_seed: int, *parts: object) -> int:
    """A seed for one job, from the global seed and what identifies the job (sample, shard, stage…).

    Hashing rather than adding keeps neighbouring shards' streams unrelated and stays in Pythia's range.
    """
    digest = hashlib.sha256(canonical_json([global_seed, *[str(p) for p in parts]]).encode()).digest()
    return 1 + int.from_bytes(digest[:8], "little") % (_PYTHIA_MAX_SEED - 1)


def dataclass_from_section(cls: type[T], section: Mapping[str, Any] | None, *, where: str) -> T:
    """A config dataclass from its section (missing keys take the defaults).

    A misspelt key is an error naming it, never silently ignored; a section that is not a mapping is a
    ValueError, not a TypeError, because a malformed config is bad input that the CLI reports in one line.
    """
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(section).__name__}")  # noqa: TRY004
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**section)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with an error that names the file when it is not one."""
    path = Path(path)
    try:
        with path.open() as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_json_arg(text: str, *, what: str) -> dict[str, Any]:
    """Parse a JSON object given on the command line, naming the option when it is malformed."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{what}: expected a JSON object")
    return value


def ordered_pairs(section: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`section` with the mapping under `key` written as [name, value] pairs.

    canonical_json sorts object keys, which would lose an order that means something (the class order of
    `class_weights`, whose first class is weaver's `ref` reference); a list of pairs keeps it.
    """
    if key not in section or not isinstance(section[key], Mapping):
        return dict(section)
    return {**section, key: [[name, value] for name, value in section[key].items()]}


def from_ordered_pairs(params: dict[str, Any], key: str, *, what: str) -> dict[str, Any]:
    """Undo `ordered_pairs`: the [name, value] pairs under `key` back to a mapping in their order."""
    value = params.get(key)
    if not isinstance(value, list):
        return params
    if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in value):
        raise ValueError(f"{what}: {key} must be a mapping or a list of [name, value] pairs, got {value!r}")
    names = [p[0] for p in value]
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: {key} names a class twice: {names}")
    return {**params, key: {name: weight for name, weight in value}}

"""The grammar of jet label names: a name ↔ (category, multiset of tokens) ↔ an integer key.

`X_bb`, `X_YY_qqev`, `QCD_light` (optionally after `label_`): the grammar `jet_labels` documents. Pure
Python, so a label table in the config is checked when the Snakefile is parsed (`jet_params`), by the same
code the labeller builds its lookup table with (`jet_labels.LabelTable`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

TOKENS: Final[tuple[str, ...]] = ("b", "c", "s", "q", "g", "e", "m", "tauh", "taue", "taum", "v")
_TOKEN_CODE: Final = {t: i for i, t in enumerate(TOKENS)}
_PARSE_ORDER: Final = sorted(TOKENS, key=len, reverse=True)
_BASE = 5  # counts of one token per key are 0..4
_CATEGORY_STRIDE = _BASE ** len(TOKENS)
CATEGORY_X, CATEGORY_XYY, CATEGORY_QCD = 0, 1, 2
_MAX_QCD_COUNT = 2


def _parse_tokens(text: str, name: str) -> list[str]:
    tokens = []
    rest = text
    while rest:
        for token in _PARSE_ORDER:
            if rest.startswith(token):
                tokens.append(token)
                rest = rest[len(token) :]
                break
        else:
            raise ValueError(f"label {name!r}: cannot read {rest!r} as tokens {TOKENS}")
    return tokens


def label_key(category: int, tokens: Sequence[str]) -> int:
    """The integer a (category, multiset of tokens) pair is looked up by."""
    key = category * _CATEGORY_STRIDE
    for token in tokens:
        key += _BASE ** _TOKEN_CODE[token]
    return key


def parse_label(name: str) -> tuple[int, list[str]]:
    """(category, tokens) of a label name in the table grammar; ValueError naming the label otherwise."""
    body = name.removeprefix("label_")
    if body.startswith("X_YY_"):
        category, tokens = CATEGORY_XYY, _parse_tokens(body[5:], name)
    elif body.startswith("X_"):
        category, tokens = CATEGORY_X, _parse_tokens(body[2:], name)
    elif body == "QCD_light":
        category, tokens = CATEGORY_QCD, []
    elif body.startswith("QCD_"):
        category, tokens = CATEGORY_QCD, _parse_tokens(body[4:], name)
        if any(t not in ("b", "c", "s") for t in tokens) or any(tokens.count(t) > _MAX_QCD_COUNT for t in "bcs"):
            raise ValueError(f"label {name!r}: a QCD label holds at most two each of b, c, s")
    else:
        raise ValueError(f"label {name!r}: must start with X_, X_YY_ or QCD_ (optionally after 'label_')")
    if not tokens and category != CATEGORY_QCD:
        raise ValueError(f"label {name!r}: a resonance label needs at least one token")
    if any(tokens.count(t) >= _BASE for t in set(tokens)):
        raise ValueError(f"label {name!r}: at most {_BASE - 1} of one token")
    return category, tokens


def label_keys(names: Sequence[str]) -> list[int]:
    """The key of every name of a label table, in order; ValueError for an empty table, a name outside the
    grammar, or two names of one class."""
    if not names:
        raise ValueError("the label table is empty")
    keys = []
    seen: dict[int, str] = {}
    for name in names:
        key = label_key(*parse_label(name))
        if key in seen:
            raise ValueError(f"labels {seen[key]!r} and {name!r} describe the same class")
        seen[key] = name
        keys.append(key)
    return keys

"""Seeds and hashes that make runs reproducible, and provenance records."""

from __future__ import annotations

import json

import pytest

from colliderflow.config import canonical_json, config_hash, derive_seed, load_yaml, parse_json_arg
from colliderflow.provenance import provenance_record, write_provenance


def test_config_hash_ignores_key_order_but_not_values():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert canonical_json({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_derived_seeds_are_stable_distinct_and_in_pythia_range():
    seeds = {derive_seed(42, "generate", s, i) for s in ("ttbar", "qq", "ww") for i in range(200)}
    assert len(seeds) == 600
    assert all(1 <= s < 900_000_000 for s in seeds)
    assert derive_seed(42, "generate", "qq", 3) == derive_seed(42, "generate", "qq", 3)
    assert derive_seed(42, "generate", "qq", 3) != derive_seed(43, "generate", "qq", 3)


def test_load_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_yaml(bad)


def test_parse_json_arg_names_the_option():
    with pytest.raises(ValueError, match="--params"):
        parse_json_arg("{not json", what="--params")
    assert parse_json_arg('{"a": 1}', what="--params") == {"a": 1}


def test_provenance_record_is_reproducible(tmp_path):
    one = provenance_record(stage="generate", config={"x": 1}, seeds={"shard": 5})
    two = provenance_record(stage="generate", config={"x": 1}, seeds={"shard": 5})
    assert one == two
    assert one["config_hash"] == config_hash({"x": 1})
    assert one["versions"]["numpy"] != "absent"
    write_provenance(tmp_path / "p.json", one)
    assert json.loads((tmp_path / "p.json").read_text())["seeds"] == {"shard": 5}


def test_class_order_survives_canonical_json():
    """class_weights order is the class order (ref = first); the JSON a rule passes must keep it."""
    import json

    from colliderflow.config import canonical_json, from_ordered_pairs, ordered_pairs

    section = {"method": "ref", "class_weights": {"zeta": 1.0, "alpha": 2.0, "mu": 0.5}}
    plain = json.loads(canonical_json(section))
    assert list(plain["class_weights"]) == ["alpha", "mu", "zeta"]  # what sorted keys would do
    kept = from_ordered_pairs(json.loads(canonical_json(ordered_pairs(section, "class_weights"))), "class_weights",
                              what="--params")
    assert list(kept["class_weights"].items()) == [("zeta", 1.0), ("alpha", 2.0), ("mu", 0.5)]
    with pytest.raises(ValueError, match="twice"):
        from_ordered_pairs({"class_weights": [["a", 1.0], ["a", 2.0]]}, "class_weights", what="--params")

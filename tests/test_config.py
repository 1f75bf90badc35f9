"""The config resolver: the package's schemas are the only source of defaults, and errors are short and exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mgfm.config import SECTIONS, ConfigError, defaults, load_schema, resolve, resolve_config

ROOT = Path(__file__).resolve().parents[1]


def _schema_defaults(schema: dict) -> dict:
    """Walk a schema by hand: every property's default, with nested object defaults filled recursively."""
    out = {}
    for key, sub in schema.get("properties", {}).items():
        if "default" not in sub:
            continue
        value = sub["default"]
        if sub.get("type") == "object" and isinstance(value, dict):
            value = {**_schema_defaults(sub), **value}
        out[key] = value
    return out


@pytest.mark.parametrize("section", SECTIONS)
def test_empty_section_resolves_to_every_schema_default(section):
    assert defaults(section) == _schema_defaults(load_schema(section))


@pytest.mark.parametrize("section", SECTIONS)
def test_every_key_has_type_default_and_description(section):
    def walk(schema: dict, where: str) -> None:
        for key, sub in schema.get("properties", {}).items():
            for field in ("default", "description"):
                assert field in sub, f"{where}.{key} has no {field}"
            if sub.get("type") == "object":
                walk(sub, f"{where}.{key}")

    walk(load_schema(section), section)


def test_resolve_keeps_given_values_and_does_not_change_its_input():
    given = {"tau": 0.5}
    out = resolve("clips", given)
    assert given == {"tau": 0.5}
    assert out["tau"] == 0.5 and out["quota"] == defaults("clips")["quota"]


def test_mutable_defaults_are_copies():
    a, b = defaults("clips"), defaults("clips")
    a["iod_quotas"].append(7)
    assert b["iod_quotas"] != a["iod_quotas"]
    assert 7 not in defaults("clips")["iod_quotas"]


@pytest.mark.parametrize("path", ["config.yaml", "workflow/configs/paper.yaml"])
def test_shipped_configs_resolve(path):
    cfg = resolve_config(yaml.safe_load((ROOT / path).read_text()))
    assert set(SECTIONS) <= set(cfg)


@pytest.mark.parametrize(("section", "values", "expected"), [
    ("clips", {"tau": "high"}, "clips.tau: expected number, got 'high'"),
    ("clips", {"tua": 0.3}, "clips.tua: unknown key (did you mean 'tau'?)"),
    ("clips", {"quota": 0}, "clips.quota: 0 is not allowed (minimum 1)"),
    ("pose", {"backend": "tf"}, "pose.backend: 'tf' is not allowed; choose one of 'onnx', 'mmpose'"),
    ("eval", {"linear_probe": {"epochs": "x"}}, "eval.linear_probe.epochs: expected integer, got 'x'"),
])
def test_errors_name_the_key_the_value_and_what_is_allowed(section, values, expected):
    with pytest.raises(ConfigError) as err:
        resolve(section, values)
    message = str(err.value)
    assert expected in message
    assert len(message.splitlines()) <= 6, message


def test_unknown_top_level_key_is_named():
    with pytest.raises(ConfigError, match=r"config\.pretrian: unknown key \(did you mean 'pretrain'\?\)"):
        resolve_config({"pretrian": {}})


def test_unknown_section_is_refused():
    with pytest.raises(ConfigError, match="unknown config section 'train'"):
        resolve("train", {})

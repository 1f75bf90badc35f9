"""The ``pretrain`` config section with every default filled from workflow/schemas/pretrain.schema.yaml.

The schema is the only place the defaults live; the dataclasses built from the section (``DSTEConfig``,
``AugmentConfig``, ``DecorrelationWeights``, ``TrainConfig``) have none. This is a stand-in for the
project-wide resolver ``mgfm.config.resolve("pretrain", values)``, which replaces it once available.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import jsonschema
import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "pretrain.schema.yaml"


@cache
def _schema() -> dict:
    if not SCHEMA.is_file():
        raise FileNotFoundError(f"{SCHEMA}: the pretrain schema (defaults of the pretrain section) is missing")
    return yaml.safe_load(SCHEMA.read_text())


def _fill_defaults(schema: dict, value: dict) -> None:
    """Set every missing property that has a default, recursively into objects (in place)."""
    for key, sub in schema.get("properties", {}).items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if sub.get("type") == "object" and isinstance(value.get(key), dict):
            _fill_defaults(sub, value[key])


def resolve_pretrain(values: dict | None) -> dict:
    """The ``pretrain`` section validated against its schema with every default filled (a new dict)."""
    resolved = copy.deepcopy(values or {})
    _fill_defaults(_schema(), resolved)
    try:
        jsonschema.validate(resolved, _schema())
    except jsonschema.ValidationError as err:
        where = ".".join(["pretrain", *(str(p) for p in err.absolute_path)])
        message = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            message = f"unknown keys {sorted(set(err.instance) - set(err.schema.get('properties', {})))}"
        raise ValueError(f"{where}: {message}") from None
    return resolved

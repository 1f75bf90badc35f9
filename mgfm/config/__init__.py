"""The one place config defaults live: JSON schemas shipped with the package, and the resolver that applies them.

Every config section (``dataset``, ``download``, ``pose``, ``clips``, ``skeleton``, ``rgb``, ``pretrain``,
``eval``) has its own schema in ``mgfm/config/schemas/<section>.schema.yaml`` in which every key has a type, a
default and a description. ``resolve(section, values)`` validates a section and fills in every default, so a
stage sees the same values whether Snakemake called it (``workflow/rules/common.smk`` resolves the whole config
with ``resolve_config``) or a test or a user's script called its public function with a partial section.
Errors name the key, the offending value and what is allowed, in a few lines.

Which keys each workflow step reads is declared once in ``mgfm.config.steps``: a rule is given only those keys
(so a change reruns exactly the steps that read it) and the step's function, resolving with ``keys=``, sees
only those keys (so it cannot read one its rule does not pass).
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # jsonschema is imported where validation runs, so model and training code imports without it
    from jsonschema.exceptions import ValidationError

from mgfm.config.paths import path_errors
from mgfm.config.strict import strict_types

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SECTIONS = ("dataset", "download", "pose", "clips", "skeleton", "rgb", "pretrain", "rgb_pretrain", "eval", "infer")
MAX_ERRORS = 5


class ConfigError(ValueError):
    """A config value that its schema does not allow; the message names the key and what is allowed."""


def schema_path(section: str) -> Path:
    """The schema file of one section (``config`` for the top level)."""
    if section != "config" and section not in SECTIONS:
        raise ConfigError(f"unknown config section {section!r} (sections: {', '.join(SECTIONS)})")
    return SCHEMA_DIR / f"{section}.schema.yaml"


@functools.lru_cache(maxsize=None)
def _load_schema(section: str) -> dict:
    return yaml.safe_load(schema_path(section).read_text())


def load_schema(section: str) -> dict:
    """A copy of one section's schema (callers may not change the cached one)."""
    return copy.deepcopy(_load_schema(section))


def _with_defaults(validator_class):
    """Extend a validator so that ``properties`` first fills each missing key with a copy of its default."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def fill_then_validate(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": fill_then_validate})


@functools.lru_cache(maxsize=1)
def _default_filling_validator():
    """The Draft 2020-12 validator that fills defaults and takes only Python ints as integers (built on first
    use: config loading needs jsonschema, importing the package does not)."""
    from jsonschema import Draft202012Validator

    return _with_defaults(strict_types(Draft202012Validator))


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(prefix: str, path) -> str:
    parts = [prefix] + [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[")


def _describe(error: ValidationError, prefix: str) -> str:
    """One or two lines per error: the key, the offending value and what is allowed, never the whole schema."""
    key = _key(prefix, error.absolute_path)
    schema, value = error.schema, error.instance
    if error.validator == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        lines = []
        for extra in sorted(set(value) - set(allowed)):
            hint = difflib.get_close_matches(str(extra), allowed, n=1)
            guess = f" (did you mean {hint[0]!r}?)" if hint else ""
            lines.append(f"{key}.{extra}: unknown key{guess}; allowed keys: {', '.join(allowed)}")
        return "\n".join(lines)
    if error.validator == "type":
        return f"{key}: expected {error.validator_value}, got {_short(value)}"
    if error.validator == "enum":
        return f"{key}: {_short(value)} is not allowed; choose one of {', '.join(map(repr, error.validator_value))}"
    if error.validator == "required":
        return f"{key}: {error.message}"
    description = schema.get("description", "") if isinstance(schema, dict) else ""
    text = f"{key}: {_short(value)} is not allowed ({error.validator} {_short(error.validator_value)})"
    if description and error.validator in ("oneOf", "anyOf", "pattern", "not"):
        text += f"\n    {key}: {' '.join(str(description).split())[:160]}"
    return text


def _errors(schema: dict, instance: dict) -> Iterator[ValidationError]:
    validator = _default_filling_validator()(schema)
    return iter(sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]))


def _validate(schema: dict, instance: dict, prefix: str) -> None:
    errors = list(_errors(schema, instance))
    if not errors:
        return
    lines = [_describe(err, prefix) for err in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        lines.append(f"... and {len(errors) - MAX_ERRORS} more")
    raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def _check_paths(section: str, instance: dict) -> None:
    """Path-like keys hold only characters a shell command and a file pattern take as written (config.paths)."""
    lines = path_errors(section, instance)
    if lines:
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def resolve(section: str, values: Mapping | None = None, keys: Iterable[str] | None = None) -> dict:
    """Validate one section and return a new dict with every default filled in (the input is not changed).

    With ``keys``, the result holds only those top-level keys: a step resolving its rule's slice this way gets a
    KeyError, not a silent default, if it reads a key its rule does not pass (the other given keys are still
    validated, so a full section works too).
    """
    if section not in SECTIONS:
        raise ConfigError(f"unknown config section {section!r} (sections: {', '.join(SECTIONS)})")
    if values is not None and not isinstance(values, Mapping):
        raise ConfigError(f"config section {section!r} must be a mapping, got {_short(values)}")
    instance = copy.deepcopy(dict(values or {}))
    _validate(_load_schema(section), instance, section)
    _check_paths(section, instance)
    if keys is None:
        return instance
    keys = tuple(keys)
    unknown = sorted(set(keys) - set(instance))
    if unknown:
        raise ConfigError(f"{section}: no such keys {unknown} (keys: {', '.join(sorted(instance))})")
    return {key: instance[key] for key in keys}


def resolve_config(config: Mapping) -> dict:
    """Validate the top level and every section; return the whole config with all defaults filled in."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"the config must be a mapping, got {_short(config)}")
    top = copy.deepcopy(dict(config))
    _validate(_load_schema("config"), top, "config")
    _check_paths("config", top)
    for section in SECTIONS:
        top[section] = resolve(section, top.get(section))
    return top


def default_seed() -> int:
    """The default of the top-level ``seed`` key (commands whose ``--seed`` is optional use it)."""
    return int(_load_schema("config")["properties"]["seed"]["default"])


def defaults(section: str) -> dict:
    """Every default of one section (the section resolved from nothing)."""
    return resolve(section, {})

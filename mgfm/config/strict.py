"""Strict JSON types for config validation: an ``integer`` key takes an int, never ``5.0`` or ``true``.

JSON Schema counts any float with a zero fractional part as an integer (so ``epochs: 5.0`` passes) and
Python counts ``True`` as an int; a key typed ``integer`` then reaches ``range()`` or a tensor shape as a
float and fails deep inside a job. Here the config's values are checked as Python types, before any job.
"""

from __future__ import annotations

from typing import Any


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def strict_types(validator_class):
    """``validator_class`` with a type checker whose ``integer`` is a Python int (bools excluded)."""
    from jsonschema import validators

    checker = validator_class.TYPE_CHECKER.redefine("integer", _is_integer)
    return validators.extend(validator_class, type_checker=checker)

"""Typed config objects share one constructor: ``Cls.from_section(section, **extra)``, from a section (or
sub-section) that ``mgfm.config.resolve`` has already resolved.

Defaults live only in the schemas, so a config dataclass never fills or resolves a section itself: whoever holds a
partial section resolves it once (``resolve`` / ``resolve_step``, or ``from_partial`` for a whole top-level section)
and hands the result on. ``section_values`` is the key check every ``from_section`` shares: a key the section lacks
or one the dataclass does not know is an error naming the config key, never a silent default or a TypeError from
``__init__``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import MISSING, fields
from typing import TypeVar

from mgfm.config import ConfigError, resolve

T = TypeVar("T")


def section_values(cls: type, section: Mapping, key: str, *, supplied: Iterable[str] = (),
                   ignored: Iterable[str] = ()) -> dict:
    """The values of a resolved ``section`` for the fields of dataclass ``cls`` (a new dict).

    ``key``: where the section lives in the config (``pretrain.model``), named by errors. ``supplied``: fields the
    caller passes itself (a seed), never read from the section. ``ignored``: section keys that belong to another
    object built from the same section (the projector sizes beside the encoder's). A field with a default of its
    own may be absent; any other field missing, or a key the dataclass does not know, is a ConfigError.
    """
    if not isinstance(section, Mapping):
        raise ConfigError(f"{key}: expected a resolved config section (a mapping), got {type(section).__name__}")
    supplied = set(supplied)
    own = [f for f in fields(cls) if f.init and f.name not in supplied]
    names = [f.name for f in own]
    required = {f.name for f in own if f.default is MISSING and f.default_factory is MISSING}
    missing = [n for n in names if n in required and n not in section]
    unknown = sorted(set(section) - set(names) - set(ignored))
    if missing or unknown:
        raise ConfigError(f"{key}: missing keys {missing}, unknown keys {unknown} (build {cls.__name__} from the "
                          "section resolved by mgfm.config.resolve)")
    return {n: section[n] for n in names if n in section}


def from_partial(cls: type[T], section: str, values: T | Mapping | None = None) -> T:
    """``cls.from_section`` of the top-level config ``section`` given in part (a user's script, a test, a recorded
    section read from a file), resolved here once; an instance of ``cls`` is returned as it is. Public functions
    that accept such a section call this at their entry, so nothing below them resolves again."""
    if isinstance(values, cls):
        return values
    return cls.from_section(resolve(section, values))

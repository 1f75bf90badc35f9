"""The config a run sees: schema defaults, then the chosen config file(s) in order, then ``--config`` values.

The repository's ``config.yaml`` (the embedded demo) is one such file, used only when no config file is given:
``snakemake --cores all`` runs the demo, ``snakemake --configfile workflow/configs/paper.yaml`` runs exactly
paper.yaml and the schema defaults, and no value of the demo reaches it. A config that wants the demo's values
as its base says so by listing it first (``--configfile config.yaml own.yaml``).

Files are merged key by key in order (a later file's mapping updates an earlier one's, recursively; any other
value, lists included, replaces it), then the ``--config`` values the same way, then every section is validated
and completed from its schema. The Snakefile (``workflow/rules/common.smk``) and ``mgfm config show`` both call
``run_config``, so what the command prints is what the rules are given.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from mgfm.config import ConfigError, resolve_config

#: the repository's demo config, beside the Snakefile (what a run without --configfile uses)
DEMO_CONFIG_NAME = "config.yaml"
_CONFIG_KEY = re.compile(r"[a-zA-Z_][\w-]*\w$")


def merge(base: Mapping, change: Mapping) -> dict:
    """``base`` updated by ``change`` key by key: mappings merge recursively, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in change.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config_file(path: str | Path) -> dict:
    """One config file (YAML or JSON) as a mapping; an empty file is an empty config."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot be read ({err.strerror or err})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path}: not valid YAML ({err})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: the top level must be a mapping of config keys, got {type(data).__name__}")
    return dict(data)


def config_files(given: Iterable[str | Path], demo_config: str | Path) -> list[Path]:
    """The files a run reads: the ones given, in order, or the demo config when none is given."""
    files = [Path(f) for f in given]
    return files or [Path(demo_config)]


def merged_config(files: Iterable[str | Path], overrides: Mapping | None = None) -> dict:
    """The files merged in order, then ``overrides`` (``--config``), before any default is filled in."""
    out: dict = {}
    for f in files:
        out = merge(out, load_config_file(f))
    return merge(out, overrides or {})


def run_config(given_files: Iterable[str | Path], overrides: Mapping | None, demo_config: str | Path) -> dict:
    """The whole resolved config of a run: defaults filled in, every section validated (ConfigError names the
    key). ``given_files``: the --configfile list (empty: ``demo_config``); ``overrides``: the --config values."""
    return resolve_config(merged_config(config_files(given_files, demo_config), overrides))


def _scalar(text: str) -> Any:
    """A --config value as Snakemake reads it: int, float, True/False, then YAML (strings inside), else the text."""
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if text in ("True", "False"):
        return text == "True"
    try:
        value = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError:
        return text
    return text if value is None or callable(value) else value


def parse_overrides(entries: Iterable[str]) -> dict:
    """``KEY=VALUE`` entries of ``--config`` as Snakemake parses them (top-level keys; an empty value is null)."""
    out: dict = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep:
            raise ConfigError(f"--config {entry!r}: entries are KEY=VALUE")
        if not _CONFIG_KEY.match(key):
            raise ConfigError(f"--config {entry!r}: the key must be a top-level config key (a letter or _, then letters, digits, _ or -)")
        out = merge(out, {key: None if value == "" else _scalar(value)})
    return out

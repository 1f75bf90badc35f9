"""Path-like config values: a conservative character set, checked when the config is resolved.

Paths from the config end up in shell commands (every rule quotes them) and in Snakemake file patterns (where
braces are wildcards). Quoting makes spaces, parentheses and non-ASCII letters safe, so those are allowed; a
character that only a shell or Snakemake gives meaning to (``$``, backticks, quotes, backslash, braces, glob
and redirection characters, control characters) has no business in a file name, so it is refused before any
job starts, naming the key. A value may not start with ``-`` (a command would read it as an option).

Allowed: letters and digits of any script, space, and ``_ - . / + , = @ : % ( )``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Punctuation a path may hold besides letters, digits and the space.
PATH_PUNCTUATION = "_-./+,=@:%()"
ALLOWED_TEXT = "letters, digits, space and " + " ".join(PATH_PUNCTUATION)

#: Path-like keys of each section ("config" is the top level); ``[]`` marks a list of paths.
PATH_KEYS: dict[str, tuple[str, ...]] = {
    "config": ("results",),
    "dataset": ("manifest", "annotations", "taxonomy"),
    "pose": ("model", "detector.model", "mmpose.config", "mmpose.checkpoint", "mmpose.det_config",
             "mmpose.det_checkpoint"),
    "clips": ("prior",),
    "rgb_pretrain": ("teacher.weights", "teacher.onnx", "init.checkpoint", "motion.objects_dir"),
    "eval": ("finetune.rgb.init.checkpoint",),
    "infer": ("videos[]", "video_dir"),
}


def path_problem(value: str) -> str | None:
    """Why ``value`` cannot be a path of the workflow, or None when it can."""
    if value != value.strip():
        return "has leading or trailing whitespace"
    if value.startswith("-"):
        return "starts with '-' (a command would read it as an option)"
    bad = sorted({c for c in value if not (c.isalnum() or c == " " or c in PATH_PUNCTUATION)})
    if bad:
        shown = ", ".join(repr(c) if c.isprintable() else f"U+{ord(c):04X}" for c in bad)
        return f"holds {shown}"
    return None


def describe(key: str, value: str, why: str) -> str:
    """The one-line message for a refused path value."""
    return (f"{key}: {value!r} is refused: it {why}; a path of the workflow holds only {ALLOWED_TEXT}, and "
            "does not start with '-'")


def _values(instance: Mapping, dotted: str) -> Iterable[tuple[str, Any]]:
    """(key as printed, value) of one dotted key, every element of a ``[]`` list key."""
    node: Any = instance
    parts = dotted.removesuffix("[]").split(".")
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return []
        node = node[part]
    if dotted.endswith("[]"):
        return [(f"{'.'.join(parts)}[{i}]", v) for i, v in enumerate(node)] if isinstance(node, list) else []
    return [(".".join(parts), node)]


def path_errors(section: str, instance: Mapping) -> list[str]:
    """One line per path-like key of ``section`` whose value the workflow cannot take."""
    lines = []
    for dotted in PATH_KEYS.get(section, ()):
        for key, value in _values(instance, dotted):
            if isinstance(value, str) and value and (why := path_problem(value)) is not None:
                lines.append(describe(f"{section}.{key}", value, why))
    return lines

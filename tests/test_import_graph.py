"""Data and imports flow one way: no stage package imports a later one (static: imports parsed with ``ast``).

Stage order (README, "Package layout"): common -> config -> core -> ingest -> pose -> clips -> packs -> models
-> train -> eval -> infer -> tables. A module may import its own stage and earlier ones. ``common`` and ``config`` are
the helpers (utilities; the config schemas and their resolver), ``core`` the formats every stage reads.
``mgfm.demo`` (the synthetic corpus, its renderer, the demo pose model's network and training) sits beside the
stages: it may import any of them, and no stage imports it (only the demo's rules and the tests do). ``mgfm/cli.py`` and
``mgfm/__main__.py`` sit above every stage (the command line finds the stage ``cli`` modules by name at run
time); a stage's ``cli`` module may import ``mgfm.cli`` (``json_object``) besides its own stage.
Every import counts, at module level or inside a function.

Within a stage too, no two modules import each other, directly or through others: a deferred import inside a
function hides a circle from Python's import order but not from the reader (the shared piece belongs in one of
them, or in a module both import).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mgfm"
STAGES = ("common", "config", "core", "ingest", "pose", "clips", "packs", "models", "train", "eval", "infer", "tables")
#: the demo generator: above the stages (it uses them), imported by none of them
DEMO = "demo"
TOP = {"mgfm", "mgfm.cli", "mgfm.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``mgfm`` import in the file; ``from <package> import y`` yields ``<package>.y``,
    so that importing a submodule by name (``from mgfm import eval``) counts as importing it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if (ROOT / base.replace(".", "/")).is_dir():  # a package: the names may be its submodules
                found += [(node.lineno, f"{base}.{a.name}" if a.name != "*" else base) for a in node.names]
            else:
                found.append((node.lineno, base))
    return [(line, name) for line, name in found if name == "mgfm" or name.startswith("mgfm.")]


def stage_of(module: str) -> str | None:
    """The stage package of a module (None for the package root and the command line above the stages)."""
    if module in TOP:
        return None
    stage = module.split(".")[1]
    if stage not in STAGES and stage != DEMO:
        raise AssertionError(f"{module}: package mgfm.{stage} is not in the stage order {STAGES}: add it there and "
                             "to the README's package table")
    return stage


def violations(path: Path) -> list[str]:
    module = module_name(path)
    own = stage_of(module)
    if own is None:
        return []
    bad = []
    for line, target in imported_modules(path):
        if target == "mgfm":
            continue
        where = f"{path.relative_to(ROOT)}:{line}: {module} imports {target}"
        if target in TOP:
            if not (target == "mgfm.cli" and module.endswith(".cli")):
                bad.append(f"{where} (only a stage's cli module may import mgfm.cli)")
            continue
        other = stage_of(target)
        if own == DEMO:
            continue
        if other == DEMO:
            bad.append(f"{where} (no stage imports the demo generator: only its rules and the tests do)")
        elif STAGES.index(other) > STAGES.index(own):
            bad.append(f"{where} (stage {other} comes after {own})")
    return bad


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports (a name inside a module counts as importing that module)."""
    modules = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for _, name in imported_modules(path):
            while name and name not in modules:     # mgfm.a.b.func -> mgfm.a.b
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per group of modules that reach each other (strongly connected components, Tarjan), each
    written as a path that starts and ends at its smallest module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [circle_through(graph, group) for group in groups]


def circle_through(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest import path from the group's first module back to itself (breadth first, inside the group)."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & group):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(f"no circle through {sorted(group)}")


def test_every_stage_package_is_in_the_order():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages == {*STAGES, DEMO}


def test_no_stage_imports_a_later_one():
    bad = [v for path in package_files() for v in violations(path)]
    assert not bad, "imports against the stage order:\n" + "\n".join(bad)


def test_no_import_cycles():
    cycles = import_cycles(import_graph(package_files()))
    assert not cycles, "modules that import each other (deferred imports count):\n" + "\n".join(
        " -> ".join(c) for c in cycles)


def test_the_cycle_check_counts_deferred_imports_and_longer_circles(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    files = {
        "a.py": "from mgfm.infer.b import thing\n",
        "b.py": "def f():\n    from mgfm.infer import c\n",        # deferred, and a module named by from-import
        "c.py": "import mgfm.infer.a\n",
        "d.py": "from mgfm.infer.a import thing\nfrom mgfm.common.atomic import atomic_path\n",
    }
    for name, text in files.items():
        path = tmp_path / "mgfm" / "infer" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    paths = sorted((tmp_path / "mgfm" / "infer").glob("*.py"))
    assert import_cycles(import_graph(paths)) == [["mgfm.infer.a", "mgfm.infer.b", "mgfm.infer.c", "mgfm.infer.a"]]
    (tmp_path / "mgfm" / "infer" / "b.py").write_text("def f():\n    return 1\n")
    assert import_cycles(import_graph(paths)) == []


def test_core_is_a_leaf():
    """mgfm.core imports only the helpers: every stage can read the stores without pulling in another stage."""
    bad = [f"{p.relative_to(ROOT)}: {t}" for p in (PACKAGE / "core").rglob("*.py") for _, t in imported_modules(p)
           if t != "mgfm" and stage_of(t) not in ("common", "config", "core")]
    assert not bad, bad


@pytest.mark.parametrize("source, message", [
    ("from mgfm.eval.feature_store import read_features\n", "stage eval comes after train"),
    ("def f():\n    from mgfm.tables import paper\n", "stage tables comes after train"),
    ("from mgfm import eval\n", "stage eval comes after train"),
    ("from ..eval import metrics\n", "stage eval comes after train"),
    ("from mgfm.cli import json_object\n", "only a stage's cli module may import mgfm.cli"),
])
def test_the_check_catches_a_later_stage(tmp_path, monkeypatch, source, message):
    """The checker itself: imports of a later stage, in any spelling, from a module of the train stage."""
    fake_root = tmp_path
    path = fake_root / "mgfm" / "train" / "loop.py"
    path.parent.mkdir(parents=True)
    path.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    found = violations(path)
    assert len(found) == 1 and message in found[0], found


def test_the_check_allows_earlier_stages_and_keeps_the_demo_apart(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    ok = tmp_path / "mgfm" / "train" / "cli.py"
    ok.parent.mkdir(parents=True)
    ok.write_text("from mgfm.cli import json_object\nfrom mgfm.core.packed import open_packed\nimport mgfm.common\n")
    assert violations(ok) == []
    demo_user = tmp_path / "mgfm" / "ingest" / "download.py"
    demo_user.parent.mkdir(parents=True)
    demo_user.write_text("from mgfm.demo.render import ground_truth\n")
    assert "no stage imports the demo generator" in violations(demo_user)[0]
    demo = tmp_path / "mgfm" / "demo" / "pose_model" / "train.py"
    demo.parent.mkdir(parents=True)
    demo.write_text("from mgfm.pose.simcc import decode\nfrom mgfm.tables.paper import PAPER\n")
    assert violations(demo) == []

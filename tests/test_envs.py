"""Conda environments are trustworthy without conda: every rule names an existing env file, every version in every
env file is pinned, and every third-party package the rule's code imports is listed in that rule's env.

`--use-conda` itself cannot run here (no conda channels are reachable), so these static checks stand in for it.
The code of a rule is found from its shell command (`mgfm <command> ...`): the argparse subcommand gives the
function it runs, and an AST scan follows every `mgfm.*` import from that function's module (module-level and
lazy ones) and collects the third-party imports on the way:
- module-level imports of every mgfm module reached count;
- imports inside functions count in the modules of the command's own stage package (e.g. ``mgfm.pose.*`` for
  ``mgfm pose extract``), and in functions that a reached module imports by name (``from mgfm.ingest.video
  import open_reader`` brings ``open_reader``'s lazy ``import decord``); other lazy imports belong to functions
  of other stages (e.g. ``import ffmpeg`` in ``mgfm.ingest.video``'s normaliser, which the pose stage never
  calls). A function reached only through a module attribute (``video.normalise(...)``) is not followed;
- imports guarded by ``try/except ImportError`` are optional and skipped; backend modules that run in one
  environment only are listed in BACKEND_MODULES, deliberate lazy optional imports in OPTIONAL_LAZY_IMPORTS.
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"

# Modules that run only in the environment named here (e.g. the pose backend chosen by pose.backend): other
# environments do not need their imports. Keys are module names, values env file names.
BACKEND_MODULES = {
    "mgfm.pose.backends.mmpose_backend": {"mmpose.yaml"},
    # the ONNX export runs in the pinned mmpose environment (rule export_pose_onnx; `mgfm pose export-onnx` moves
    # itself there from any other environment)
    "mgfm.pose.onnx_export": {"mmpose.yaml"},
}

# (module, import) pairs imported lazily for an optional input type, with the reason
OPTIONAL_LAZY_IMPORTS = {
    ("mgfm.core.layout", "torch"): "to_stream() accepts torch tensors and imports torch only when given one",
}

# conda-forge names of PyPI distributions whose names differ
CONDA_ALIASES = {
    "torch": {"pytorch"},
    "opencv-python-headless": {"opencv", "py-opencv"},
    "opencv-python": {"opencv", "py-opencv"},
    "pillow": {"pillow"},
    # onnxruntime's CUDA build installs the same `onnxruntime` package (envs/pose-gpu.yaml)
    "onnxruntime": {"onnxruntime-gpu"},
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ---- loading the workflow ------------------------------------------------------------------------------------


def load_rules(config: dict | None = None) -> list:
    """The workflow's rules as Snakemake parses them (no DAG, no jobs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(config=config or {}),
            storage_settings=StorageSettings(),
            snakefile=ROOT / "Snakefile",
            workdir=ROOT,
        )
        return list(workflow_api._workflow.rules)


CONFIG_VARIANTS = {
    "demo": {},
    # the paper's pose backend picks its own environment (envs/mmpose.yaml)
    "pose-mmpose": {"pose": {"backend": "mmpose", "mmpose": {"fetch": False}}},
    # the onnx backend on a GPU runs in envs/pose-gpu.yaml (onnxruntime-gpu)
    "pose-cuda": {"pose": {"device": "cuda"}},
    # the paper's models: fetched, exported to ONNX in envs/mmpose.yaml (rule export_pose_onnx), run by the onnx backend
    "pose-preset": {"pose": {"preset": "rtmw-x"}},
}


@pytest.fixture(scope="module", params=sorted(CONFIG_VARIANTS))
def rules(request):
    return load_rules(CONFIG_VARIANTS[request.param])


def env_path(rule) -> Path:
    return (Path(rule.basedir) / str(rule.conda_env)).resolve() if rule.conda_env else None


def workflow_rules(rules):
    """Rules that run a command (not the aggregating target rules)."""
    return [r for r in rules if r.shellcmd or r.run_func.__name__ != "__rule_all" and not r.norun]


# ---- env files -----------------------------------------------------------------------------------------------


# `# requirements: <file> sha256=<hex>` in an env file: a pip requirements file beside it that the env's
# post-deploy script installs (envs/mmpose.yaml), with its hash so that snakemake rebuilds the env when it changes
REQUIREMENTS_LINE = re.compile(r"^#\s*requirements:\s*(\S+)\s+sha256=([0-9a-f]{64})\s*$", re.M)


def requirements_packages(path: Path) -> dict[str, str | None]:
    """Package name (normalised) -> '==version', or None when unpinned, of a pip requirements file."""
    packages: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", line)
        assert m, f"{path.relative_to(ROOT)}: cannot parse requirement {line!r}"
        name, spec = re.sub(r"\[.*\]", "", m.group(1)), m.group(2).strip()
        packages[_norm(name)] = spec if re.fullmatch(r"==\s*[A-Za-z0-9_.+!]+", spec) else None
    return packages


def env_requirements(path: Path) -> list[tuple[Path, str]]:
    """(requirements file, sha256 declared in the env file) for each `# requirements:` line of an env file."""
    return [(path.parent / name, digest) for name, digest in REQUIREMENTS_LINE.findall(path.read_text())]


def env_packages(path: Path) -> dict[str, str | None]:
    """Package name (normalised) -> version spec ('==1.2' for pip, '=1.2' for conda, None when unpinned),
    including the packages of the requirements files the env file declares."""
    data = yaml.safe_load(path.read_text())
    packages: dict[str, str | None] = {}
    for req, _ in env_requirements(path):
        if req.is_file():  # a missing one is reported by test_declared_requirements_match_their_hash
            packages.update(requirements_packages(req))
    for dep in data.get("dependencies", []):
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                line = line.strip()
                if line.startswith("-"):  # options (--find-links, -e)
                    continue
                m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", line)
                name, spec = re.sub(r"\[.*\]", "", m.group(1)), m.group(2).strip()
                packages[_norm(name)] = spec if re.fullmatch(r"==\s*[A-Za-z0-9_.+!]+", spec) else None
        else:
            m = re.match(r"^([A-Za-z0-9_.\-]+)(?:::)?\s*(.*)$", str(dep).split("::")[-1])
            name, spec = m.group(1), m.group(2).strip()
            packages[_norm(name)] = spec if re.fullmatch(r"==?\s*[A-Za-z0-9_.+*]+", spec) else None
    return packages


def all_env_files() -> list[Path]:
    return sorted(ENVS.glob("*.yaml"))


@pytest.mark.parametrize("path", all_env_files(), ids=lambda p: p.name)
def test_every_version_is_pinned(path):
    unpinned = [name for name, spec in env_packages(path).items() if spec is None]
    assert not unpinned, f"{path.relative_to(ROOT)}: versions not pinned (use == for pip, = for conda): {unpinned}"


@pytest.mark.parametrize("path", all_env_files(), ids=lambda p: p.name)
def test_env_file_has_channels_and_no_relative_pip_paths(path):
    data = yaml.safe_load(path.read_text())
    assert data.get("channels"), f"{path.relative_to(ROOT)}: no channels"
    for dep in data.get("dependencies", []):
        if isinstance(dep, dict):
            for line in dep.get("pip", []):
                # snakemake copies env files to .snakemake/conda/ before creating them: relative paths break there
                assert not re.match(r"^-e\s+\.", line.strip()), (
                    f"{path.relative_to(ROOT)}: pip entry {line!r} is relative to the env file, which snakemake "
                    "copies elsewhere: install mgfm from a <env>.post-deploy.sh instead"
                )


@pytest.mark.parametrize("path", all_env_files(), ids=lambda p: p.name)
def test_declared_requirements_match_their_hash(path):
    """A requirements file an env installs is there, and the env file carries its current sha256 (snakemake
    keys the env by the env file's content: a stale hash would keep an outdated environment)."""
    for req, declared in env_requirements(path):
        assert req.is_file(), f"{path.relative_to(ROOT)} declares {req.name}, which does not exist"
        actual = hashlib.sha256(req.read_bytes()).hexdigest()
        assert actual == declared, (f"{path.relative_to(ROOT)}: {req.name} has sha256 {actual}, the env file says "
                                    f"{declared}: update its `# requirements:` line")


def test_mmpose_env_installs_its_requirements_file():
    """envs/mmpose.yaml gets its Python packages from the requirements file CI's mmpose venv is built from, through
    the same installer, and every line of that file is pinned exactly."""
    env = ENVS / "mmpose.yaml"
    reqs = [req.name for req, _ in env_requirements(env)]
    assert reqs == ["mmpose-requirements.txt"], f"{env.relative_to(ROOT)} declares {reqs}"
    post_deploy = (ENVS / "mmpose.post-deploy.sh").read_text()
    assert "scripts/mmpose/install.sh" in post_deploy
    assert "envs/mmpose-requirements.txt" in (ROOT / "scripts" / "mmpose" / "install.sh").read_text()
    assert "scripts/mmpose/install.sh" in (ROOT / "scripts" / "mmpose" / "build-venv.sh").read_text() or \
        '"$here/install.sh"' in (ROOT / "scripts" / "mmpose" / "build-venv.sh").read_text()
    packages = requirements_packages(ENVS / "mmpose-requirements.txt")
    unpinned = sorted(name for name, spec in packages.items() if spec is None)
    assert not unpinned, f"envs/mmpose-requirements.txt: not pinned with ==: {unpinned}"
    for name in ("mmpose", "mmengine", "mmcv-lite", "torch", "numpy"):
        assert name in packages, f"envs/mmpose-requirements.txt has no {name}"
    assert int(packages["numpy"].lstrip("= ").split(".")[0]) < 2, "mmpose's xtcocotools needs numpy < 2"


def test_requirements_parser(tmp_path):
    req = tmp_path / "r.txt"
    req.write_text("# comment\nmmpose==1.3.2  # --no-deps: reason\n\nnumpy>=1.26\nopencv-python[x]==4.1\n")
    assert requirements_packages(req) == {"mmpose": "==1.3.2", "numpy": None, "opencv-python": "==4.1"}


def test_every_rule_names_an_existing_env(rules):
    problems = []
    for rule in rules:
        if rule.name == "all" or rule.norun:
            continue
        path = env_path(rule)
        if path is None:
            problems.append(f"rule {rule.name}: no conda: directive")
        elif not path.is_file():
            problems.append(f"rule {rule.name}: conda env {rule.conda_env} not found ({path})")
        elif path.parent != ENVS:
            problems.append(f"rule {rule.name}: conda env {path} outside envs/")
    assert not problems, "\n".join(problems)


# ---- what a rule's code imports ------------------------------------------------------------------------------


def command_module(shellcmd: str) -> str:
    """The module of the function behind `mgfm <command> [<subcommand>]` in a rule's shell command."""
    from mgfm.cli import build_parser

    # `mgfm ...`, or a launcher in front of it (`torchrun ... -m mgfm ...`, `srun ... python -m mgfm ...`)
    # or a launcher chosen by a params function that ends in `mgfm` (`{params.launcher} pretrain skeleton ...`),
    # each possibly behind the GPU slot picker (`python -m mgfm.common.gpu_slots --gpus N -- ...`)
    m = re.search(r"(?:^|\s)mgfm\s+(.*)", shellcmd) or re.search(r"(?:^|\s)\{params\.\w+\}\s+(.*)", shellcmd)
    assert m, f"shell command does not run `mgfm`: {shellcmd[:80]!r}"
    words = [w for w in m.group(1).split() if not w.startswith("-") and "{" not in w]
    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)) if any(
            isinstance(a, argparse._SubParsersAction) for a in parser._actions) else None
        if sub is None or word not in sub.choices:
            break
        parser = sub.choices[word]
    func = parser.get_default("func")
    assert func is not None, f"`mgfm {' '.join(words[:2])}` has no function (set_defaults(func=...))"
    return func.__module__


def _module_file(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _guarded_by_import_error(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try):
            for handler in parent.handlers:
                names = ast.unparse(handler.type) if handler.type else ""
                if "ImportError" in names or "ModuleNotFoundError" in names:
                    if node in parent.body:
                        return True
        node = parent
    return False


def _enclosing_function(node: ast.AST, parents: dict) -> str | None:
    """Name of the outermost function (or class) of the module that contains `node`; None at module level."""
    outer = None
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            outer = node.name
    return outer


@functools.cache
def _imports(module: str) -> tuple[frozenset, frozenset, dict, frozenset]:
    """What `module` imports, leaving out optional (ImportError-guarded) imports:
    (mgfm modules, third-party names imported at module level,
     {function name: third-party names imported inside it}, {(mgfm module, name imported from it)})."""
    path = _module_file(module)
    if path is None:
        return frozenset(), frozenset(), {}, frozenset()
    tree = ast.parse(path.read_text(), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    ours, theirs, lazy, from_names = set(), set(), {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            names = [base] + [f"{base}.{a.name}" for a in node.names]
            if base.split(".")[0] == "mgfm":
                from_names |= {(base, a.name) for a in node.names}
        else:
            continue
        if _guarded_by_import_error(node, parents):
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "mgfm":
                if _module_file_safe(name):
                    ours.add(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                function = _enclosing_function(node, parents)
                if function is None:
                    theirs.add(top)
                else:
                    lazy.setdefault(function, set()).add(top)
    return frozenset(ours), frozenset(theirs), lazy, frozenset(from_names)


def _module_file_safe(name: str) -> bool:
    try:
        return _module_file(name) is not None
    except (ImportError, ValueError):
        return False


def code_imports(module: str, env_name: str) -> dict[str, set[str]]:
    """Third-party top-level import name -> the mgfm modules that import it, over everything `module` reaches
    (see the module docstring for which imports count)."""
    stage = module.rpartition(".")[0] if module.endswith(".cli") else module
    seen, todo = set(), [module]
    called: dict[str, set[str]] = {}  # mgfm module -> names other reached modules import from it
    while todo:
        name = todo.pop()
        if name in seen or (name in BACKEND_MODULES and env_name not in BACKEND_MODULES[name]):
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(2, len(parts)))  # parent packages run too
        ours, _, _, from_names = _imports(name)
        todo.extend(ours)
        for source, imported in from_names:
            called.setdefault(source, set()).add(imported)
    found: dict[str, set[str]] = {}
    for name in seen:
        _, theirs, lazy, _ = _imports(name)
        needed = set(theirs)
        in_stage = name == stage or name.startswith(stage + ".")
        for function, tops in lazy.items():
            # a lazy import counts in the command's own stage, and in functions other modules import by name
            if in_stage or function in called.get(name, ()):
                needed |= {top for top in tops if (name, top) not in OPTIONAL_LAZY_IMPORTS}
        for top in needed:
            found.setdefault(top, set()).add(name)
    return found


@functools.cache
def _installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_for(import_name: str) -> set[str]:
    dists = _installed_distributions().get(import_name, [])
    names = {_norm(d) for d in dists} or {_norm(import_name)}
    return names | {alias for n in set(names) for alias in CONDA_ALIASES.get(n, ())}


def test_rule_code_imports_are_in_its_env(rules):
    problems = []
    checked = 0
    for rule in rules:
        if rule.name == "all" or rule.norun or not rule.shellcmd or env_path(rule) is None:
            continue
        path = env_path(rule)
        if not path.is_file():
            continue  # reported by test_every_rule_names_an_existing_env
        env = env_packages(path)
        module = command_module(rule.shellcmd)
        checked += 1
        for top, importers in sorted(code_imports(module, path.name).items()):
            if top == "mgfm":
                continue
            if not distributions_for(top) & set(env):
                problems.append(
                    f"rule {rule.name} ({path.name}): `import {top}` in {', '.join(sorted(importers))} "
                    f"but none of {sorted(distributions_for(top))} is in {path.relative_to(ROOT)}"
                )
    assert checked, "no rule runs an mgfm command"
    assert not problems, "\n".join(problems)


def test_scanner_finds_imports_of_a_known_module():
    """The scan itself works: mgfm.core.pose_store's pyarrow and numpy are found, the standard library is not."""
    found = code_imports("mgfm.core.pose_store", "mgfm.yaml")
    assert "pyarrow" in found and "numpy" in found
    assert "os" not in found


def test_scanner_finds_missing_packages(tmp_path):
    """Against an env without numpy, a rule whose code imports numpy would be reported."""
    env = tmp_path / "thin.yaml"
    env.write_text("channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip=24.0\n  - pip:\n"
                   "      - pyarrow==15.0.0\n")
    listed = set(env_packages(env))
    missing = {top for top in code_imports("mgfm.core.pose_store", env.name) if not distributions_for(top) & listed}
    assert missing == {"numpy"}


def test_pin_parser_rejects_ranges(tmp_path):
    env = tmp_path / "x.yaml"
    env.write_text("channels: [conda-forge]\ndependencies:\n  - python=3.11\n  - ffmpeg\n  - pip:\n"
                   "      - numpy>=1.26\n      - pandas==2.2.3\n      - -e ..\n")
    assert env_packages(env) == {"python": "=3.11", "ffmpeg": None, "numpy": None, "pandas": "==2.2.3"}


# ---- the SLURM profile stays in sync with the rules ------------------------------------------------------------


def test_slurm_profile_names_only_existing_rules(rules):
    """snakemake ignores set-resources/set-threads/groups of unknown rules: a renamed rule would silently lose
    its cluster resources, so the profile's rule names must all exist."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    names = {rule.name for rule in rules}
    named = set(profile.get("set-resources", {})) | set(profile.get("set-threads", {})) | set(
        profile.get("groups", {}))
    # rules that exist only under another config (e.g. fetch_pose_model with the mmpose backend)
    conditional = {"fetch_pose_model", "demo_corpus"}
    unknown = sorted(named - names - conditional)
    assert not unknown, f"profiles/slurm/config.yaml names rules that do not exist: {unknown}"
    groups = set(profile.get("groups", {}).values())
    assert groups == set(profile.get("group-components", {})), "every group needs a group-components size"


def test_slurm_profile_sizes_every_gpu_rule(rules):
    """A rule that declares a GPU gets explicit cluster resources (memory, run time) in the SLURM profile,
    its `gpu` count included: the rule's own default follows the GPUs of the machine that parses the workflow
    (common.smk's GPU), which for a cluster is the login node."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    sized = profile.get("set-resources", {})
    missing = [r.name for r in rules if "gpu" in r.resources and "gpu" not in sized.get(r.name, {})]
    assert not missing, f"GPU rules without a gpu count in the SLURM profile's set-resources: {missing}"


def test_gpu_rules_start_through_the_gpu_slot_picker(rules):
    """Each rule that declares a GPU starts its command through mgfm.common.gpu_slots, so that on a
    machine with several GPUs the job sees only the one(s) it was given."""
    wrong = [r.name for r in rules if "gpu" in r.resources and r.shellcmd
             and not r.shellcmd.startswith("python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- ")]
    assert not wrong, f"GPU rules not started through mgfm.common.gpu_slots: {wrong}"

"""The config resolver: the package's schemas are the only source of defaults, and errors are short and exact."""

from __future__ import annotations

import re
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
    # an integer key takes an int: 5.0 (which JSON Schema alone would count as an integer) and true are refused
    ("pretrain", {"train": {"epochs": 5.0}}, "pretrain.train.epochs: expected integer, got 5.0"),
    ("eval", {"seeds": [0, 1.0]}, "eval.seeds[1]: expected integer, got 1.0"),
    ("clips", {"quota": True}, "clips.quota: expected integer, got True"),
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


# ---- the command line: --params resolved with the same short errors; tracebacks in the log, not the terminal


def _sample_args(tmp_path, params: str) -> list[str]:
    return ["clips", "sample", "--pose-dir", str(tmp_path), "--manifest", str(tmp_path / "m.csv"),
            "--annotations", str(tmp_path / "a.csv"), "--seed", "1", "--out-clips", str(tmp_path / "c.parquet"),
            "--out-stats", str(tmp_path / "s.csv"), "--params", params]


@pytest.mark.parametrize(("argv", "expected"), [
    (["clips", "sample"], "clips.tua: unknown key (did you mean 'tau'?)"),
    (["eval", "emotion", "--member", "joint=f", "--manifest", "m.csv", "--out-dir", "o"],
     "eval.emotion.epochs: expected integer, got 'x'"),
])
def test_cli_params_errors_are_short_and_name_the_key(tmp_path, capsys, argv, expected):
    from mgfm.cli import main

    params = '{"tua": 0.3}' if argv[0] == "clips" else '{"emotion": {"epochs": "x"}}'
    args = _sample_args(tmp_path, params) if argv[0] == "clips" else [*argv, "--params", params]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 4, err


def _fail_with_cuda_error(monkeypatch):
    from mgfm.clips import sample

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(sample, "sample_clips", broken)


def test_cli_failure_logs_the_traceback_and_ends_with_the_message(tmp_path, capsys, monkeypatch):
    """A rule's stderr is its log file: the traceback goes there, the one-line cause is its last line."""
    from mgfm.cli import main

    _fail_with_cuda_error(monkeypatch)
    assert main(_sample_args(tmp_path, "{}")) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("Traceback") and any("in broken" in line for line in lines)
    assert lines[-1].endswith("CUDA error: out of memory") and "ERROR" in lines[-1]


def test_cli_failure_on_a_terminal_is_one_line(tmp_path, capsys, monkeypatch):
    import sys

    from mgfm.cli import main

    _fail_with_cuda_error(monkeypatch)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(_sample_args(tmp_path, "{}")) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("CUDA error: out of memory")


def test_cli_traceback_reaches_a_rule_log(tmp_path):
    """As a rule runs it: `mgfm ... > log 2>&1` with a real failure inside a stage."""
    import subprocess
    import sys

    log = tmp_path / "job.log"
    with log.open("w") as out:
        rc = subprocess.run([sys.executable, "-m", "mgfm", *_sample_args(tmp_path, "{}")], stdout=out,
                            stderr=subprocess.STDOUT, cwd=ROOT, timeout=120).returncode
    lines = log.read_text().strip().splitlines()
    assert rc == 1 and lines[0].startswith("Traceback") and "m.csv" in lines[-1], lines


def test_a_float_for_an_integer_key_is_refused_on_the_command_line_too(tmp_path, capsys):
    from mgfm.cli import main

    assert main(["eval", "emotion", "--member", "joint=f", "--manifest", "m.csv", "--out-dir", "o", "--params",
                 '{"emotion": {"epochs": 5.0}}']) == 1
    assert "eval.emotion.epochs: expected integer, got 5.0" in capsys.readouterr().err


def test_a_nullable_integer_key_takes_null_or_an_integer_only():
    """`type: [integer, "null"]` keys (semi-supervised epochs, RGB fine-tuning overrides) are strict too."""
    assert resolve("eval", {"semi_supervised": {"epochs": None}})["semi_supervised"]["epochs"] is None
    assert resolve("eval", {"semi_supervised": {"epochs": 7}})["semi_supervised"]["epochs"] == 7
    for bad in (5.0, True):
        with pytest.raises(ConfigError, match=r"eval\.semi_supervised\.epochs: expected \['integer', 'null'\]"):
            resolve("eval", {"semi_supervised": {"epochs": bad}})


@pytest.mark.parametrize(("values", "key"), [
    ({"results": "res$(touch x)"}, "config.results"),
    ({"dataset": {"manifest": "data/`id`.csv"}}, "dataset.manifest"),
    ({"clips": {"prior": "p{x}.csv"}}, "clips.prior"),
    ({"infer": {"videos": ["a.mp4", "b'c.mp4"]}}, "infer.videos[1]"),
    ({"pose": {"mmpose": {"config": "cfg;rm.py"}}}, "pose.mmpose.config"),
    ({"rgb_pretrain": {"init": {"checkpoint": "smile$(id).pth"}}}, "rgb_pretrain.init.checkpoint"),
    ({"rgb_pretrain": {"motion": {"objects_dir": "objects/*"}}}, "rgb_pretrain.motion.objects_dir"),
    ({"eval": {"finetune": {"rgb": {"init": {"checkpoint": "k400`id`.pth"}}}}}, "eval.finetune.rgb.init.checkpoint"),
])
def test_path_keys_refuse_shell_and_pattern_characters_naming_the_key(values, key):
    with pytest.raises(ConfigError, match=re.escape(key) + r": .* is refused: it holds"):
        resolve_config(values)


def test_path_keys_take_spaces_parentheses_and_letters_of_any_script():
    cfg = resolve_config({"results": "runs/exp (2) é", "dataset": {"manifest": "données/清单 v2.csv"},
                          "infer": {"videos": ["talks/My Talk (final), take 2.mp4"]}})
    assert cfg["results"] == "runs/exp (2) é"


def test_every_path_like_key_is_checked():
    """A free string key whose description says it is a file, folder or path is in mgfm.config.paths.PATH_KEYS."""
    from mgfm.config.paths import PATH_KEYS

    def walk(schema, where):
        for key, sub in schema.get("properties", {}).items():
            if sub.get("type") == "object":
                yield from walk(sub, f"{where}{key}.")
            elif "enum" not in sub and "string" in str(sub.get("type")) + str(sub.get("items", {}).get("type")):
                yield f"{where}{key}" + ("[]" if sub.get("type") == "array" else ""), str(sub.get("description"))

    words = re.compile(r"\b(file|folder|path|directory)\b", re.I)
    for section in ("config", *SECTIONS):
        for key, text in walk(load_schema(section), ""):
            if words.search(text) and not key.endswith(("_url", "url", "sha256", "node", "user_agent")):
                assert key in PATH_KEYS.get(section, ()), f"{section}.{key} looks like a path: {text[:80]}"


# ---- the config a run sees (mgfm.config.run): defaults, then its files in order, then --config -------------------
from mgfm.config.run import merge, parse_overrides, run_config  # noqa: E402

DEMO = ROOT / "config.yaml"
PAPER = ROOT / "workflow" / "configs" / "paper.yaml"


def test_a_config_file_replaces_the_demo():
    """paper.yaml resolves to itself plus the schema defaults: none of the demo's values reach it (its semi-
    supervised epochs, pretraining warm-up, teacher input size were the demo's before)."""
    paper = run_config([PAPER], None, DEMO)
    assert paper == resolve_config(yaml.safe_load(PAPER.read_text()))
    assert paper["eval"]["semi_supervised"]["epochs"] is None and paper["pretrain"]["train"]["warmup_epochs"] == 0
    assert paper["rgb_pretrain"]["teacher"]["input_size"] == [] and paper["eval"]["emotion"]["skeleton_streams"] == ["joint"]
    # no file given: the demo
    assert run_config([], None, DEMO) == resolve_config(yaml.safe_load(DEMO.read_text()))


def test_files_merge_in_order_then_overrides(tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("pretrain:\n  train:\n    epochs: 3\nclips:\n  iod_quotas: [5]\n")
    cfg = run_config([DEMO, own], parse_overrides(["seed=5", "results=out/x"]), DEMO)
    demo = run_config([], None, DEMO)
    assert cfg["pretrain"]["train"]["epochs"] == 3                          # own on top, key by key
    assert cfg["pretrain"]["train"]["batch_size"] == demo["pretrain"]["train"]["batch_size"]   # the demo's below
    assert cfg["clips"]["iod_quotas"] == [5] and cfg["seed"] == 5 and cfg["results"] == "out/x"  # lists replace
    alone = run_config([own], None, DEMO)
    assert alone["pretrain"]["train"]["batch_size"] == defaults("pretrain")["train"]["batch_size"]
    assert merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_overrides_parse_as_snakemake_does_and_errors_name_the_file(tmp_path):
    assert parse_overrides(["seed=7", "xx=0.5", "ff=True", "ss=abc", "nn="]) == {"seed": 7, "xx": 0.5, "ff": True,
                                                                             "ss": "abc", "nn": None}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["seed"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: the top level must be a mapping"):
        run_config([bad], None, DEMO)
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot be read"):
        run_config([tmp_path / "missing.yaml"], None, DEMO)
    bad.write_text("clips:\n  tua: 0.3\n")
    with pytest.raises(ConfigError, match="clips.tua: unknown key"):
        run_config([bad], None, DEMO)


def test_config_show_prints_what_a_run_resolves(capsys, tmp_path):
    from mgfm.cli import main

    assert main(["config", "show", "--configfile", str(PAPER), "--config", "seed=3"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown == run_config([PAPER], {"seed": 3}, DEMO)
    assert main(["config", "show", "--section", "skeleton"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {"skeleton": run_config([], None, DEMO)["skeleton"]}
    assert main(["config", "show", "--workflow-dir", str(tmp_path)]) == 1
    assert "no demo config" in capsys.readouterr().err


# ---- typed config objects (mgfm.config.sections) ------------------------------------------------------

from dataclasses import dataclass  # noqa: E402

from mgfm.config.sections import from_partial, section_values  # noqa: E402


@dataclass(frozen=True)
class _Sizes:
    width: int
    depth: int
    seed: int
    note: str = ""

    @classmethod
    def from_section(cls, section: dict, seed: int = 0) -> _Sizes:
        return cls(**section_values(cls, section, "demo.sizes", supplied=("seed",), ignored=("other",)), seed=seed)


def test_section_values_names_missing_and_unknown_keys_and_takes_supplied_ones_from_the_caller():
    assert _Sizes.from_section({"width": 2, "depth": 3, "other": 1}, seed=5) == _Sizes(2, 3, 5)
    assert _Sizes.from_section({"width": 2, "depth": 3, "note": "x"}).note == "x"     # a field with a default
    with pytest.raises(ConfigError, match=r"demo.sizes: missing keys \['depth'\], unknown keys \['seed', 'wide'\]"):
        _Sizes.from_section({"width": 2, "wide": 1, "seed": 4})
    with pytest.raises(ConfigError, match="demo.sizes: expected a resolved config section"):
        _Sizes.from_section([("width", 2)])


def test_from_partial_resolves_once_and_passes_a_typed_object_through(monkeypatch):
    from mgfm.config import sections
    from mgfm.ingest.download import DownloadParams

    calls = []
    real = sections.resolve
    monkeypatch.setattr(sections, "resolve", lambda *a: calls.append(a) or real(*a))
    params = from_partial(DownloadParams, "download", {"retries": 7})
    assert params.retries == 7 and params.fps == defaults("download")["fps"] and len(calls) == 1
    assert from_partial(DownloadParams, "download", params) is params and len(calls) == 1
    with pytest.raises(ConfigError, match="download.retry"):
        from_partial(DownloadParams, "download", {"retry": 7})

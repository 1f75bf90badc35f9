"""Every command and option of the ``mgfm`` command line explains itself, ``--params`` names its schema, and
``mgfm --version`` prints the installed version."""

from __future__ import annotations

import argparse
import subprocess
import sys

from mgfm.cli import build_parser, version


def _walk(parser: argparse.ArgumentParser, path: str = "mgfm"):
    """(command path, parser) for the parser and every subcommand below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            out.update({name: helps.get(name) for name in action.choices})
    return out


def test_every_command_and_option_has_help():
    missing = []
    for path, parser in _walk(build_parser()):
        for name, text in _subcommand_help(parser).items():
            if not text:
                missing.append(f"{path} {name} (command)")
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
                continue
            if not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, "without help text:\n" + "\n".join(missing)


def test_params_names_its_schema():
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if "--params" in action.option_strings:
                assert "schema" in action.help and "mgfm/config/schemas/" in action.help, path


def test_version():
    proc = subprocess.run([sys.executable, "-m", "mgfm", "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == f"mgfm {version()}"
    assert version()[0].isdigit()


def test_old_command_names_still_work_for_one_release_with_a_warning(tmp_path):
    """`mgfm dataset`, `mgfm download` and `mgfm datasets` are now `mgfm ingest`, `mgfm ingest download` and
    `mgfm packs`: the old words run the new commands, say so, and are not listed in --help."""
    from mgfm.cli import OLD_COMMANDS, modern_argv

    assert modern_argv(["-v", "dataset", "probe", "x.mp4"]) == ["-v", "ingest", "probe", "x.mp4"]
    assert modern_argv(["download", "--record", "r.json"]) == ["ingest", "download", "--record", "r.json"]
    assert modern_argv(["datasets", "skeleton", "--name", "pretrain"])[:2] == ["packs", "skeleton"]
    assert modern_argv(["eval", "dataset"]) == ["eval", "dataset"]     # only the command word is renamed
    top = _subcommand_help(build_parser())
    assert not set(OLD_COMMANDS) & set(top) and {"ingest", "packs"} <= set(top)
    proc = subprocess.run([sys.executable, "-m", "mgfm", "dataset", "validate", "--manifest", "m.csv",
                           "--annotations", "a.csv", "--taxonomy", "t.csv", "--out", str(tmp_path / "v.json")],
                          capture_output=True, text=True)
    assert "`mgfm dataset` is now `mgfm ingest`" in proc.stderr
    assert proc.returncode == 1 and "m.csv" in proc.stderr       # the new command ran and named the missing file

"""The ``mgfm`` command line: one subcommand per stage, each a thin wrapper over a public function.

Each stage package named in ``STAGE_PACKAGES`` holds a ``cli`` module with ``register(subparsers)``, imported
only when the parser is built, so this module itself imports nothing but ``mgfm.common`` and a new stage
adds its package name here. Rules call these commands; tests call the functions behind them directly.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import sys
import traceback

from mgfm.common.logs import setup_logging

STAGE_PACKAGES = (
    "mgfm.common", "mgfm.config", "mgfm.demo", "mgfm.ingest", "mgfm.pose", "mgfm.clips", "mgfm.packs",
    "mgfm.train", "mgfm.eval",
    "mgfm.infer", "mgfm.tables",
)


#: Command names of the previous release, still accepted (not listed in --help) for one release: old -> new words.
OLD_COMMANDS = {"dataset": ["ingest"], "download": ["ingest", "download"], "datasets": ["packs"]}


def modern_argv(argv: list[str]) -> list[str]:
    """``argv`` with an old command name (``OLD_COMMANDS``) replaced by the current one, saying so once."""
    for i, word in enumerate(argv):
        if word.startswith("-"):
            continue
        if word in OLD_COMMANDS:
            new = OLD_COMMANDS[word]
            logging.getLogger("mgfm").warning("`mgfm %s` is now `mgfm %s`; the old name goes in the next release",
                                              word, " ".join(new))
            return [*argv[:i], *new, *argv[i + 1:]]
        return argv
    return argv


def json_object(text: str) -> dict:
    """argparse type for ``--params``: a JSON object (rules pass their config slice this way). Each stage
    function resolves it with mgfm.config, so a bad key fails in a few lines naming the key and what is allowed."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--params is not valid JSON: {err}") from err
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--params must be a JSON object")
    return value


def version() -> str:
    """The installed package's version (``mgfm --version``)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("mgfm")
    except PackageNotFoundError:
        return "unknown (not installed; run `pip install -e .`)"


def params_help(section: str, step: str | None = None) -> str:
    """Help text of a ``--params`` option: which config section it takes and the schema that documents it."""
    schema = section.split(".")[0]
    which = f"the keys of config section '{section}' that step {step} reads (mgfm.config.steps)" if step else \
        f"config section '{section}'"
    return (f"JSON object: {which}; schema: mgfm/config/schemas/{schema}.schema.yaml. Missing keys take the "
            "schema's defaults, unknown keys are an error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgfm", description="The iMiGUE-3K micro-gesture benchmark: one command per workflow stage. The "
        "Snakemake workflow calls these commands; run `snakemake --cores all` for the whole pipeline.",
        epilog="Each command's --params takes the JSON of the config keys its step reads; the schemas under "
        "mgfm/config/schemas/ describe every key and its default.")
    parser.add_argument("--version", action="version", version=f"mgfm {version()}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and full tracebacks on the terminal when a command fails")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for package in STAGE_PACKAGES:
        name = f"{package}.cli"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    setup_logging(logging.INFO)
    args = parser.parse_args(modern_argv(sys.argv[1:] if argv is None else list(argv)))
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if args.verbose:
            raise
        report_error(err)
        return 1
    except OSError as err:      # a full disk, a permission, a read-only file system: the path and the cause
        if args.verbose:
            raise
        from mgfm.common.disk import os_error_line

        report_error(err, message=os_error_line(err))
        return 1
    return int(result or 0)


def report_error(err: BaseException, stream=None, message: str | None = None) -> None:
    """The error's message (it names the file / video / config key) as the last line; before it the full
    traceback, unless stderr is a terminal.

    Rules send stderr to their ``log:`` file, so a failed job's log holds the traceback of a torch or CUDA
    failure as well as the one-line cause at its end; a person at a terminal sees only that line (``-v`` shows
    the traceback there too).
    """
    from mgfm.config import ConfigError

    stream = stream or sys.stderr
    # a config error's message is the whole story (key, value, what is allowed): no traceback
    if not isinstance(err, ConfigError) and not (hasattr(stream, "isatty") and stream.isatty()):
        traceback.print_exception(err, file=stream)
        stream.flush()
    logging.getLogger("mgfm").error("%s", message or err)


if __name__ == "__main__":
    sys.exit(main())

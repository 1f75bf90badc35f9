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
    "mgfm.data.demo", "mgfm.data", "mgfm.pose", "mgfm.clips", "mgfm.datasets", "mgfm.train", "mgfm.eval",
    "mgfm.infer", "mgfm.tables",
)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mgfm", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for package in STAGE_PACKAGES:
        name = f"{package}.cli"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if args.verbose:
            raise
        report_error(err)
        return 1
    return int(result or 0)


def report_error(err: BaseException, stream=None) -> None:
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
    logging.getLogger("mgfm").error("%s", err)


if __name__ == "__main__":
    sys.exit(main())

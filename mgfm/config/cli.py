"""``mgfm config show``: the resolved config of a run, as the workflow's rules see it (mgfm.config.run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

#: the checkout this package sits in: its config.yaml is the demo a run without --configfile uses
CHECKOUT = Path(__file__).resolve().parents[2]


def _show(args: argparse.Namespace) -> int:
    from mgfm.config import SECTIONS, ConfigError
    from mgfm.config.run import DEMO_CONFIG_NAME, parse_overrides, run_config

    demo = Path(args.workflow_dir) / DEMO_CONFIG_NAME
    if not args.configfile and not demo.is_file():
        raise ConfigError(f"no --configfile given and no demo config at {demo}: pass --configfile, or "
                          "--workflow-dir (the folder of the Snakefile and its config.yaml)")
    config = run_config(args.configfile or [], parse_overrides(args.config or []), demo)
    if args.section:
        if args.section not in config:
            raise ConfigError(f"--section {args.section!r}: no such key (sections: {', '.join(SECTIONS)})")
        config = {args.section: config[args.section]}
    sys.stdout.write(yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=120))
    return 0


def register(subparsers) -> None:
    cfg = subparsers.add_parser("config", help="the resolved config of a run (defaults, files, --config)")
    sub = cfg.add_subparsers(dest="config_command", required=True)
    show = sub.add_parser(
        "show", help="print the config a run sees: schema defaults, then each --configfile in order (the "
        "repository's config.yaml, the demo, when none is given), then --config; what the rules are given",
        description="Prints the resolved config as YAML through the same function the Snakefile uses "
        "(mgfm.config.run.run_config), so `mgfm config show --configfile F` shows what `snakemake "
        "--configfile F` runs.")
    show.add_argument("--configfile", "--configfiles", nargs="+", metavar="FILE",
                      help="config files, merged in order, as snakemake's --configfile (default: the demo config)")
    show.add_argument("--config", nargs="+", metavar="KEY=VALUE",
                      help="top-level values set last, as snakemake's --config")
    show.add_argument("--workflow-dir", default=str(CHECKOUT),
                      help="folder of the Snakefile, whose config.yaml is the demo (default: this checkout)")
    show.add_argument("--section", help="print only this top-level key (e.g. skeleton)")
    show.set_defaults(func=_show)

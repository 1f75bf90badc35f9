"""``mgfm tables iod`` (Tables VI/VII from the clips stage), ``mgfm tables render`` (Tables VIII-XIII from
results/eval) and ``mgfm tables report`` (the HTML page)."""

from __future__ import annotations

import argparse

from mgfm.cli import json_object
from mgfm.config import default_seed


def _resolved(args: argparse.Namespace, step: str) -> dict:
    """``--params`` resolved for ``step`` (mgfm.config.steps) and checked against the pretrained streams."""
    from mgfm.config.steps import resolve_step
    from mgfm.eval.checks import check_eval_config
    from mgfm.eval.cli import pretrained_streams

    params = resolve_step(step, args.params)
    check_eval_config(params, pretrained_streams(args))
    return params


def _render(args: argparse.Namespace) -> int:
    from mgfm.tables.build import build_tables

    params = _resolved(args, "eval_tables")
    build_tables(args.eval_dir, args.out_dir, params["modalities"], params["streams"])
    return 0


def _iod(args: argparse.Namespace) -> int:
    from mgfm.tables.iod import build_iod_tables

    build_iod_tables(args.iod, args.out_dir)
    return 0


def _report(args: argparse.Namespace) -> int:
    from mgfm.eval.data import class_names_of
    from mgfm.tables.report import build_report

    params = _resolved(args, "eval_report")
    build_report(args.out, args.tables_dir, args.eval_dir, args.features_dir, args.models_dir, args.figures_dir,
                 class_names_of(args.taxonomy), params["modalities"], params["streams"], args.extra_table,
                 args.extra_figure, int(params["report"]["max_points"]), args.seed)
    return 0


def _spotting(args: argparse.Namespace) -> int:
    from mgfm.tables.spotting import build_spotting_tables

    build_spotting_tables(args.metrics, args.out_dir)
    return 0


def register(subparsers) -> None:
    tb = subparsers.add_parser("tables", help="paper tables beside ours, and the report")
    sub = tb.add_subparsers(dest="tables_command", required=True)
    p = sub.add_parser("spotting", help="the spotting table and its per-class breakdown (md, csv, tex)")
    p.add_argument("--metrics", required=True, help="results/eval/spotting/metrics.json")
    p.add_argument("--out-dir", required=True, help="results/tables")
    p.set_defaults(func=_spotting)
    p = sub.add_parser("iod", help="Tables VI-VII (md, csv, tex) from the clips stage's MG-IoD results")
    p.add_argument("--iod", required=True, help="results/clips/iod.json")
    p.add_argument("--out-dir", required=True, help="results/tables")
    p.set_defaults(func=_iod)
    for name in ("render", "report"):
        p = sub.add_parser(name, help="Tables VIII-XIII (md, csv, tex)" if name == "render" else "results/report.html")
        p.add_argument("--params", type=json_object, default={}, help="the eval config section as JSON")
        p.add_argument("--pretrained-streams", default="", help="comma-separated pretrain.streams (default: all)")
        p.add_argument("--eval-dir", required=True, help="results/eval")
        if name == "render":
            p.add_argument("--out-dir", required=True, help="results/tables")
            p.set_defaults(func=_render)
        else:
            p.add_argument("--out", required=True, help="results/report.html")
            p.add_argument("--tables-dir", required=True)
            p.add_argument("--features-dir", required=True)
            p.add_argument("--models-dir", required=True)
            p.add_argument("--figures-dir", required=True)
            p.add_argument("--taxonomy", required=True)
            p.add_argument("--extra-table", action="append", default=[], help="another Markdown table (repeatable)")
            p.add_argument("--extra-figure", action="append", default=[], help="another PNG figure (repeatable)")
            p.add_argument("--seed", type=int, default=default_seed(), help="global seed (config key 'seed')")
            p.set_defaults(func=_report)

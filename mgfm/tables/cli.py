"""``mgfm tables iod`` (Tables VI/VII from the clips stage), ``mgfm tables render`` (Tables VIII-XIII from
results/eval) and ``mgfm tables report`` (the HTML page)."""

from __future__ import annotations

import argparse

from mgfm.cli import json_object, params_help
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
    build_tables(args.eval_dir, args.out_dir, params["modalities"], params["streams"], dataset=args.dataset,
                 skipped=args.skipped)
    return 0


def _iod(args: argparse.Namespace) -> int:
    from mgfm.tables.iod import build_iod_tables

    build_iod_tables(args.iod, args.out_dir, dataset=args.dataset)
    return 0


def _report(args: argparse.Namespace) -> int:
    from mgfm.eval.splits import class_names_of
    from mgfm.tables.report import build_report

    params = _resolved(args, "eval_report")
    tables = None
    if args.manifest and args.annotations:
        tables = {"manifest": args.manifest, "annotations": args.annotations, "taxonomy": args.taxonomy}
    build_report(args.out, args.tables_dir, args.eval_dir, args.features_dir, args.models_dir, args.figures_dir,
                 class_names_of(args.taxonomy), params["modalities"], params["streams"], args.extra_table,
                 args.extra_figure, int(params["report"]["max_points"]), args.seed, dataset=args.dataset,
                 dataset_tables=tables, benchmarks_dir=args.benchmarks_dir, config_digest=args.config_digest,
                 skipped=args.skipped)
    return 0


def _spotting(args: argparse.Namespace) -> int:
    from mgfm.tables.spotting import build_spotting_tables

    build_spotting_tables(args.metrics, args.out_dir)
    return 0


DATASET_HELP = ("what the captions (and the report's title) name as our data, e.g. 'the synthetic demo corpus "
                "(seed 7), not iMiGUE-3K' or 'manifest m.csv (sha256 ...)' (the workflow passes "
                "mgfm.tables.summary.dataset_label)")


def register(subparsers) -> None:
    tb = subparsers.add_parser("tables", help="paper tables beside ours, and the report",
                               description="Tables VI-XIII beside the paper's numbers, and the HTML report.")
    sub = tb.add_subparsers(dest="tables_command", required=True)
    p = sub.add_parser("spotting", help="the spotting table and its per-class breakdown (md, csv, tex)")
    p.add_argument("--metrics", required=True, help="results/eval/spotting/metrics.json")
    p.add_argument("--out-dir", required=True, help="results/tables")
    p.set_defaults(func=_spotting)
    p = sub.add_parser("iod", help="Tables VI-VII (md, csv, tex) from the clips stage's MG-IoD results")
    p.add_argument("--iod", required=True, help="MG-IoD results of the clips stage (results/clips/iod.json)")
    p.add_argument("--out-dir", required=True, help="folder for the table files (results/tables)")
    p.add_argument("--dataset", default=None, help=DATASET_HELP)
    p.set_defaults(func=_iod)
    for name in ("render", "report"):
        p = sub.add_parser(name, help="Tables VIII-XIII (md, csv, tex) and references.bib" if name == "render"
                           else "the self-contained HTML report (results/report.html)")
        p.add_argument("--params", type=json_object, default={},
                       help=params_help("eval", "eval_tables" if name == "render" else "eval_report"))
        p.add_argument("--pretrained-streams", default="", help="comma-separated pretrain.streams (default: all)")
        p.add_argument("--eval-dir", required=True, help="metrics of the protocols (results/eval)")
        p.add_argument("--dataset", default=None, help=DATASET_HELP)
        p.add_argument("--skipped", type=json_object, default={},
                       help="JSON {protocol: reason} of the protocols (and 'spotting') this run did not run "
                       "(the workflow passes mgfm.eval.plan's): their files are not read, their rows say why")
        if name == "render":
            p.add_argument("--out-dir", required=True, help="folder for the table files (results/tables)")
            p.set_defaults(func=_render)
        else:
            p.add_argument("--out", required=True, help="the HTML page to write (results/report.html)")
            p.add_argument("--tables-dir", required=True, help="Markdown tables to include (results/tables)")
            p.add_argument("--features-dir", required=True, help="frozen features (results/features), for the PCA")
            p.add_argument("--models-dir", required=True, help="pretrained encoders and their train_log.csv "
                           "(results/models), for the pretraining curves")
            p.add_argument("--figures-dir", required=True, help="folder for the PNG figures (results/figures)")
            p.add_argument("--taxonomy", required=True, help="taxonomy table (class names)")
            p.add_argument("--manifest", default=None, help="manifest table, for the dataset summary")
            p.add_argument("--annotations", default=None, help="annotation table, for the dataset summary")
            p.add_argument("--benchmarks-dir", default=None,
                           help="Snakemake benchmark files (results/benchmarks), for the wall time per stage")
            p.add_argument("--config-digest", default=None, help="digest of the resolved config, shown in the "
                           "summary (the workflow passes the first 16 hex digits of its sha256)")
            p.add_argument("--extra-table", action="append", default=[], help="another Markdown table (repeatable)")
            p.add_argument("--extra-figure", action="append", default=[], help="another PNG figure (repeatable)")
            p.add_argument("--seed", type=int, default=default_seed(), help="global seed (config key 'seed')")
            p.set_defaults(func=_report)

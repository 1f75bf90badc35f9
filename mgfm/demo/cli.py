"""``mgfm demo generate``: render the embedded demo corpus (tables, raw videos, ground-truth keypoints)."""

from __future__ import annotations

import argparse
import time

from mgfm.cli import json_object, params_help


def _generate(args: argparse.Namespace) -> int:
    from mgfm.demo.corpus import generate_corpus

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    start = time.perf_counter()
    manifest = generate_corpus(args.params, args.out, workers=args.threads)
    print(f"demo corpus: {len(manifest)} videos in {time.perf_counter() - start:.1f}s -> {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="the embedded synthetic demo corpus")
    sub = demo.add_subparsers(dest="demo_command", required=True)
    gen = sub.add_parser("generate", help="render the demo corpus (tables, raw videos, ground-truth keypoints)")
    gen.add_argument("--out", required=True, help="output folder (e.g. results/demo)")
    gen.add_argument("--params", type=json_object, default={},
                     help=params_help("dataset.demo"))
    gen.add_argument("--threads", type=int, default=1, help="videos rendered in parallel (one process each)")
    gen.set_defaults(func=_generate)

"""``mgfm packs skeleton|rgb``: thin wrappers over the packed clip dataset builders."""

from __future__ import annotations

import argparse

from mgfm.cli import json_object, params_help


def _skeleton(args: argparse.Namespace) -> None:
    from mgfm.packs.skeleton import build_skeleton_pack

    build_skeleton_pack(args.name, args.out, args.pose_dir, args.manifest, args.annotations, args.clips,
                           args.params)


def _rgb(args: argparse.Namespace) -> None:
    from mgfm.packs.rgb import build_rgb_pack

    build_rgb_pack(args.name, args.out, args.video_dir, args.pose_dir, args.manifest, args.annotations,
                      args.clips, args.params)


def register(subparsers) -> None:
    from mgfm.packs.catalog import PACK_NAMES

    packs = subparsers.add_parser("packs", help="packed skeleton and RGB clip datasets (packs)")
    sub = packs.add_subparsers(dest="packs_command", required=True)
    for kind, func in (("skeleton", _skeleton), ("rgb", _rgb)):
        p = sub.add_parser(kind, help=f"build one {kind} pack")
        p.add_argument("--name", required=True, choices=PACK_NAMES, help="which dataset to build")
        p.add_argument("--pose-dir", required=True, help="folder of the pose files, one <video_id>.parquet per video")
        if kind == "rgb":
            p.add_argument("--video-dir", required=True, help="folder of normalised {video_id}.mp4")
        p.add_argument("--manifest", required=True, help="manifest table (CSV or Parquet): one row per video")
        p.add_argument("--annotations", default=None, help="needed by mg_train / mg_test")
        p.add_argument("--clips", default=None, help="clips.parquet, needed by pretrain / video_clips")
        p.add_argument("--params", type=json_object, default={}, help=params_help(kind))
        p.add_argument("--out", required=True, help="dataset folder")
        p.set_defaults(func=func)

"""``mgfm pose ...`` commands: extract (one video -> pose Parquet) and fetch-model (paper checkpoints)."""

from __future__ import annotations

import argparse


def _extract(args: argparse.Namespace) -> int:
    from mgfm.pose.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before decord / OpenCV / ONNX Runtime start their threads
    from mgfm.pose.extract import extract_pose

    extract_pose(args.video, args.meta, args.out, args.params, threads=args.threads)
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from mgfm.pose.fetch import fetch_file

    fetch_file(args.url, args.sha256, args.out)
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from mgfm.pose.mmpose_env import missing_pins, run_in_pinned_venv

    wrong = missing_pins()
    if wrong:  # the main environment (numpy 2, no mmpose): run the export in the pinned mmpose venv
        import logging

        logging.getLogger(__name__).info("this Python lacks the pinned mmpose stack (%s): exporting in the pinned "
                                         "venv", ", ".join(wrong))
        from mgfm.pose.onnx_export import to_argv

        return run_in_pinned_venv("mgfm.pose.onnx_export", to_argv(args))
    from mgfm.pose.onnx_export import run

    run(args)
    return 0


def register(subparsers) -> None:
    from mgfm.cli import json_object, params_help

    p = subparsers.add_parser("pose", help="whole-body pose estimation (RTMPose) to Parquet")
    sub = p.add_subparsers(dest="pose_command", required=True)
    e = sub.add_parser("extract", help="estimate the primary person's 133 keypoints on every frame of a video")
    e.add_argument("--video", required=True, help="normalised video (results/videos/ID.mp4)")
    e.add_argument("--meta", required=True, help="its probed metadata JSON (results/videos/ID.json)")
    e.add_argument("--out", required=True, help="output Parquet (results/pose/ID.parquet)")
    e.add_argument("--params", type=json_object, default={}, help=params_help("pose"))
    e.add_argument("--threads", type=int, default=1, help="ONNX Runtime / torch CPU threads")
    e.set_defaults(func=_extract)
    f = sub.add_parser("fetch-model", help="download a model file and verify its sha256 (paper config only)")
    f.add_argument("--url", required=True, help="where to download the model file (http(s):// or file://)")
    f.add_argument("--sha256", required=True, help="expected sha256 of the file (64 hex digits); a mismatch is an error")
    f.add_argument("--out", required=True, help="where to store the verified model file")
    f.set_defaults(func=_fetch)
    from mgfm.pose.onnx_export import add_arguments

    x = sub.add_parser("export-onnx", help="export an mmpose pose model or RTMDet detector checkpoint to ONNX "
                                           "(in the pinned mmpose environment; built once if needed)")
    add_arguments(x)
    x.set_defaults(func=_export_onnx)

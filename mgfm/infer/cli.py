"""``mgfm infer VIDEO ... --models DIR --out DIR`` spots micro-gestures in video files; ``mgfm infer-step ...``
runs the workflow's steps (calibrate, evaluate; the models they read are the eval stage's). Each is a thin
wrapper."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mgfm.cli import json_object, params_help
from mgfm.infer.video_files import video_files

SUBCOMMANDS = ("calibrate", "evaluate")
#: subcommand -> (config section, step) of its --params
STEP_SECTIONS = {"calibrate": ("infer", "infer_calibrate"), "evaluate": ("infer", "infer_spot")}


def _run(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.config.steps import resolve_step
    from mgfm.infer.run import infer_videos

    params = resolve_step("infer_spot", args.params)
    set_torch_threads(args.threads)
    videos = video_files(args.videos, args.video_dir or [])
    if not videos:
        raise ValueError("no video given (mgfm infer VIDEO ... or --video-dir)")
    options = {"pose_json": args.pose, "preset": args.pose_preset, "model": args.pose_model,
               "detector": args.detector_model, "configfiles": args.configfile}
    results = infer_videos(videos, args.models, args.out, int(params["batch_size"]), threads=args.threads or 1,
                           annotate=args.annotated_video, pose_options=options)
    failed = [r for r in results if not r.ok]
    for r in results:
        if r.ok:
            note = f": {r.message}" if r.message else ""
            print(f"ok     {r.source} -> {Path(args.out) / r.video_id} ({r.n_instances} instances){note}")
        else:
            print(f"FAILED {r.source}: {r.message}")
    if failed:
        logging.getLogger("mgfm.infer").error("%d of %d videos failed: %s", len(failed), len(results),
                                              ", ".join(r.source for r in failed))
    return 1 if failed else 0


def _calibrate(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.infer.calibrate import build_spotter

    set_torch_threads(args.threads)
    members = [tuple(m.split(":", 2)) for m in args.member]
    build_spotter(args.models_dir, members, args.ensemble, args.manifest, args.annotations, args.pose_dir,
                  args.params, args.tau, args.pose, args.download, args.fps, args.videos_dir, args.dataset,
                  args.dataset_source == "demo")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.infer.evaluate import evaluate_spotting

    set_torch_threads(args.threads)
    evaluate_spotting(args.models_dir, args.manifest, args.annotations, args.pose_dir, args.videos_dir,
                      args.out_dir, args.metrics, args.params)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("infer", help="spot micro-gestures in untrimmed videos (and the workflow's infer steps)",
                              description="mgfm infer VIDEO [VIDEO ...] --models results/models --out DIR: "
                              f"spot micro-gestures in video files. Workflow steps: mgfm infer-step {{{','.join(SUBCOMMANDS)}}} ...")
    p.add_argument("videos", nargs="*", help="video files")
    p.add_argument("--models", default="results/models", help="models folder with spotter.json (results/models)")
    p.add_argument("--out", default="results/infer/videos", help="output folder (one subfolder per video)")
    p.add_argument("--video-dir", action="append", help="a folder of videos (repeatable)")
    p.add_argument("--params", type=json_object, default={}, help=params_help("infer", "infer_spot"))
    p.add_argument("--threads", type=int, default=0, help="torch / ONNX Runtime / ffmpeg threads (0: library default)")
    pose = p.add_argument_group(
        "pose model", "which pose model (and person detector) makes the keypoints; give at most one of --pose, "
        "--pose-preset, --pose-model, --configfile. Default: the settings spotter.json recorded, used only when "
        "they select the onnx backend (a models folder never selects code). Either way the pose model must be the "
        "one the models were calibrated with, and every page names it and its sha256")
    pose.add_argument("--pose", type=json_object, default=None,
                      help="the pose section of your config as JSON (backend, model, detector, ...)")
    pose.add_argument("--pose-preset", default=None, choices=("rtmw-x",),
                      help="the paper's models (RTMW-x + RTMDet-m) as the workflow exported them into "
                      "<models>/pose/onnx/")
    pose.add_argument("--pose-model", default=None, metavar="FILE",
                      help="an ONNX pose model (RTMPose/RTMW export with SimCC outputs), run by the onnx backend")
    pose.add_argument("--detector-model", default=None, metavar="FILE",
                      help="with --pose-model: an ONNX person detector (RTMDet export); without it, whole frames")
    pose.add_argument("--configfile", nargs="+", default=None, metavar="FILE",
                      help="the pose section of a run config: the schema defaults, then these files in order, as the "
                      "workflow reads them (a preset's exports in that config's results folder)")
    p.add_argument("--annotated-video", action="store_true",
                   help="also write annotated.mp4 per video: the skeleton and the current instance's label drawn")
    p.set_defaults(func=_run)
    register_steps(subparsers)


def register_steps(subparsers) -> None:
    """The workflow's steps, ``mgfm infer-step ...`` (kept apart from ``mgfm infer VIDEO ...``'s positional list)."""
    p = subparsers.add_parser("infer-step", help="the workflow's inference steps (calibrate, evaluate)")
    sub = p.add_subparsers(dest="infer_step", required=True)

    def common(q):
        q.add_argument("--params", type=json_object, default={}, help=params_help(*STEP_SECTIONS[q.prog.split()[-1]]))
        q.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: library default)")

    k = sub.add_parser("calibrate", help="write spotter.json: windows, fusion weights, validation-chosen threshold")
    k.add_argument("--models-dir", required=True, help="models folder with classifiers/; spotter.json goes there")
    k.add_argument("--member", action="append", required=True, help="NAME:MODALITY:STREAM (repeatable)")
    k.add_argument("--ensemble", default=None, help="the ensemble protocol's metrics.json (fusion weights; "
                   "without it the members have equal weights)")
    k.add_argument("--dataset", default=None, help="what the models were trained on, named on every page (the "
                   "workflow passes mgfm.tables.summary.dataset_label)")
    k.add_argument("--dataset-source", choices=("demo", "files"), default="files",
                   help="config key dataset.source of that dataset: demo = the synthetic demo corpus")
    k.add_argument("--manifest", required=True, help="manifest table")
    k.add_argument("--annotations", required=True, help="annotation table (the duration prior, validation truth)")
    k.add_argument("--pose-dir", required=True, help="pose files of the validation videos (results/pose)")
    k.add_argument("--videos-dir", default=None,
                   help="normalised videos (results/videos): the RGB members' window frames")
    k.add_argument("--tau", type=float, required=True, help="face-anchor threshold (config key clips.tau)")
    k.add_argument("--fps", type=float, required=True, help="normalised frame rate (config key download.fps)")
    k.add_argument("--pose", type=json_object, required=True, help="the pose section, recorded for new videos")
    k.add_argument("--download", type=json_object, required=True,
                   help="the download section (normalisation), recorded for new videos")
    common(k)
    k.set_defaults(func=_calibrate)

    v = sub.add_parser("evaluate", help="spot the labeled test videos and score them against the annotations")
    v.add_argument("--models-dir", required=True, help="models folder with spotter.json (results/models)")
    v.add_argument("--manifest", required=True, help="manifest table (which videos are labeled test videos)")
    v.add_argument("--annotations", required=True, help="annotation table (the truth)")
    v.add_argument("--pose-dir", required=True, help="pose files of the test videos (results/pose)")
    v.add_argument("--videos-dir", default=None, help="normalised videos (keyframes on the pages)")
    v.add_argument("--out-dir", required=True, help="one subfolder per test video")
    v.add_argument("--metrics", required=True, help="metrics JSON to write")
    common(v)
    v.set_defaults(func=_evaluate)

"""``mgfm clips sample|iod|figure``: thin wrappers over the clips stage functions."""

from __future__ import annotations

import argparse

from mgfm.cli import json_object, params_help


def _sample(args: argparse.Namespace) -> None:
    from mgfm.clips.sample import sample_clips

    sample_clips(args.pose_dir, args.manifest, args.annotations, args.out_clips, args.out_stats, args.seed,
                 args.params, video_dir=args.video_dir)


def _iod(args: argparse.Namespace) -> None:
    from mgfm.clips.iod import run_iod

    run_iod(args.pose_dir, args.manifest, args.annotations, args.out, args.seed, args.params,
            video_dir=args.video_dir)


def _figure(args: argparse.Namespace) -> None:
    from mgfm.clips.sample import durations_figure

    durations_figure(args.clips, args.manifest, args.annotations, args.out, args.params, args.video_dir)


def _tables(p: argparse.ArgumentParser, annotations: bool = True) -> None:
    p.add_argument("--manifest", required=True, help="manifest table (CSV or Parquet)")
    if annotations:
        p.add_argument("--annotations", required=True, help="MG annotation table")
    p.add_argument("--params", type=json_object, default={}, help=params_help("clips"))


def register(subparsers) -> None:
    clips = subparsers.add_parser("clips", help="rejection-sampled clips, MG-IoD ablations, duration figure")
    sub = clips.add_subparsers(dest="clips_command", required=True)

    p = sub.add_parser("sample", help="sample clips of every manifest video -> clips.parquet + sampler_stats.csv")
    p.add_argument("--pose-dir", required=True, help="folder of {video_id}.parquet pose files")
    p.add_argument("--video-dir", default=None, help="folder of {video_id}.json video metadata (frame counts)")
    _tables(p)
    p.add_argument("--seed", type=int, required=True, help="global seed (config key seed)")
    p.add_argument("--out-clips", required=True, help="clip table to write (results/clips/clips.parquet)")
    p.add_argument("--out-stats", required=True, help="per-video rejection statistics to write (CSV)")
    p.set_defaults(func=_sample)

    p = sub.add_parser("iod", help="MG-IoD ablations on the labeled test videos -> iod.json (Tables VI and VII)")
    p.add_argument("--pose-dir", required=True, help="folder of the pose files, one <video_id>.parquet per video")
    p.add_argument("--video-dir", default=None, help="folder of the normalised videos and their .json metadata")
    _tables(p)
    p.add_argument("--seed", type=int, required=True, help="global seed (config key 'seed')")
    p.add_argument("--out", required=True, help="raw results JSON (results/clips/iod.json)")
    p.set_defaults(func=_iod)

    p = sub.add_parser("figure", help="duration histogram of the prior vs the sampled clips (paper Fig. 4)")
    p.add_argument("--clips", required=True, help="sampled clip table (results/clips/clips.parquet)")
    p.add_argument("--video-dir", default=None, help="folder of {video_id}.json video metadata: the frame rate of "
                   "each annotated video (default: the rate of its sampled clips, so every one needs a clip)")
    _tables(p)
    p.add_argument("--out", required=True, help="PNG path")
    p.set_defaults(func=_figure)

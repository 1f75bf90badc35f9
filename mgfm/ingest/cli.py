"""``mgfm ingest ...`` (contract checks) and ``mgfm ingest download`` (one video): thin wrappers for the rules."""

from __future__ import annotations

import argparse
import json
import logging

from mgfm.cli import json_object, params_help

log = logging.getLogger("mgfm.ingest")


def _write_json(path: str, payload: dict) -> None:
    from pathlib import Path

    from mgfm.common.atomic import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _validate(args: argparse.Namespace) -> None:
    from mgfm.ingest.contract import validate_dataset

    summary = validate_dataset(args.manifest, args.annotations, args.taxonomy)
    _write_json(args.out, summary)
    log.info("dataset valid: %d videos (%d labeled, %d unlabeled), %d classes, %d instances -> %s",
             summary["videos"], summary["labeled_videos"], summary["unlabeled_videos"], summary["classes"],
             summary["instances"], args.out)


def _check_annotations(args: argparse.Namespace) -> None:
    from mgfm.ingest.download import check_downloaded_annotations

    summary = check_downloaded_annotations(args.manifest, args.annotations, args.taxonomy, args.metas)
    _write_json(args.out, summary)
    log.info("all %d annotated instances lie inside their %d videos -> %s", summary["instances"],
             summary["videos"], args.out)


def _exit_on_sigterm() -> None:
    """Turn SIGTERM (Snakemake cancelling a job, a cluster timeout) into SystemExit so temporaries are removed."""
    import signal
    import sys

    def handler(signum, frame):
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _download(args: argparse.Namespace) -> None:
    from mgfm.ingest.download import download_video
    from mgfm.ingest.records import download_record

    _exit_on_sigterm()
    if args.record:
        download_record(args.record, args.out_video, args.out_meta, args.params, threads=args.threads)
    elif args.manifest and args.video_id:
        download_video(args.manifest, args.video_id, args.out_video, args.out_meta, args.params, threads=args.threads)
    else:
        raise SystemExit("mgfm ingest download: give --record, or --manifest and --video-id")


def _records(args: argparse.Namespace) -> None:
    from mgfm.ingest.records import write_video_records

    changed = write_video_records(args.manifest, args.out, args.params)
    log.info("%d video records written to %s", len(changed), args.out)


def _label_free(args: argparse.Namespace) -> None:
    from mgfm.ingest.views import write_views

    changed = write_views(args.manifest, args.annotations, args.out)
    log.info("label-free views in %s: %s", args.out, ", ".join(changed) or "unchanged")


def _probe(args: argparse.Namespace) -> None:
    from mgfm.ingest.video import probe_video

    print(json.dumps(probe_video(args.video), indent=2))


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser("ingest", help="the dataset tables (contract), download and normalisation of "
                                   "the videos, their label-free views")
    sub = ingest.add_subparsers(dest="ingest_command", required=True)

    p = sub.add_parser("validate", help="validate manifest, annotations and taxonomy; write summary JSON")
    p.add_argument("--manifest", required=True, help="manifest table (CSV or Parquet): one row per video")
    p.add_argument("--annotations", required=True, help="annotation table (CSV or Parquet): one row per MG instance")
    p.add_argument("--taxonomy", required=True, help="taxonomy table (CSV or Parquet): one row per MG class")
    p.add_argument("--out", required=True, help="summary JSON (counts per split, class, group)")
    p.set_defaults(func=_validate)

    p = sub.add_parser("check-annotations", help="after download: annotation frames inside each video")
    p.add_argument("--manifest", required=True, help="manifest table (CSV or Parquet) or its label-free view")
    p.add_argument("--annotations", required=True, help="annotation table (CSV or Parquet): one row per MG instance")
    p.add_argument("--taxonomy", default=None, help="taxonomy table: also check every class (validate does that)")
    p.add_argument("--metas", nargs="+", required=True, help="the ingest stage's {video_id}.json files")
    p.add_argument("--out", required=True, help="JSON summary to write (results/ingest/annotations_checked.json)")
    p.set_defaults(func=_check_annotations)

    p = sub.add_parser("label-free", help="write the label-free views of the tables (videos.csv, intervals.csv)")
    p.add_argument("--manifest", required=True, help="manifest table (CSV or Parquet): one row per video")
    p.add_argument("--annotations", required=True, help="annotation table (CSV or Parquet): one row per MG instance")
    p.add_argument("--out", required=True, help="folder of the views (results/ingest/label_free)")
    p.set_defaults(func=_label_free)

    p = sub.add_parser("probe", help="print frames/fps/size of a video as decord reads it")
    p.add_argument("video", help="path of a video file")
    p.set_defaults(func=_probe)

    p = sub.add_parser("download", help="fetch, verify and normalise one manifest video")
    p.add_argument("--record", help="the video's record JSON (what the workflow passes; mgfm.ingest.records)")
    p.add_argument("--manifest", help="manifest table (CSV or Parquet): one row per video (with --video-id)")
    p.add_argument("--video-id", help="the manifest row (video_id) to download and normalise")
    p.add_argument("--out-video", required=True, help="normalised mp4 (25 fps H.264)")
    p.add_argument("--out-meta", required=True, help="metadata JSON beside it")
    p.add_argument("--params", type=json_object, default={}, help=params_help("download"))
    p.add_argument("--threads", type=int, default=1, help="ffmpeg encoder threads")
    p.set_defaults(func=_download)

    p = sub.add_parser("records", help="write one download record per manifest row (only the changed ones)")
    p.add_argument("--manifest", required=True, help="manifest table (CSV or Parquet): one row per video")
    p.add_argument("--out", required=True, help="records folder: one {video_id}.json per row")
    p.add_argument("--params", type=json_object, default={}, help=params_help("download"))
    p.set_defaults(func=_records)

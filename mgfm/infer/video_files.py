"""Which video files a user asked for, and the id each one gets (light: the Snakefile imports it at parse time)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v")


def safe_id(path: str | os.PathLike, taken: set[str]) -> str:
    """A video id from a file name: file-name-safe characters, unique among ``taken`` (which it joins)."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(path).stem).lstrip("._-") or "video"
    vid, k = base, 1
    while vid in taken:
        k += 1
        vid = f"{base}-{k}"
    taken.add(vid)
    return vid


def video_files(videos: list[str], folders: list[str]) -> list[str]:
    """The files given plus the video files of each folder (sorted); a missing folder is an error, and an entry
    of a folder that has a video suffix but is no file (a folder named like a video) is logged and skipped."""
    out = list(videos)
    for folder in folders:
        d = Path(folder)
        if not d.is_dir():
            what = "a file, not a folder of videos" if d.exists() else "video folder not found"
            raise FileNotFoundError(f"{folder}: {what} (config key infer.video_dir, or --video-dir)")
        entries = sorted(p for p in d.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        for p in entries:
            if not p.is_file():
                logging.getLogger("mgfm.infer").warning("%s: skipped: %s, not a video file", p,
                                                        "a folder" if p.is_dir() else "not a regular file")
        out += [str(p) for p in entries if p.is_file()]
    return out


def video_ids(videos: list[str], video_dir: str) -> dict[str, str]:
    """Video id -> file of every listed video and every video of ``video_dir`` (config keys infer.videos,
    infer.video_dir); two files that would get one id are an error (a rename resolves it), and so is a file
    whose name a shell command or a Snakemake file pattern cannot take as written (``mgfm.config.paths``)."""
    from mgfm.config.paths import describe, path_problem

    ids: dict[str, str] = {}
    for f in video_files(videos, [video_dir] if video_dir else []):
        why = path_problem(f)
        if why is not None:
            key = "infer.videos" if f in videos else "infer.video_dir"
            raise ValueError(f"config key {describe(key, f, why)} (or spot it with `mgfm infer`, which takes any "
                             "file name)")
        vid = safe_id(f, set())
        if vid in ids:
            raise ValueError(f"config key infer.videos / infer.video_dir: {ids[vid]} and {f} both become video id "
                             f"{vid!r}; rename one")
        ids[vid] = f
    return ids

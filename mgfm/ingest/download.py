"""Download stage: fetch one manifest video, verify it, normalise it, record its metadata.

Sources, chosen from the manifest ``url``:
- a local path (relative paths resolve against the manifest's folder) or ``file://`` URL: its symlinks
  resolved, hard-linked (copied across file systems) into a temporary folder, so a source replaced mid-job
  cannot change it;
- ``http(s)://``: streamed with urllib (per-operation timeout, bounded retries with exponential backoff,
  size cap, Content-Length truncation check, SHA-256 computed while streaming);
- URLs on a video site (hosts listed in ``ytdlp_hosts``): yt-dlp used as a library, never a shell.

Every source is a downloaded file before ffmpeg sees it, and ffmpeg reads it with ``mgfm.ingest.video``'s
protocol and demuxer allow-lists (no playlist can make it read other files).

Every failure (404, timeout, truncated body or source, checksum mismatch, not a video) raises ``DownloadError``
naming the video and the cause. Outputs are written through temporary names and renamed only when
complete, so a failed or killed job leaves nothing that looks finished and a rerun starts over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mgfm.common.atomic import atomic_path, remove_stale_parts
from mgfm.common.digest import sha256_file
from mgfm.common.fetch import FetchError, TransientFetchError, stream_url
from mgfm.config.sections import from_partial, section_values
from mgfm.ingest.contract import ID_PATTERN, URL_HELP, load_manifest
from mgfm.ingest.video import SourceInfo, VideoError, ffmpeg_exe, normalise_video, probe_video

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """One video could not be fetched or normalised; the message names the video and the cause."""


class _Retryable(Exception):
    """A transient fetch failure (timeout, connection reset, 5xx, truncated body): worth another try."""


@dataclass(frozen=True)
class DownloadParams:
    """The ``download:`` config section (see mgfm/config/schemas/download.schema.yaml for each key and default)."""

    timeout_s: float
    retries: int
    backoff_s: float
    max_backoff_s: float
    max_bytes: int
    user_agent: str
    ytdlp_hosts: tuple[str, ...]
    ytdlp_format: str
    link_local: bool
    fps: int
    max_width: int
    max_height: int
    crf: int
    preset: str
    ffmpeg_timeout_s: float

    @classmethod
    def from_section(cls, section: dict) -> DownloadParams:
        """From the resolved ``download`` section (a partial one goes through ``mgfm.config.sections.from_partial``
        first); a missing or unknown key is an error naming it."""
        values = section_values(cls, section, "download")
        values["ytdlp_hosts"] = tuple(values["ytdlp_hosts"])
        return cls(**values)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    sha256: str
    size: int


# ---- source kinds --------------------------------------------------------------------------------------


def source_kind(url: str, ytdlp_hosts: tuple[str, ...] | None = None) -> str:
    """'file', 'http' or 'ytdlp' for a manifest url (a plain path counts as 'file'); hosts default to the config's."""
    if ytdlp_hosts is None:
        ytdlp_hosts = from_partial(DownloadParams, "download").ytdlp_hosts
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):  # C:\ on Windows
        return "file"
    if scheme in ("http", "https"):
        host = (parsed.hostname or "").lower()
        if any(host == h or host.endswith("." + h) for h in ytdlp_hosts):
            return "ytdlp"
        return "http"
    raise ValueError(f"unsupported url scheme {scheme!r} ({URL_HELP})")


def local_path(url: str, base_dir: Path) -> Path:
    """The file a 'file' url names; relative paths resolve against ``base_dir`` (the manifest's folder)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"file:// url with a remote host is not supported: {url}")
        path = Path(urllib.request.url2pathname(parsed.path))
    else:
        path = Path(url).expanduser()
    return path if path.is_absolute() else base_dir / path


def _redact(url: str) -> str:
    """A url for logs: the query string may hold tokens."""
    parsed = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parsed._replace(query="…" if parsed.query else "", fragment=""))


# ---- fetchers: each writes into `workdir` and returns the file ------------------------------------------


def fetch_local(url: str, workdir: Path, params: DownloadParams, base_dir: Path) -> FetchResult:
    """Link (or copy) a local source into ``workdir``; the hash is of that copy, the bytes that get normalised.

    Symlinks are resolved first: ``os.link`` may link the symlink itself, and a relative one dangles in
    ``workdir``.
    """
    named = local_path(url, base_dir)
    if not named.is_file():
        raise FileNotFoundError(f"source file not found: {named}")
    src = named.resolve(strict=True)
    size = src.stat().st_size
    if size > params.max_bytes:
        raise DownloadError(f"source is {size} bytes, more than max_bytes={params.max_bytes}")
    dst = workdir / ("source" + src.suffix.lower())
    linked = False
    if params.link_local:
        with contextlib.suppress(OSError):  # other file system, or links not allowed: copy instead
            os.link(src, dst, follow_symlinks=False)  # src is resolved: no symlink left to follow
            linked = True
    if not linked:
        shutil.copyfile(src, dst)
    log.info("%s %s%s (%d bytes)", "linked" if linked else "copied", src,
             f" (via {named})" if named != src else "", size)
    return FetchResult(dst, sha256_file(dst), size)


def _http_attempt(url: str, dst: Path, params: DownloadParams) -> FetchResult:
    """One streamed GET (``mgfm.common.fetch``); raises _Retryable for transient failures, DownloadError for
    permanent ones."""
    try:
        got = stream_url(url, dst, timeout_s=params.timeout_s, max_bytes=params.max_bytes,
                         user_agent=params.user_agent)
    except TransientFetchError as err:
        raise _Retryable(str(err)) from err
    except FetchError as err:
        raise DownloadError(str(err)) from err
    return FetchResult(dst, got.sha256, got.size)


def with_retries(attempt: Callable[[], FetchResult], params: DownloadParams, what: str,
                 sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    """Run ``attempt`` up to 1 + retries times, sleeping backoff_s * 2**k (capped) between transient failures."""
    for k in range(params.retries + 1):
        try:
            return attempt()
        except _Retryable as err:
            if k == params.retries:
                raise DownloadError(f"{err} (gave up after {params.retries + 1} attempts)") from err
            delay = min(params.backoff_s * 2**k, params.max_backoff_s)
            log.warning("%s: %s; retry %d/%d in %.1f s", what, err, k + 1, params.retries, delay)
            sleep(delay)
    raise AssertionError("unreachable")


def fetch_http(url: str, workdir: Path, params: DownloadParams) -> FetchResult:
    suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
    dst = workdir / ("source" + (suffix if suffix.isascii() and len(suffix) <= 6 else ""))
    result = with_retries(lambda: _http_attempt(url, dst, params), params, _redact(url))
    log.info("fetched %s (%d bytes)", _redact(url), result.size)
    return result


def fetch_ytdlp(url: str, workdir: Path, params: DownloadParams) -> FetchResult:
    """Download with yt-dlp's Python API into ``workdir`` (video only: audio is dropped later anyway)."""
    import yt_dlp

    options = {
        "format": params.ytdlp_format,
        "outtmpl": {"default": str(workdir / "source.%(ext)s")},
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": params.timeout_s,
        "retries": params.retries,
        "fragment_retries": params.retries,
        "max_filesize": params.max_bytes,
        "ffmpeg_location": ffmpeg_exe(),
        "http_headers": {"User-Agent": params.user_agent},
        "logger": log,
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.DownloadError as err:
        raise DownloadError(f"yt-dlp failed: {str(err).removeprefix('ERROR: ')}") from err
    paths = [Path(d["filepath"]) for d in (info or {}).get("requested_downloads") or [] if d.get("filepath")]
    paths = [p for p in paths if p.is_file()] or [p for p in workdir.glob("source.*") if p.is_file()]
    if not paths:
        raise DownloadError(f"yt-dlp produced no file (larger than max_bytes={params.max_bytes}?)")
    path = paths[0]
    size = path.stat().st_size
    log.info("yt-dlp fetched %s (%d bytes, format %s)", _redact(url), size, (info or {}).get("format_id"))
    return FetchResult(path, sha256_file(path), size)


# ---- the stage -----------------------------------------------------------------------------------------


#: Decoded frames may fall short of the container's duration by this much (seconds, or fraction of it, whichever
#: is larger) before the video counts as truncated: audio running a little past the picture is normal.
SHORT_TOLERANCE_S = 1.0
SHORT_TOLERANCE_FRACTION = 0.02


def check_complete(frames: int, duration_s: float | None, fps: float, source: SourceInfo | None = None) -> None:
    """Fail when the normalised video is clearly shorter than the source container says it is.

    A truncated mp4 whose index sits at the start (``+faststart``) still announces its full duration, and
    ffmpeg silently encodes only the frames that are there; this turns that into an error with both numbers.
    A single picture (cover art stored as the only video track) is named as what it is, not as a truncation.
    """
    if not duration_s or duration_s <= 0:
        return  # the container states no duration (e.g. some streamed formats): nothing to compare
    expected = duration_s * fps
    short_s = (expected - frames) / fps
    if short_s <= max(SHORT_TOLERANCE_S, SHORT_TOLERANCE_FRACTION * duration_s):
        return
    if frames <= 1 or (source is not None and source.still_codec and frames <= 2):
        where = f"stream #0:{source.stream} ({source.codec})" if source is not None else "its video stream"
        raise VideoError(f"not a video: {where} holds {frames} frame(s), a still picture (cover art or a thumbnail "
                         f"stored as a video track), while the container says {duration_s:.2f} s"
                         + ("; it has no other video stream" if source is not None and source.n_video_streams == 1
                            else ""))
    raise VideoError(f"truncated source: {frames} frames decoded ({frames / fps:.2f} s at {fps:g} fps) but the "
                     f"container says {duration_s:.2f} s ({expected:.0f} frames); the file is incomplete")


def normalise_checked(src: str | Path, dst: str | Path, params: DownloadParams, threads: int = 1
                      ) -> tuple[SourceInfo, dict]:
    """Normalise ``src`` into ``dst`` with the download settings and check the result: the frame rate, and
    the frame count against the source container's duration (``check_complete``). The one normalisation of
    a video file, shared by the ingest stage and ``mgfm infer``. Returns (source info, probed output)."""
    source = normalise_video(src, dst, fps=params.fps, max_width=params.max_width, max_height=params.max_height,
                             crf=params.crf, preset=params.preset, threads=threads,
                             timeout_s=params.ffmpeg_timeout_s)
    probed = probe_video(dst)
    if abs(probed["fps"] - params.fps) > 1e-3:
        raise VideoError(f"normalised video has {probed['fps']} fps, expected {params.fps}")
    check_complete(probed["frames"], source.duration, params.fps, source)
    return source, probed


def manifest_row(manifest_path: str | Path, video_id: str) -> dict:
    """The validated manifest row of ``video_id``."""
    if not ID_PATTERN.fullmatch(video_id):
        raise ValueError(f"invalid video id {video_id!r}: must match {ID_PATTERN.pattern}")
    manifest = load_manifest(manifest_path)
    rows = manifest[manifest["video_id"] == video_id]
    if rows.empty:
        raise ValueError(f"{manifest_path}: video {video_id!r} is not in the manifest")
    return rows.iloc[0].to_dict()


def download_video(manifest_path: str | Path, video_id: str, out_video: str | Path, out_meta: str | Path,
                   params: DownloadParams | dict | None = None, threads: int = 1) -> dict:
    """Fetch, verify and normalise one manifest video; write ``out_video`` (mp4) and ``out_meta`` (JSON).

    Returns the metadata ``{video_id, frames, fps, width, height, duration, source_sha256, ...}``.
    """
    row = manifest_row(manifest_path, video_id)
    return download_row(row, Path(manifest_path).resolve().parent, out_video, out_meta, params, threads)


def download_row(row: dict, base_dir: Path, out_video: str | Path, out_meta: str | Path,
                 params: DownloadParams | dict | None = None, threads: int = 1) -> dict:
    """Fetch, verify and normalise the video of one manifest row; relative local urls resolve against ``base_dir``."""
    params = from_partial(DownloadParams, "download", params)
    out_video, out_meta = Path(out_video), Path(out_meta)
    video_id = str(row["video_id"])
    if not ID_PATTERN.fullmatch(video_id):
        raise ValueError(f"invalid video id {video_id!r}: must match {ID_PATTERN.pattern}")
    # an earlier run's outputs must not survive a failure of this one, nor its temporaries a kill of it
    for stale in (out_meta, out_video):
        stale.unlink(missing_ok=True)
        remove_stale_parts(stale)
    remove_stale_parts(out_video.parent / video_id)  # the fetch folder below
    out_video.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        kind = source_kind(row["url"], params.ytdlp_hosts)
        with tempfile.TemporaryDirectory(prefix=f".{video_id}.", suffix=".part", dir=out_video.parent) as tmp:
            workdir = Path(tmp)
            log.info("%s: fetching %s source %s", video_id, kind, _redact(row["url"]))
            if kind == "file":
                fetched = fetch_local(row["url"], workdir, params, base_dir)
            elif kind == "http":
                fetched = fetch_http(row["url"], workdir, params)
            else:
                fetched = fetch_ytdlp(row["url"], workdir, params)
            expected = row.get("sha256") or ""
            if expected and fetched.sha256 != expected:
                raise DownloadError(f"checksum mismatch: sha256 {fetched.sha256}, manifest says {expected}")
            fetched_at = time.perf_counter()
            with atomic_path(out_meta) as tmp_meta, atomic_path(out_video) as tmp_video:
                source, probed = normalise_checked(fetched.path, tmp_video, params, threads)
                meta = {"video_id": video_id, **probed, "codec": "h264", "source_sha256": fetched.sha256,
                        "source_bytes": fetched.size, "source_kind": kind,
                        "source_width": source.width, "source_height": source.height,
                        "source_fps": source.fps, "source_sar": round(source.sar, 6),
                        "synthetic": str(row.get("synthetic", "")).lower() == "true"}
                tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
                # exit order renames the video first, then the meta: the meta JSON marks a finished video
    except (DownloadError, VideoError, ValueError, FileNotFoundError, OSError) as err:
        for partial in (out_meta, out_video):
            partial.unlink(missing_ok=True)
        raise DownloadError(f"video {video_id}: {err}") from err
    done = time.perf_counter()
    log.info("%s: %d frames %dx%d @ %g fps (%.1f s); fetch %.1f s, normalise %.1f s (%.0f frames/s)",
             video_id, meta["frames"], meta["width"], meta["height"], meta["fps"], meta["duration"],
             fetched_at - started, done - fetched_at, meta["frames"] / max(done - fetched_at, 1e-9))
    return meta


def read_video_meta(path: str | Path) -> dict:
    """A metadata JSON written by ``download_video``, checked for the keys later stages rely on."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video metadata not found (has the video been downloaded?)")
    meta = json.loads(path.read_text())
    missing = [k for k in ("video_id", "frames", "fps", "width", "height", "duration") if k not in meta]
    if missing:
        raise ValueError(f"{path}: metadata lacks {', '.join(missing)}")
    return meta


def check_downloaded_annotations(manifest_path: str | Path, annotations_path: str | Path,
                                 taxonomy_path: str | Path | None, meta_paths: list[str | Path]) -> dict:
    """Check that every annotated interval lies inside its normalised video; return a summary.

    ``meta_paths`` are the ingest stage's ``{video_id}.json`` files (all videos, or at least the annotated).
    ``manifest_path``: the manifest or its label-free view (only subsets are read); ``taxonomy_path``: when
    given, every class is checked too.
    """
    from mgfm.ingest.contract import check_annotations_in_videos, load_annotations, load_taxonomy

    manifest = load_manifest(manifest_path, labels=False)
    taxonomy = load_taxonomy(taxonomy_path) if taxonomy_path else None
    annotations = load_annotations(annotations_path, manifest=manifest, taxonomy=taxonomy)
    metas = {}
    for path in map(Path, meta_paths):
        meta = read_video_meta(path)
        if meta["video_id"] != path.stem:
            raise ValueError(f"{path}: metadata is for video {meta['video_id']!r}")
        metas[path.stem] = meta
    checked = check_annotations_in_videos(annotations, metas)
    frames = sum(int(metas[v]["frames"]) for v in checked)
    covered = int((annotations["end_frame"] - annotations["start_frame"] + 1).sum())
    return {"instances": int(len(annotations)), "videos": len(checked), "annotated_video_frames": frames,
            "annotated_frames": covered, "instances_per_video": dict(sorted(checked.items()))}

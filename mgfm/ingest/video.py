"""Video tools shared by every stage: the ffmpeg executable, normalisation, probing and frame reading.

- ``ffmpeg_exe()`` is the one place that decides which ffmpeg runs: the system ``ffmpeg`` when it is on
  PATH, else the static build shipped by the ``imageio-ffmpeg`` wheel (so no root install is needed).
- Sources are inspected by parsing ``ffmpeg -i`` (ffprobe is often missing when ffmpeg comes from
  imageio-ffmpeg), which is enough to reject files that are not videos before encoding.
- A source is untrusted data: ffmpeg opens it with the ``file`` protocol only and with a demuxer allow-list of
  real video containers (``SOURCE_DEMUXERS``). Playlists (HLS), concat scripts, text (tty) and image
  sequences are refused: they make ffmpeg read other files, possibly local files of the host, or turn
  something that is not a video into frames.
- Normalised outputs are probed with decord, the same reader later stages use, so the recorded frame
  count is exactly the number of frames they can read.
- ``iter_frames`` / ``read_frames`` read frames with decord in bounded batches, never the whole video.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class VideoError(RuntimeError):
    """A file is not a readable video, or ffmpeg failed on it."""


# ---- ffmpeg --------------------------------------------------------------------------------------------


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg executable: system ``ffmpeg`` if on PATH, else imageio-ffmpeg's bundled binary."""
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as err:  # pragma: no cover - imageio-ffmpeg is a declared dependency
        raise RuntimeError("no ffmpeg on PATH and the imageio-ffmpeg package is not installed") from err
    return imageio_ffmpeg.get_ffmpeg_exe()


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


# ---- probing a source with `ffmpeg -i` -----------------------------------------------------------------

_INPUT_RE = re.compile(r"^Input #0, (.+), from ", re.M)
_PROBED_RE = re.compile(r"Format (\S+) probed with size")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM_RE = re.compile(r"^\s*Stream #0:\d+.*?: Video: .*$", re.M)
# one stream line and the metadata lines below it, up to the next stream (or the end of the input's block)
_STREAM_BLOCK_RE = re.compile(r"^\s*Stream #0:(\d+)[^:]*: Video: (.*)$((?:\n(?!\s*Stream #)(?!\S).*)*)", re.M)
_STREAM_DURATION_RE = re.compile(r"^\s*DURATION\S*\s*: (\d+):(\d+):(\d+(?:\.\d+)?)", re.M)
_VIDEO_RE = re.compile(r": Video: (\w+).*?, (\d{1,5})x(\d{1,5})")
_SAR_RE = re.compile(r"\[SAR (\d+):(\d+) DAR \d+:\d+\]")
_FPS_RE = re.compile(r", ([\d.]+) fps")
_ROTATION_RE = re.compile(r"rotation of (-?[\d.]+) degrees")
# a cover image or thumbnail in an audio or video file is a "Video" stream to ffmpeg, but it is no video
_NOT_MOTION = ("(attached pic)", "(timed thumbnails)")
#: Codecs of still pictures: a stream of one of them may hold a single frame (cover art stored as a track)
STILL_CODECS = ("mjpeg", "png", "bmp", "gif", "webp", "tiff", "jpeg2000", "jpegls", "qoi")

#: Demuxers a source may be read with: real video containers only (ffmpeg's names; a name like
#: "mov,mp4,m4a,3gp,3g2,mj2" or "matroska,webm" is one demuxer). Everything else is refused before any
#: decoding: playlists (hls, dash) and concat scripts read other files, tty turns text into frames,
#: image2/gif/*_pipe read still images, audio-only formats have no video.
SOURCE_DEMUXERS = ("mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "mpegts", "flv",
                   "mpeg", "asf", "ogg")
#: Protocols a source may be read with: the downloaded file itself, nothing on the network or in other files.
SOURCE_PROTOCOLS = ("file",)
# what a refused file usually is, from its first bytes (for the error message only)
_SIGNATURES = ((b"#EXTM3U", "an HLS playlist"), (b"ffconcat", "an ffmpeg concat script"),
               (b"<?xml", "an XML document (a DASH manifest?)"), (b"<MPD", "a DASH manifest"))


@dataclass(frozen=True)
class SourceInfo:
    """What ``ffmpeg -i`` says about a source file (display size: rotation already applied)."""

    container: str
    codec: str
    width: int
    height: int
    fps: float | None
    duration: float | None
    sar: float = 1.0  # stored pixel aspect ratio (width / height of one pixel); width above already applies it
    stream: int = 0   # index of the video stream read (ffmpeg's 0:N): the longest motion stream, see pick_stream
    n_video_streams: int = 1

    @property
    def still_codec(self) -> bool:
        """The stream read is coded as still pictures (mjpeg, png, ...): one frame of it may be cover art."""
        return self.codec in STILL_CODECS


def source_input_args(path: str | os.PathLike) -> list[str]:
    """ffmpeg input arguments that read ``path`` as a local file with an allowed video demuxer only."""
    return ["-protocol_whitelist", ",".join(SOURCE_PROTOCOLS), "-format_whitelist", ",".join(SOURCE_DEMUXERS),
            "-i", "file:" + str(Path(path).resolve())]


def _refused(path: Path, text: str) -> VideoError:
    """The error for a file that ffmpeg would not open with the allow-lists, naming what it is if known."""
    probed = _PROBED_RE.search(text)
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    what = next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)
    if probed and "not on whitelist" in text:
        fmt = probed.group(1)
        if what is None and any(tag in fmt for tag in ("image2", "_pipe", "gif")):
            what = "a still image or animation"
        elif what is None and fmt == "tty":
            what = "text"
        return VideoError(f"not a video: ffmpeg reads it with the {fmt!r} demuxer"
                          + (f" ({what})" if what else "") + ", which is not an allowed video container "
                          f"({', '.join(SOURCE_DEMUXERS)}); playlists, concat scripts, text and image "
                          "sequences are refused")
    if what:
        return VideoError(f"not a video: it is {what}, which is refused")
    reasons = [line for line in text.splitlines() if "Error opening input:" in line]
    reason = reasons[-1].split("Error opening input:", 1)[1].strip() if reasons else _tail(text, 1)
    return VideoError(f"not a video: ffmpeg cannot open it as a video container ({reason})")


def probe_source(path: str | os.PathLike) -> SourceInfo:
    """Inspect a downloaded file with ``ffmpeg -i``; raise VideoError with the cause if it is not a video."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise VideoError("not a video: the file is empty")
    try:  # -v debug: ffmpeg then names the demuxer it probed, also when the allow-list refuses it
        proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "debug", *source_input_args(path)],
                              capture_output=True, text=True, errors="replace", timeout=300)
    except subprocess.TimeoutExpired as err:
        raise VideoError("ffmpeg took more than 300 s to open it") from err
    text = proc.stderr
    container = _INPUT_RE.search(text)
    if container is None:
        raise _refused(path, text)
    fmt = container.group(1)
    duration = _DURATION_RE.search(text)
    seconds = None
    if duration:
        h, m, s = duration.groups()
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    streams = _video_streams(text)
    motion = [st for st in streams if not any(tag in st["line"] for tag in _NOT_MOTION)]
    chosen = pick_stream(motion, seconds)
    video = _VIDEO_RE.search(": Video: " + chosen["line"]) if chosen else None
    if video is None:
        pictures = " (only a cover picture)" if streams else ""
        raise VideoError(f"not a video: no video stream{pictures} (container {fmt})")
    line = chosen["line"]
    width, height = int(video.group(2)), int(video.group(3))
    sar_match = _SAR_RE.search(line)
    sar = 1.0
    if sar_match and int(sar_match.group(1)) > 0 and int(sar_match.group(2)) > 0:
        sar = int(sar_match.group(1)) / int(sar_match.group(2))
        width = max(1, round(width * sar))  # display width: square pixels
    rotation = _ROTATION_RE.search(text)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width  # ffmpeg auto-rotates on decode
    fps = _FPS_RE.search(line)
    return SourceInfo(container=fmt, codec=video.group(1), width=width, height=height,
                      fps=float(fps.group(1)) if fps else None, duration=seconds, sar=sar,
                      stream=chosen["index"], n_video_streams=len(motion))


def _video_streams(text: str) -> list[dict]:
    """Every video stream of ``ffmpeg -i``'s listing: index, the stream line, its own duration (Matroska
    writes one per track) and whether it is the default track."""
    streams = []
    for m in _STREAM_BLOCK_RE.finditer(text):
        own = _STREAM_DURATION_RE.search(m.group(3) or "")
        seconds = None
        if own:
            h, mi, s = own.groups()
            seconds = int(h) * 3600 + int(mi) * 60 + float(s)
        streams.append({"index": int(m.group(1)), "line": m.group(2), "duration": seconds,
                        "default": "(default)" in m.group(2)})
    return streams


def pick_stream(streams: list[dict], container_s: float | None) -> dict | None:
    """The video stream to read: the longest (a track's own duration where the container states one, else
    the container's), then the default track, then the first. A one-frame picture stored as the first track
    of a Matroska file (cover art) thus never stands in for the video beside it."""
    if not streams:
        return None
    whole = container_s or 0.0
    return max(streams, key=lambda st: (st["duration"] if st["duration"] is not None else whole, st["default"],
                                        -st["index"]))


# ---- normalisation -------------------------------------------------------------------------------------


def target_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """Output size: fit inside max_width x max_height keeping the aspect ratio, never upscale, even dims."""
    scale = min(1.0, max_width / width, max_height / height)
    out_w = max(2, int(width * scale + 1e-6) // 2 * 2)
    out_h = max(2, int(height * scale + 1e-6) // 2 * 2)
    return out_w, out_h


def normalise_video(src: str | os.PathLike, dst: str | os.PathLike, *, fps: int = 25, max_width: int = 1280,
                    max_height: int = 720, crf: int = 20, preset: str = "veryfast", threads: int = 1,
                    timeout_s: float | None = None) -> SourceInfo:
    """Re-encode ``src`` to constant-``fps`` H.264 (yuv420p) mp4 at ``dst``, at most max_width x max_height.

    Audio, subtitles and metadata are dropped. Non-square source pixels are resampled to square ones (the
    output has the source's display aspect ratio). ``src`` is read with ``source_input_args``' allow-lists.
    ``dst`` is written directly: callers pass a temporary path (``mgfm.common.atomic.atomic_path``).
    Raises VideoError naming the cause.
    """
    import ffmpeg  # ffmpeg-python: builds the argument list, no shell involved

    info = probe_source(src)
    out_w, out_h = target_size(info.width, info.height, max_width, max_height)
    stream = ffmpeg.input("file:" + str(Path(src).resolve()), protocol_whitelist=",".join(SOURCE_PROTOCOLS),
                          format_whitelist=",".join(SOURCE_DEMUXERS))[str(info.stream)]  # pick_stream's choice
    stream = stream.filter("fps", fps=fps).filter("scale", out_w, out_h, flags="area").filter("setsar", "1")
    out = ffmpeg.output(stream, str(Path(dst).resolve()), f="mp4", vcodec="libx264", pix_fmt="yuv420p",
                        crf=crf, preset=preset, r=fps, movflags="+faststart", threads=threads,
                        map_metadata=-1, an=None, sn=None, dn=None)
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *ffmpeg.get_args(out)]
    log.debug("ffmpeg %s", args)
    try:
        proc = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=timeout_s)
    except subprocess.TimeoutExpired as err:
        raise VideoError(f"ffmpeg took longer than {timeout_s} s") from err
    if proc.returncode != 0:
        raise VideoError(f"ffmpeg could not normalise it (exit {proc.returncode}): {_tail(proc.stderr)}")
    return info


# ---- probing and reading normalised videos with decord --------------------------------------------------


def open_reader(path: str | os.PathLike, *, width: int = -1, height: int = -1, num_threads: int = 1):
    """A decord VideoReader (RGB); ``width``/``height`` resize on decode (-1 keeps the stored size)."""
    import decord

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: video not found")
    try:
        return decord.VideoReader(str(path), width=width, height=height, num_threads=num_threads)
    except decord.DECORDError as err:
        raise VideoError(f"{path}: decord cannot read it: {str(err).splitlines()[0]}") from err


def probe_video(path: str | os.PathLike) -> dict:
    """Frames, fps, width, height and duration of a (normalised) video, as decord sees it."""
    reader = open_reader(path)
    frames = len(reader)
    if frames == 0:
        raise VideoError(f"{path}: no decodable frames")
    height, width = reader[0].shape[:2]
    fps = float(reader.get_avg_fps())
    return {"frames": int(frames), "fps": fps, "width": int(width), "height": int(height),
            "duration": round(frames / fps, 6) if fps > 0 else 0.0}


def iter_frames(path: str | os.PathLike, batch_size: int = 64, start: int = 0, end: int | None = None, *,
                width: int = -1, height: int = -1, num_threads: int = 1
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(frame_indices int64 (B,), frames uint8 (B, H, W, 3) RGB)`` for frames ``start..end-1``.

    ``end`` is exclusive (None = to the last frame). Frames are decoded sequentially (faster than random
    access in decord) and only one batch is held in memory; the last batch may be shorter.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    reader = open_reader(path, width=width, height=height, num_threads=num_threads)
    total = len(reader)
    end = total if end is None else min(int(end), total)
    if start < 0 or start > end:
        raise ValueError(f"{path}: invalid frame range start={start} end={end} (video has {total} frames)")
    if start == end:
        return
    if start > 0:
        reader.seek_accurate(start)
    index = start
    while index < end:
        count = min(batch_size, end - index)
        batch: np.ndarray | None = None
        for k in range(count):
            frame = reader.next().asnumpy()
            if batch is None:
                batch = np.empty((count, *frame.shape), dtype=np.uint8)
            batch[k] = frame
        yield np.arange(index, index + count, dtype=np.int64), batch
        index += count


def read_frames(path: str | os.PathLike, indices: Sequence[int] | np.ndarray, *, width: int = -1,
                height: int = -1, num_threads: int = 1) -> np.ndarray:
    """Frames at ``indices`` (any order, repeats allowed) as uint8 (N, H, W, 3) RGB."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    reader = open_reader(path, width=width, height=height, num_threads=num_threads)
    total = len(reader)
    if idx.size == 0:
        h, w = reader[0].shape[:2]
        return np.empty((0, h, w, 3), dtype=np.uint8)
    if idx.min() < 0 or idx.max() >= total:
        raise ValueError(f"{path}: frame index out of range 0..{total - 1}: {int(idx.min())}..{int(idx.max())}")
    unique, inverse = np.unique(idx, return_inverse=True)
    frames = reader.get_batch(unique.tolist()).asnumpy()
    return frames[inverse]

"""Encoding rendered frames: raw RGB piped into the ffmpeg executable (system ffmpeg, else imageio-ffmpeg's)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

import numpy as np

from mgfm.ingest.video import ffmpeg_exe


def codec_args(codec: str, crf: int) -> list[str]:
    """Encoder arguments: single-threaded and bit-exact, so the same frames give the same file."""
    if codec == "libx264":
        return ["-c:v", "libx264", "-preset", "ultrafast", "-crf", str(int(crf)), "-pix_fmt", "yuv420p",
                "-threads", "1", "-x264-params", "threads=1"]
    if codec == "mjpeg":
        q = int(np.clip(round(2 + crf / 51 * 29), 2, 31))  # map crf 0-51 onto mjpeg qscale 2-31
        return ["-c:v", "mjpeg", "-q:v", str(q), "-pix_fmt", "yuvj420p", "-threads", "1"]
    raise ValueError(f"unsupported codec {codec!r}; expected 'libx264' or 'mjpeg'")


class VideoWriter:
    """Context manager: ``write(frames)`` RGB uint8 (H, W, 3) or (N, H, W, 3) into an mp4 at ``fps``.

    ffmpeg runs with an argument list (never a shell); its stderr is kept to explain a failure.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, codec: str = "libx264",
                 crf: int = 23) -> None:
        self.path = Path(path)
        self.shape = (height, width, 3)
        args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "pipe:0",
                "-an", *codec_args(codec, crf), "-map_metadata", "-1", "-fflags", "+bitexact",
                "-flags:v", "+bitexact", "-f", "mp4", str(self.path)]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.shape[-3:] != self.shape:
            raise ValueError(f"{self.path}: frame shape {frames.shape[-3:]} != {self.shape}")
        try:
            self._proc.stdin.write(frames.data)
        except BrokenPipeError:
            self._finish()  # raises with ffmpeg's message
        self.frames += 1 if frames.ndim == 3 else frames.shape[0]

    def _finish(self) -> None:
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
        code = self._proc.wait()
        if code != 0:
            raise RuntimeError(f"ffmpeg failed writing {self.path} (exit {code}): {err.strip()[-2000:]}")

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._proc.kill()
            self._proc.wait()
            return
        self._finish()

"""Video tools: ffmpeg location, normalisation to 25 fps H.264 within 1280x720, probing, batched reading."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mgfm.ingest import video
from mgfm.ingest.video import (
    VideoError,
    ffmpeg_exe,
    iter_frames,
    normalise_video,
    probe_source,
    probe_video,
    read_frames,
    target_size,
)


def make_video(path: Path, size: str = "640x480", rate: int = 30, seconds: float = 1.0,
               audio: bool = True) -> Path:
    """A synthetic test clip (ffmpeg testsrc) with an audio track, like a real press video."""
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size={size}:rate={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac"] if audio else []
    subprocess.run([*args, str(path)], check=True)
    return path


def streams(path: Path) -> str:
    """The stream lines of `ffmpeg -i` (ffprobe may be absent)."""
    text = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return "\n".join(line for line in text.splitlines() if "Stream #" in line)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("src") / "clip.mp4")


@pytest.fixture(scope="module")
def normalised(tmp_path_factory, clip) -> Path:
    out = tmp_path_factory.mktemp("norm") / "clip.mp4"
    normalise_video(clip, out, fps=25, max_width=1280, max_height=720, preset="ultrafast")
    return out


def test_ffmpeg_exe_prefers_system_then_imageio(monkeypatch, tmp_path):
    video.ffmpeg_exe.cache_clear()
    monkeypatch.setattr(video.shutil, "which", lambda name: None)
    import imageio_ffmpeg

    assert video.ffmpeg_exe() == imageio_ffmpeg.get_ffmpeg_exe()
    video.ffmpeg_exe.cache_clear()
    fake = str(tmp_path / "ffmpeg")
    monkeypatch.setattr(video.shutil, "which", lambda name: fake if name == "ffmpeg" else None)
    assert video.ffmpeg_exe() == fake
    video.ffmpeg_exe.cache_clear()


def test_normalised_is_25fps_h264_same_size_no_audio(clip, normalised):
    source = probe_source(clip)
    assert (source.width, source.height, source.fps) == (640, 480, 30.0)
    assert "Audio:" in streams(clip)
    lines = streams(normalised)
    assert "Audio:" not in lines
    assert "Video: h264" in lines and "yuv420p" in lines and "25 fps" in lines
    meta = probe_video(normalised)
    assert meta == {"frames": 25, "fps": 25.0, "width": 640, "height": 480, "duration": 1.0}


@pytest.mark.parametrize("size,expected", [
    ((640, 480), (640, 480)),
    ((1920, 1080), (1280, 720)),
    ((1280, 720), (1280, 720)),
    ((720, 1280), (404, 720)),
    ((2000, 400), (1280, 256)),
    ((321, 241), (320, 240)),
])
def test_target_size_fits_keeps_aspect_even(size, expected):
    out = target_size(*size, 1280, 720)
    assert out == expected
    assert out[0] % 2 == 0 and out[1] % 2 == 0 and out[0] <= max(size[0], 2) and out[1] <= size[1]


def test_large_source_is_scaled_down(tmp_path):
    src = make_video(tmp_path / "big.mp4", size="1920x1080", rate=25, seconds=0.2, audio=False)
    out = tmp_path / "big_norm.mp4"
    normalise_video(src, out, preset="ultrafast")
    meta = probe_video(out)
    assert (meta["width"], meta["height"], meta["frames"]) == (1280, 720, 5)


def test_not_a_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("definitely not a video\n")
    with pytest.raises(VideoError, match="not a video"):
        probe_source(text)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        normalise_video(empty, tmp_path / "out.mp4")
    image = tmp_path / "still.png"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48",
                    "-frames:v", "1", str(image)], check=True)
    with pytest.raises(VideoError, match="still image"):
        normalise_video(image, tmp_path / "out.mp4")
    audio = tmp_path / "sound.m4a"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine", "-t", "0.5",
                    str(audio)], check=True)
    with pytest.raises(VideoError, match="no video stream"):
        normalise_video(audio, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_iter_frames_batches_match_random_access(normalised):
    reference = read_frames(normalised, np.arange(25))
    assert reference.shape == (25, 480, 640, 3) and reference.dtype == np.uint8
    batches = list(iter_frames(normalised, batch_size=7))
    assert [len(i) for i, _ in batches] == [7, 7, 7, 4]
    indices = np.concatenate([i for i, _ in batches])
    frames = np.concatenate([f for _, f in batches])
    assert indices.tolist() == list(range(25))
    np.testing.assert_array_equal(frames, reference)
    # a window in the middle, end exclusive
    window = list(iter_frames(normalised, batch_size=4, start=9, end=18))
    assert np.concatenate([i for i, _ in window]).tolist() == list(range(9, 18))
    np.testing.assert_array_equal(np.concatenate([f for _, f in window]), reference[9:18])
    assert list(iter_frames(normalised, 4, start=25)) == []
    # the frames differ (testsrc moves), so equality above is meaningful
    assert not np.array_equal(reference[0], reference[12])


def test_read_frames_order_repeats_resize_and_errors(normalised):
    frames = read_frames(normalised, [5, 1, 5])
    np.testing.assert_array_equal(frames[0], frames[2])
    np.testing.assert_array_equal(frames[1], read_frames(normalised, [1])[0])
    small = read_frames(normalised, [0, 1], width=160, height=120)
    assert small.shape == (2, 120, 160, 3)
    assert read_frames(normalised, []).shape == (0, 480, 640, 3)
    with pytest.raises(ValueError, match="out of range"):
        read_frames(normalised, [25])
    with pytest.raises(ValueError, match="invalid frame range"):
        next(iter_frames(normalised, 4, start=10, end=5))
    with pytest.raises(FileNotFoundError):
        read_frames(normalised.parent / "missing.mp4", [0])


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.mark.parametrize("name,content,words", [
    ("notes.txt", "lorem ipsum dolor sit amet\n" * 300, ("'tty' demuxer", "text")),
    ("readme.nfo", "release notes\n" * 50, ("'tty' demuxer",)),
    ("list.mp4", "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{clip}\n#EXT-X-ENDLIST\n", ("HLS playlist",)),
    ("list.m3u8", "#EXTM3U\n#EXTINF:2,\nfile://{clip}\n#EXT-X-ENDLIST\n", ("HLS playlist",)),
    ("cat.mp4", "ffconcat version 1.0\nfile '{clip}'\n", ("concat",)),
])
def test_sources_that_only_point_at_other_files_or_are_text_are_refused(tmp_path, clip, name, content, words):
    """ffmpeg's tty demuxer renders text as frames, playlists and concat scripts read other (local) files."""
    src = tmp_path / name
    src.write_text(content.format(clip=clip))
    with pytest.raises(VideoError, match="not a video") as err:
        probe_source(src)
    assert all(w in str(err.value) for w in words), err.value
    with pytest.raises(VideoError, match="not a video"):
        normalise_video(src, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_audio_with_cover_art_is_not_a_video(tmp_path):
    """An attached picture is a 'Video' stream to ffmpeg, but no video (decord failed on it later)."""
    song = tmp_path / "song.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine", "-t", "1", "-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1",
           "-map", "0", "-map", "1", "-c:a", "aac", "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(song))
    assert "attached pic" in streams(song)
    with pytest.raises(VideoError, match="no video stream .only a cover picture"):
        probe_source(song)
    mp3 = tmp_path / "song.mp3"
    ffmpeg("-i", str(song), "-map", "0", "-c:a", "libmp3lame", "-c:v", "copy", str(mp3))
    with pytest.raises(VideoError, match="not a video"):
        normalise_video(mp3, tmp_path / "out.mp4")


def test_anamorphic_source_comes_out_with_square_pixels(tmp_path):
    """240x240 stored with 4:3 pixels is a 320x240 picture; squeezing it to 240x240 distorts every pose."""
    src = tmp_path / "anamorphic.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=240x240:rate=25", "-t", "0.4", "-vf", "setsar=4/3",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(src))
    info = probe_source(src)
    assert (info.width, info.height) == (320, 240) and info.sar == pytest.approx(4 / 3)
    out = tmp_path / "out.mp4"
    normalise_video(src, out, preset="ultrafast")
    assert (probe_video(out)["width"], probe_video(out)["height"]) == (320, 240)
    assert "SAR 1:1" in streams(out)
    wide = tmp_path / "wide.mp4"  # scaled down to the bound by its display size, not its stored size
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=1440x1080:rate=25", "-t", "0.2", "-vf", "setsar=4/3",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(wide))
    normalise_video(wide, out, preset="ultrafast")
    assert (probe_video(out)["width"], probe_video(out)["height"]) == (1280, 720)

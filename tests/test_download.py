"""Download stage: every source kind and every failure, against a loopback HTTP server started here.

No test touches the network. The yt-dlp path runs the real yt-dlp library (its generic extractor) against
the loopback server by listing 127.0.0.1 in ``ytdlp_hosts``; one more test mocks ``YoutubeDL`` to check how
its errors are reported. After every failure the output folder must be empty: no partial file, no temp.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from mgfm.config.sections import from_partial
from mgfm.ingest import download as dl
from mgfm.ingest.download import (
    DownloadError,
    DownloadParams,
    check_downloaded_annotations,
    download_video,
    source_kind,
    with_retries,
)
from mgfm.ingest.video import ffmpeg_exe, probe_source

FAST = {"timeout_s": 0.5, "retries": 1, "backoff_s": 0.01, "preset": "ultrafast"}


@pytest.fixture(scope="module")
def video_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc=size=640x480:rate=30", "-f", "lavfi", "-i", "sine", "-t", "1",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    str(path)], check=True)
    return path.read_bytes()


class Server:
    """A loopback HTTP server whose paths misbehave on purpose; counts requests per path."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.routes: dict[str, bytes] = {}  # fixed bodies some tests add (playlists)
        self.hits: Counter[str] = Counter()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):  # noqa: N802 - http.server's naming
                path = self.path.split("?")[0]
                owner.hits[path] += 1
                body = owner.routes.get(path, owner.body)
                if path == "/missing.mp4":
                    self.send_error(404, "Not Found")
                    return
                if path == "/flaky.mp4" and owner.hits[path] == 1:
                    self.send_error(503, "Service Unavailable")
                    return
                if path == "/slow.mp4":
                    time.sleep(1.5)
                if path == "/text.mp4":
                    body = b"<html>login required</html>\n"
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4" if path != "/text.mp4" else "text/html")
                if path == "/nolength.mp4":
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path == "/truncated.mp4":
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # clients hanging up on purpose
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(video_bytes):
    srv = Server(video_bytes)
    yield srv
    srv.close()


def write_manifest(folder: Path, rows: list[dict]) -> Path:
    base = {"sha256": "", "subject_id": "s1", "outcome": "win", "subset": "unlabeled", "split": ""}
    path = folder / "manifest.csv"
    pd.DataFrame([{**base, **r} for r in rows]).to_csv(path, index=False)
    return path


def run(tmp_path: Path, url: str, sha256: str = "", video_id: str = "vid01", **params):
    manifest = write_manifest(tmp_path, [{"video_id": video_id, "url": url, "sha256": sha256}])
    out = tmp_path / "videos"
    meta = download_video(manifest, video_id, out / f"{video_id}.mp4", out / f"{video_id}.json",
                          {**FAST, **params})
    return meta, out


def fails(tmp_path: Path, url: str, *words: str, sha256: str = "", **params) -> None:
    """The job fails with a message naming the video and the cause, and leaves the output folder empty."""
    with pytest.raises(DownloadError) as info:
        run(tmp_path, url, sha256, **params)
    text = str(info.value)
    assert text.startswith("video vid01: "), text
    for word in words:
        assert word in text, (word, text)
    out = tmp_path / "videos"
    assert not out.exists() or sorted(p.name for p in out.iterdir()) == [], list(out.iterdir())


def check_output(meta: dict, out: Path, video_bytes: bytes, video_id: str = "vid01") -> None:
    assert meta["video_id"] == video_id
    assert (meta["frames"], meta["fps"], meta["width"], meta["height"]) == (25, 25.0, 640, 480)
    assert meta["duration"] == 1.0
    assert meta["source_sha256"] == hashlib.sha256(video_bytes).hexdigest()
    assert json.loads((out / f"{video_id}.json").read_text()) == meta
    info = probe_source(out / f"{video_id}.mp4")
    assert (info.codec, info.fps, info.width, info.height) == ("h264", 25.0, 640, 480)
    assert sorted(p.name for p in out.iterdir()) == [f"{video_id}.json", f"{video_id}.mp4"]  # no temp left


# ---- sources -------------------------------------------------------------------------------------------


def test_source_kinds():
    assert source_kind("/data/a.mp4") == "file"
    assert source_kind("raw/a.mp4") == "file"
    assert source_kind("file:///data/a.mp4") == "file"
    assert source_kind("https://cdn.example.org/a.mp4") == "http"
    assert source_kind("https://www.youtube.com/watch?v=x") == "ytdlp"
    assert source_kind("https://youtu.be/x") == "ytdlp"
    assert source_kind("https://notyoutube.com/a.mp4") == "http"
    with pytest.raises(ValueError, match="unsupported url scheme"):
        source_kind("ftp://host/a.mp4")


def test_plain_path_relative_to_manifest(tmp_path, video_bytes):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.mp4").write_bytes(video_bytes)
    meta, out = run(tmp_path, "raw/a.mp4", sha256=hashlib.sha256(video_bytes).hexdigest())
    check_output(meta, out, video_bytes)
    assert meta["source_kind"] == "file"


@pytest.mark.parametrize("link_local", [True, False])
def test_file_url(tmp_path, video_bytes, link_local):
    src = tmp_path / "src dir" / "a.mp4"
    src.parent.mkdir()
    src.write_bytes(video_bytes)
    meta, out = run(tmp_path, src.as_uri(), link_local=link_local)
    check_output(meta, out, video_bytes)
    assert src.read_bytes() == video_bytes  # the source is untouched


def test_http_200(tmp_path, server, video_bytes):
    meta, out = run(tmp_path, f"{server.url}/ok.mp4", sha256=hashlib.sha256(video_bytes).hexdigest())
    check_output(meta, out, video_bytes)
    assert meta["source_kind"] == "http" and meta["source_bytes"] == len(video_bytes)


def test_http_without_content_length(tmp_path, server, video_bytes):
    meta, out = run(tmp_path, f"{server.url}/nolength.mp4")
    check_output(meta, out, video_bytes)


def test_http_retries_transient_errors(tmp_path, server, video_bytes):
    meta, out = run(tmp_path, f"{server.url}/flaky.mp4", retries=2)
    check_output(meta, out, video_bytes)
    assert server.hits["/flaky.mp4"] == 2


def test_ytdlp_source_through_loopback(tmp_path, server, video_bytes):
    """The real yt-dlp library (generic extractor) fetching from the loopback server."""
    meta, out = run(tmp_path, f"{server.url}/ok.mp4", ytdlp_hosts=["127.0.0.1"])
    check_output(meta, out, video_bytes)
    assert meta["source_kind"] == "ytdlp"


# ---- failures ------------------------------------------------------------------------------------------


def test_http_404(tmp_path, server):
    fails(tmp_path, f"{server.url}/missing.mp4", "HTTP 404")
    assert server.hits["/missing.mp4"] == 1  # permanent: not retried


def test_http_truncated_body(tmp_path, server):
    fails(tmp_path, f"{server.url}/truncated.mp4", "truncated body", "gave up after 2 attempts")
    assert server.hits["/truncated.mp4"] == 2


def test_http_checksum_mismatch(tmp_path, server):
    fails(tmp_path, f"{server.url}/ok.mp4", "checksum mismatch", "0" * 64, sha256="0" * 64)


def test_http_slow_server_times_out(tmp_path, server):
    started = time.perf_counter()
    fails(tmp_path, f"{server.url}/slow.mp4", "timed out", timeout_s=0.3, retries=1)
    assert time.perf_counter() - started < 5
    assert server.hits["/slow.mp4"] == 2


def test_http_size_cap(tmp_path, server, video_bytes):
    fails(tmp_path, f"{server.url}/ok.mp4", "max_bytes", max_bytes=len(video_bytes) - 1)
    fails(tmp_path, f"{server.url}/nolength.mp4", "exceeds max_bytes", max_bytes=1000)


def test_http_not_a_video(tmp_path, server):
    fails(tmp_path, f"{server.url}/text.mp4", "not a video")


def test_connection_refused(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fails(tmp_path, f"http://127.0.0.1:{port}/a.mp4", "connection failed")


def test_file_failures(tmp_path, video_bytes):
    fails(tmp_path, str(tmp_path / "nowhere.mp4"), "not found")
    (tmp_path / "notes.mp4").write_text("hello")
    fails(tmp_path, "notes.mp4", "not a video")
    (tmp_path / "a.mp4").write_bytes(video_bytes)
    fails(tmp_path, "a.mp4", "checksum mismatch", sha256="f" * 64)
    fails(tmp_path, "a.mp4", "max_bytes", max_bytes=100)


def test_ytdlp_404_through_loopback(tmp_path, server):
    fails(tmp_path, f"{server.url}/missing.mp4", "yt-dlp failed", "404", ytdlp_hosts=["127.0.0.1"])


def test_ytdlp_errors_are_reported(tmp_path, monkeypatch):
    """A mocked YoutubeDL: its DownloadError becomes the video's error; the options carry our limits."""
    import yt_dlp

    seen = {}

    class FakeYDL:
        def __init__(self, options):
            seen.update(options)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def extract_info(self, url, download):
            raise yt_dlp.utils.DownloadError("ERROR: [youtube] abc: Video unavailable")

    monkeypatch.setattr(yt_dlp, "YoutubeDL", FakeYDL)
    fails(tmp_path, "https://www.youtube.com/watch?v=abc", "yt-dlp failed", "Video unavailable", max_bytes=12345)
    assert seen["max_filesize"] == 12345 and seen["noplaylist"] is True and seen["socket_timeout"] == 0.5


def test_rerun_after_failure_replaces_stale_outputs(tmp_path, server, video_bytes):
    out = tmp_path / "videos"
    out.mkdir()
    (out / "vid01.mp4").write_bytes(b"stale")
    (out / "vid01.json").write_text("{}")
    fails(tmp_path, f"{server.url}/missing.mp4", "HTTP 404")  # a failing rerun removes the stale pair
    meta, out = run(tmp_path, f"{server.url}/ok.mp4")
    check_output(meta, out, video_bytes)


def test_interrupted_normalisation_leaves_nothing(tmp_path, monkeypatch, video_bytes):
    (tmp_path / "a.mp4").write_bytes(video_bytes)

    def interrupted(src, dst, **kwargs):
        Path(dst).write_bytes(b"half an mp4")
        raise KeyboardInterrupt

    monkeypatch.setattr(dl, "normalise_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "a.mp4")
    assert sorted((tmp_path / "videos").iterdir()) == []


def test_unknown_video_and_bad_params(tmp_path):
    manifest = write_manifest(tmp_path, [{"video_id": "vid01", "url": "a.mp4"}])
    with pytest.raises(ValueError, match="not in the manifest"):
        download_video(manifest, "vid02", tmp_path / "v.mp4", tmp_path / "v.json", {})
    with pytest.raises(ValueError, match="invalid video id"):
        download_video(manifest, "../x", tmp_path / "v.mp4", tmp_path / "v.json", {})
    with pytest.raises(ValueError, match=r"download.timeout: unknown key \(did you mean .timeout_s.\?\)"):
        download_video(manifest, "vid01", tmp_path / "v.mp4", tmp_path / "v.json", {"timeout": 3})


def test_backoff_doubles_and_is_capped():
    waits = []
    attempts = []

    def attempt():
        attempts.append(1)
        raise dl._Retryable("HTTP 503")

    params = from_partial(DownloadParams, "download", {"retries": 4, "backoff_s": 1.0, "max_backoff_s": 5.0})
    with pytest.raises(DownloadError, match="gave up after 5 attempts"):
        with_retries(attempt, params, "x", sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0, 5.0] and len(attempts) == 5


def test_schema_matches_params():
    """DownloadParams carries no defaults of its own: built from nothing it holds exactly the schema's."""
    import dataclasses

    from mgfm.config import defaults

    expected = {**defaults("download"), "ytdlp_hosts": tuple(defaults("download")["ytdlp_hosts"])}
    assert dataclasses.asdict(from_partial(DownloadParams, "download", {})) == expected
    assert dataclasses.asdict(DownloadParams.from_section(defaults("download"))) == expected
    with pytest.raises(ValueError, match=r"download: missing keys \['timeout_s'"):   # resolved sections only
        DownloadParams.from_section({"retries": 4})


# ---- after download: annotations inside videos --------------------------------------------------------


def test_check_downloaded_annotations(tmp_path):
    manifest = write_manifest(tmp_path, [
        {"video_id": "a", "url": "a.mp4", "subset": "labeled", "split": "train"},
        {"video_id": "b", "url": "b.mp4", "subset": "labeled", "split": "test", "subject_id": "s2"},
    ])
    ann = tmp_path / "ann.csv"
    pd.DataFrame({"video_id": ["a", "b"], "class_id": [1, 1], "start_frame": [0, 3],
                  "end_frame": [9, 24]}).to_csv(ann, index=False)
    tax = tmp_path / "tax.csv"
    pd.DataFrame({"class_id": [1], "name": ["nod"], "group": ["Head"]}).to_csv(tax, index=False)
    metas = []
    for vid, frames in (("a", 10), ("b", 25)):
        path = tmp_path / f"{vid}.json"
        path.write_text(json.dumps({"video_id": vid, "frames": frames, "fps": 25.0, "width": 2, "height": 2,
                                    "duration": frames / 25}))
        metas.append(path)
    summary = check_downloaded_annotations(manifest, ann, tax, metas)
    assert summary["instances"] == 2 and summary["videos"] == 2 and summary["annotated_frames"] == 32
    metas[1].write_text(json.dumps({"video_id": "b", "frames": 24, "fps": 25.0, "width": 2, "height": 2,
                                    "duration": 0.96}))
    with pytest.raises(ValueError, match=r"row 2, column 'end_frame'.*outside video 'b'"):
        check_downloaded_annotations(manifest, ann, tax, metas)


def test_sigterm_during_download_leaves_nothing(tmp_path, server):
    """The CLI turns SIGTERM (a cancelled job) into a clean exit: the temporary folder is removed."""
    import os
    import signal
    import sys

    manifest = write_manifest(tmp_path, [{"video_id": "vid01", "url": f"{server.url}/slow.mp4"}])
    out = tmp_path / "videos"
    proc = subprocess.Popen([sys.executable, "-m", "mgfm", "ingest", "download", "--manifest", str(manifest),
                             "--video-id", "vid01", "--out-video", str(out / "vid01.mp4"),
                             "--out-meta", str(out / "vid01.json"), "--params", json.dumps({"timeout_s": 10})],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while server.hits["/slow.mp4"] == 0 and time.monotonic() < deadline:  # it is inside the download now
        time.sleep(0.02)
    assert any(p.name.endswith(".part") for p in out.iterdir())
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert sorted(out.iterdir()) == []


# ---- locked-down media input ------------------------------------------------------------------------------


def make_video(path: Path, seconds: float, *extra: str) -> Path:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc=size=160x120:rate=25", "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra, str(path)], check=True)
    return path


@pytest.mark.parametrize("entry", ["file://{secret}", "{secret}"])
@pytest.mark.parametrize("name", ["/live.m3u8", "/live.mp4"])
def test_http_playlist_pointing_at_a_local_file_is_refused(tmp_path, server, entry, name):
    """An HLS playlist served over http must not make ffmpeg read a file of this host into results/videos/."""
    secret = make_video(tmp_path / "host_private.mp4", 1.0)
    playlist = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\n"
                + entry.format(secret=secret) + "\n#EXT-X-ENDLIST\n").encode()
    server.routes[name] = playlist
    # the sha256 pin matches the playlist: it proves nothing about what a playlist makes ffmpeg read
    fails(tmp_path, f"{server.url}{name}", "not a video", "HLS playlist", sha256=hashlib.sha256(playlist).hexdigest())
    assert server.hits[name] >= 1


def test_text_file_is_not_a_six_frame_video(tmp_path):
    (tmp_path / "notes.txt").write_text("lorem ipsum dolor sit amet\n" * 300)
    fails(tmp_path, "notes.txt", "not a video", "tty")


def test_truncated_faststart_mp4_fails_naming_both_lengths(tmp_path):
    """The index at the start announces 4 s; half the bytes hold ~2 s of frames: not a shorter video."""
    full = make_video(tmp_path / "full.mp4", 4.0, "-movflags", "+faststart")
    data = full.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    fails(tmp_path, "cut.mp4", "truncated source", "frames decoded", "4.00 s", "100 frames")
    meta, _ = run(tmp_path, "full.mp4")  # the whole file passes
    assert meta["frames"] == 100


def test_check_complete_tolerance():
    dl.check_complete(100, 4.0, 25)
    dl.check_complete(75, 4.0, 25)    # 1 s short: audio may outlast the picture
    dl.check_complete(10, None, 25)   # no duration stated: nothing to compare
    with pytest.raises(dl.VideoError, match="74 frames decoded"):
        dl.check_complete(74, 4.0, 25)
    with pytest.raises(dl.VideoError, match="truncated"):
        dl.check_complete(4000, 200.0, 25)  # 2 % of 200 s = 4 s; 40 s short


@pytest.mark.parametrize("link_local", [True, False])
def test_manifest_of_relative_symlinks(tmp_path, video_bytes, link_local):
    """A relative symlink linked as-is would dangle inside the temp folder; its target is fetched instead."""
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "real.mp4").write_bytes(video_bytes)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "v.mp4").symlink_to(Path("..") / "store" / "real.mp4")
    meta, out = run(tmp_path / "data", "v.mp4", link_local=link_local)
    check_output(meta, out, video_bytes)
    assert meta["source_kind"] == "file" and meta["synthetic"] is False


def test_stale_temporaries_of_a_killed_job_are_removed(tmp_path, video_bytes):
    import tempfile

    (tmp_path / "a.mp4").write_bytes(video_bytes)
    out = tmp_path / "videos"
    out.mkdir()
    left = [Path(tempfile.mkstemp(prefix=".vid01.", suffix=".part.mp4", dir=out)[1]),
            Path(tempfile.mkstemp(prefix=".vid01.", suffix=".part.json", dir=out)[1]),
            Path(tempfile.mkdtemp(prefix=".vid01.", suffix=".part", dir=out))]
    (left[2] / "source.mp4").write_bytes(b"half")
    other = Path(tempfile.mkstemp(prefix=".vid012.", suffix=".part.mp4", dir=out)[1])  # another job's
    meta, out = run(tmp_path, "a.mp4")
    assert not any(p.exists() for p in left) and other.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(["vid01.json", "vid01.mp4", other.name])


def test_synthetic_flag_comes_from_the_manifest(tmp_path, video_bytes):
    (tmp_path / "a.mp4").write_bytes(video_bytes)
    manifest = write_manifest(tmp_path, [{"video_id": "vid01", "url": "a.mp4", "synthetic": "true"}])
    meta = download_video(manifest, "vid01", tmp_path / "v" / "vid01.mp4", tmp_path / "v" / "vid01.json", FAST)
    assert meta["synthetic"] is True


def test_manifest_row_rejects_ids_with_whitespace(tmp_path):
    manifest = write_manifest(tmp_path, [{"video_id": "vid01", "url": "a.mp4"}])
    for bad in ("vid01\n", " vid01", "vid01 "):
        with pytest.raises(ValueError, match="invalid video id"):
            dl.manifest_row(manifest, bad)


# ---- permanent failures fail at once; cover art is named as such ---------------------------------------


@pytest.mark.parametrize("url, words", [
    ("{base}/a\x01b.mp4", ["malformed url"]),          # a control character: http.client refuses the request
    ("{base}/a b.mp4", ["malformed url"]),
    ("http:///no-host.mp4", ["no host given"]),
])
def test_a_malformed_url_fails_at_once_without_retries(tmp_path, server, url, words):
    """Bypassing the manifest's own check (which refuses these urls naming the row), the download itself still
    fails on the first attempt: retrying cannot make a url well-formed."""
    with pytest.raises(DownloadError) as info:
        dl.download_row({"video_id": "vid01", "url": url.format(base=server.url)}, tmp_path, tmp_path / "v.mp4",
                        tmp_path / "v.json", {**FAST, "retries": 4, "backoff_s": 1.0})
    for word in words:
        assert word in str(info.value)
    assert "gave up after" not in str(info.value) and sum(server.hits.values()) == 0


def test_a_permanent_http_status_is_not_retried(tmp_path, server):
    fails(tmp_path, f"{server.url}/missing.mp4", "HTTP 404", retries=4, backoff_s=1.0)
    assert server.hits["/missing.mp4"] == 1                 # one request: not retried


@pytest.mark.parametrize("url, why", [
    ("ftp://example.org/a.mp4", "unsupported url scheme 'ftp'"),
    ("rtmp://example.org/live", "unsupported url scheme 'rtmp'"),
    ("https://example.org/a\x07.mp4", "control character"),
    ("https://example.org/my talk.mp4", "percent-encode"),
])
def test_dataset_validate_refuses_unfetchable_urls_naming_row_and_column(tmp_path, capsys, url, why):
    from mgfm.cli import main

    manifest = write_manifest(tmp_path, [{"video_id": "ok1", "url": "a.mp4"}, {"video_id": "bad2", "url": url}])
    (tmp_path / "taxonomy.csv").write_text("class_id,name,group\n0,nod,Head\n")
    (tmp_path / "annotations.csv").write_text("video_id,class_id,start_frame,end_frame\n")
    assert main(["ingest", "validate", "--manifest", str(manifest), "--annotations", str(tmp_path / "annotations.csv"),
                 "--taxonomy", str(tmp_path / "taxonomy.csv"), "--out", str(tmp_path / "v.json")]) == 1
    err = capsys.readouterr().err
    assert f"{manifest}, row 2, column 'url': " in err and why in err, err
    assert not (tmp_path / "v.json").exists()


def test_local_paths_with_spaces_and_file_urls_are_fetchable_urls():
    from mgfm.ingest.contract import url_problem

    for url in ("raw/my talk (1).mp4", "/data/v.mp4", "file:///data/v.mp4", "https://example.org/a%20b.mp4",
                "C:\\videos\\a.mp4"):
        assert url_problem(url) is None, url


def _cover_art_mkv(tmp_path: Path, with_video: bool) -> Path:
    """An mkv whose FIRST track is a one-frame mjpeg picture (not flagged as attached picture), followed by a
    6 s H.264 video track or, without it, by 6 s of audio (so the container still says 6 s)."""
    ff = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y"]
    cover = tmp_path / "cover.jpg"
    subprocess.run([*ff, "-f", "lavfi", "-i", "color=c=red:s=160x120:d=1", "-frames:v", "1", str(cover)], check=True)
    second = (["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=6"] if with_video
              else ["-f", "lavfi", "-i", "sine=duration=6"])
    path = tmp_path / ("cover_then_video.mkv" if with_video else "cover_and_audio.mkv")
    codecs = ["-map", "0:v", "-map", "1", "-c:v:0", "mjpeg"] + (
        ["-c:v:1", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"] if with_video else ["-c:a", "aac"])
    subprocess.run([*ff, "-i", str(cover), *second, *codecs, str(path)], check=True)
    return path


def test_a_one_frame_picture_before_the_video_track_is_skipped(tmp_path):
    _cover_art_mkv(tmp_path, with_video=True)
    meta, _ = run(tmp_path, "cover_then_video.mkv")
    assert meta["frames"] == 150 and (meta["width"], meta["height"]) == (160, 120)


def test_a_one_frame_picture_as_the_only_video_track_is_named_as_such(tmp_path):
    _cover_art_mkv(tmp_path, with_video=False)
    fails(tmp_path, "cover_and_audio.mkv", "not a video", "still picture", "cover art", "mjpeg", "container says 6.0")
    with pytest.raises(DownloadError) as info:
        run(tmp_path, "cover_and_audio.mkv")
    assert "truncated" not in str(info.value)

"""The one streamed HTTP fetch (mgfm.common.fetch) as the pinned model files use it (mgfm.pose.fetch.fetch_file),
against a loopback server: the checksum taken while streaming, the size bound, and which failures are transient.
The download stage's use of it (retries, its messages) is tests/test_download.py's."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from mgfm.common.fetch import FetchError, TransientFetchError, stream_url
from mgfm.pose.fetch import fetch_file

BODY = b"pretend checkpoint " * 5000


@pytest.fixture()
def server():
    """``/ok``: BODY; ``/missing``: 404; ``/busy``: 503; ``/empty``: 200 without a body."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 - http.server's naming
            status, body = {"/ok": (200, BODY), "/busy": (503, b""), "/empty": (200, b"")}.get(self.path, (404, b""))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_pinned_file_over_http(server, tmp_path):
    digest = hashlib.sha256(BODY).hexdigest()
    out = fetch_file(f"{server}/ok", digest[:8], tmp_path / "models" / "w.pth")
    assert out.read_bytes() == BODY


def test_a_mismatch_or_an_oversized_body_leaves_nothing(server, tmp_path):
    bad = tmp_path / "models" / "bad.pth"
    with pytest.raises(ValueError, match="does not match the pinned"):
        fetch_file(f"{server}/ok", "0" * 64, bad)
    with pytest.raises(FetchError, match=rf"{server}/ok: server announces {len(BODY)} bytes, more than max_bytes=100"):
        fetch_file(f"{server}/ok", hashlib.sha256(BODY).hexdigest(), bad, max_bytes=100)
    assert not bad.exists() and not list(bad.parent.iterdir())


def test_failures_name_the_url_and_say_whether_to_retry(server, tmp_path):
    with pytest.raises(FetchError, match=rf"{server}/missing: HTTP 404") as err:
        fetch_file(f"{server}/missing", "0" * 8, tmp_path / "w.pth")
    assert not isinstance(err.value.__cause__, TransientFetchError)
    with pytest.raises(TransientFetchError, match="HTTP 503"):
        stream_url(f"{server}/busy", tmp_path / "busy", timeout_s=5, max_bytes=1000)
    with pytest.raises(FetchError, match="empty body"):
        stream_url(f"{server}/empty", tmp_path / "empty", timeout_s=5, max_bytes=1000)


def test_stream_url_hashes_what_it_writes(server, tmp_path):
    got = stream_url(f"{server}/ok", tmp_path / "x", timeout_s=5, max_bytes=len(BODY), user_agent="mgfm-test")
    assert (got.sha256, got.size) == (hashlib.sha256(BODY).hexdigest(), len(BODY))
    assert (tmp_path / "x").read_bytes() == BODY

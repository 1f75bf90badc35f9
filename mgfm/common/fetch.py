"""One streamed HTTP(S) download: the sha256 and size are taken while the bytes arrive, a size bound stops a
runaway body, and every failure is sorted into transient (worth another try) or permanent.

Shared by the ingest stage (source videos, with its retries: ``mgfm.ingest.download``) and the pinned model
files (``mgfm.pose.fetch``: pose checkpoints, the CLIP teacher). Messages name the cause, not the url: callers
add the video or the file they were fetching.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

CHUNK_BYTES = 1 << 20


class FetchError(RuntimeError):
    """A download that another try would not fix (HTTP 404, a bad certificate, too large, an empty body)."""


class TransientFetchError(FetchError):
    """A download that may work on another try (timeout, connection reset, HTTP 5xx/408/429, a truncated body)."""


@dataclass(frozen=True)
class Fetched:
    sha256: str
    size: int


def stream_url(url: str, dst: str | os.PathLike, *, timeout_s: float, max_bytes: int,
               user_agent: str | None = None) -> Fetched:
    """GET ``url`` into ``dst`` in chunks; more than ``max_bytes`` (announced or received) is a FetchError.

    ``timeout_s`` bounds each wait for data, not the whole transfer. ``dst`` is left as written on failure: the
    caller writes into a temporary path (``mgfm.common.atomic``) that a failure removes.
    """
    request = urllib.request.Request(url, headers={"User-Agent": user_agent} if user_agent else {})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, open(dst, "wb") as out:  # noqa: S310
            length_header = response.headers.get("Content-Length")
            expected = int(length_header) if length_header and length_header.isdigit() else None
            if expected is not None and expected > max_bytes:
                raise FetchError(f"server announces {expected} bytes, more than max_bytes={max_bytes}")
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise FetchError(f"body exceeds max_bytes={max_bytes}")
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as err:
        if err.code >= 500 or err.code in (408, 429):
            raise TransientFetchError(f"HTTP {err.code} {err.reason}") from err
        raise FetchError(f"HTTP {err.code} {err.reason}") from err
    except (http.client.InvalidURL, ValueError) as err:    # a malformed url: no retry makes it well-formed
        raise FetchError(f"malformed url: {err}") from err
    except http.client.IncompleteRead as err:
        raise TransientFetchError(f"truncated body: got {received + len(err.partial)} bytes, "
                                  f"expected {received + len(err.partial) + (err.expected or 0)}") from err
    except (TimeoutError, socket.timeout) as err:
        raise TransientFetchError(f"timed out after {timeout_s} s without data") from err
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise TransientFetchError(f"timed out after {timeout_s} s without data") from err
        if isinstance(reason, ssl.SSLCertVerificationError) or not isinstance(reason, OSError):
            raise FetchError(f"cannot fetch: {reason}") from err    # a bad certificate, no host, ...: permanent
        raise TransientFetchError(f"connection failed: {reason}") from err
    except (ConnectionError, http.client.HTTPException, OSError) as err:
        raise TransientFetchError(f"connection failed: {err}") from err
    if expected is not None and received != expected:
        raise TransientFetchError(f"truncated body: got {received} bytes, Content-Length says {expected}")
    if received == 0:
        raise FetchError("server sent an empty body")
    return Fetched(digest.hexdigest(), received)

"""The rejection sampler of paper Eq. 4-11: MG-length clips whose face anchors stay visible, never overlapping.

Random stream (the contract that makes the fast path provably equal to the plain loop in the tests):
candidate k of a video consumes the k-th pair of doubles (u1, u2) of the video's generator,
``rng_for(seed, "clips", video_id).random()``. The duration is the empirical prior's entry
``floor(u1 * len(prior))`` (Eq. 5, sampling the Dirac mixture of Eq. 4); the start time is
``u2 * (L - d)`` seconds, L = n_frames / fps (Eq. 6); Eq. 7 turns it into frames:
``start = floor(s * fps)`` (clamped to n_frames - n), ``n = max(1, round(d * fps))`` frames, ``end = start + n - 1``.
Checks, in this order, each counted once: the duration does not fit the video (``rejected_length``), a frame
of the interval has a face anchor below tau (``rejected_visibility``, Eq. 9), the interval overlaps an accepted
clip of the video (``rejected_overlap``, Eq. 10). Sampling stops at ``quota`` accepted clips or after
``retry_budget`` candidates (Eq. 11).

Fast path: a prefix sum over "all anchors visible" answers the visibility test for a whole batch of candidates
with two gathers. Overlap with accepted intervals is one binary search, valid because they are disjoint and
sorted (the last interval starting at or before the candidate's end is the only one that can overlap it):
against the clips accepted before the batch it runs vectorised (``searchsorted``) for the whole batch, and only
candidates that survive it take the sequential ``bisect`` test against clips accepted inside the batch.
Candidates come in batches from ``rng.random(2 * B)``, which yields the same doubles as 2B scalar calls, so
the clips and every count equal the one-candidate-at-a-time loop's (asserted in ``tests/test_clips_sampler.py``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

#: First batch of candidates per video; later batches double, up to the remaining budget.
FIRST_BATCH = 64


@dataclass
class VideoSample:
    """Accepted clips of one video, sorted by start frame (clip index = temporal order), and candidate statistics."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)  # inclusive
    candidates: int = 0
    rejected_length: int = 0
    rejected_visibility: int = 0
    rejected_overlap: int = 0

    @property
    def accepted(self) -> int:
        return len(self.starts)


def candidate_intervals(u: np.ndarray, prior_s: np.ndarray, n_frames: int, fps: float
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 5-7 for a batch: doubles ``u`` (B, 2) -> (start, end inclusive, fits) frame arrays.

    ``fits`` is False where the drawn duration is longer than the video; start/end are then meaningless.
    """
    k = np.minimum((u[:, 0] * len(prior_s)).astype(np.int64), len(prior_s) - 1)
    d = prior_s[k]
    length_s = n_frames / fps
    n = np.maximum(1, np.rint(d * fps).astype(np.int64))
    fits = (d <= length_s) & (n <= n_frames)
    s = u[:, 1] * np.maximum(length_s - d, 0.0)
    start = np.minimum(np.floor(s * fps).astype(np.int64), np.maximum(n_frames - n, 0))
    return start, start + n - 1, fits


def visible_prefix(visible: np.ndarray) -> np.ndarray:
    """Prefix count of frames where not every anchor is visible: bad(a..b) = P[b + 1] - P[a]."""
    prefix = np.zeros(len(visible) + 1, dtype=np.int64)
    np.cumsum(~np.asarray(visible, dtype=bool), out=prefix[1:])
    return prefix


def sample_video(visible: np.ndarray, fps: float, prior_s: np.ndarray, rng: np.random.Generator,
                 quota: int, retry_budget: int) -> VideoSample:
    """Run the rejection sampler on one video; ``visible[f]`` says all face anchors are >= tau on frame f."""
    prior_s = np.asarray(prior_s, dtype=np.float64)
    if len(prior_s) == 0:
        raise ValueError("the duration prior is empty")
    n_frames = len(visible)
    prefix = visible_prefix(visible)
    out = VideoSample()
    batch = FIRST_BATCH
    while out.accepted < quota and out.candidates < retry_budget:
        b = min(batch, retry_budget - out.candidates)
        batch *= 2
        start, end, fits = candidate_intervals(rng.random(2 * b).reshape(b, 2), prior_s, n_frames, fps)
        safe_start, safe_end = np.where(fits, start, 0), np.where(fits, end, 0)
        clear = fits & (prefix[safe_end + 1] == prefix[safe_start])
        # overlap with clips accepted before this batch, for all candidates at once: the accepted set only
        # grows, so these are rejected whatever happens earlier in the batch
        old_overlap = np.zeros(b, bool)
        if out.starts:
            acc_s, acc_e = np.asarray(out.starts), np.asarray(out.ends)
            j = np.searchsorted(acc_s, safe_end, side="right")
            old_overlap = clear & (j > 0) & (acc_e[np.maximum(j - 1, 0)] >= safe_start)
        examined = b
        new_overlap = 0
        # the rest need the sequential test against clips accepted inside this batch
        for i in np.flatnonzero(clear & ~old_overlap).tolist():
            a, z = int(start[i]), int(end[i])
            k = bisect.bisect_right(out.starts, z)
            if k > 0 and out.ends[k - 1] >= a:
                new_overlap += 1
                continue
            out.starts.insert(k, a)
            out.ends.insert(k, z)
            if out.accepted == quota:
                examined = i + 1  # later candidates were drawn but never examined: they do not count
                break
        out.candidates += examined
        out.rejected_length += int((~fits[:examined]).sum())
        out.rejected_visibility += int((fits & ~clear)[:examined].sum())
        out.rejected_overlap += int(old_overlap[:examined].sum()) + new_overlap
    return out

"""A sampling run that finds (nearly) no clips fails loudly, and each video's reason says what happened."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgfm.clips.sample import NoClipsError, sample_clips, sample_tracks, stop_reason
from mgfm.clips.rejection import VideoSample
from tests.support.clips import person_pose, write_corpus, write_pose
from mgfm.clips.visibility import AnchorTrack


@pytest.fixture()
def corpus(tmp_path):
    return write_corpus(tmp_path / "data", n_labeled=4, n_unlabeled=2, seed=5, frames_range=(300, 500))


def run(corpus, out, **params):
    return sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], out / "clips.parquet",
                        out / "stats.csv", seed=3, params={"quota": 10, "retry_budget": 200, **params})


def test_no_visible_face_anywhere_fails_naming_reason_and_causes(corpus, tmp_path):
    """What the demo pose model on real faces, or no detector, looks like: no anchor ever reaches tau."""
    with pytest.raises(NoClipsError) as err:
        run(corpus, tmp_path / "out", tau=1.0)
    text = str(err.value)
    assert "clips in 0 of 6 videos" in text and "6 video(s): no frame has all face anchors >= tau=1.0" in text
    for cause in ("pose.model", "pose.detector", "clips.tau", "clips.prior"):
        assert cause in text
    assert not (tmp_path / "out" / "clips.parquet").exists() and not (tmp_path / "out" / "stats.csv").exists()


def test_prior_longer_than_every_video(corpus, tmp_path):
    prior = tmp_path / "prior.csv"
    pd.DataFrame({"duration_s": [600.0, 900.0]}).to_csv(prior, index=False)
    with pytest.raises(NoClipsError, match="6 video.s.: all candidates longer than the video"):
        run(corpus, tmp_path / "out", prior=str(prior))


def test_too_few_videos_with_clips_fails_by_fraction(corpus, tmp_path):
    for vid in ("v000", "v001", "v002"):  # half the corpus: pose frames with a hole
        pose = person_pose(400, np.random.default_rng(0))
        keep = np.r_[0:200, 210:400]
        from mgfm.core.pose_store import PoseFrames

        write_pose(corpus["pose_dir"] / f"{vid}.parquet",
                   PoseFrames(pose.frame[keep], pose.bbox[keep], pose.det_score[keep], pose.xy[keep], pose.score[keep]))
    clips = run(corpus, tmp_path / "ok", min_video_fraction=0.5)  # 3 of 6 is enough at 0.5
    assert set(clips.video_id) == {"v003", "v004", "v005"}
    with pytest.raises(NoClipsError, match=r"clips in 3 of 6 videos, fewer than clips.min_video_fraction=0.8"):
        run(corpus, tmp_path / "strict", min_video_fraction=0.8)
    with pytest.raises(ValueError, match="min_video_fraction"):
        from mgfm.config import resolve

        resolve("clips", {"min_video_fraction": 1.5})


def test_stop_reason_names_what_happened():
    def res(accepted, candidates, length=0, visibility=0, overlap=0):
        r = VideoSample(starts=list(range(accepted)), ends=list(range(accepted)), candidates=candidates)
        r.rejected_length, r.rejected_visibility, r.rejected_overlap = length, visibility, overlap
        return r

    assert stop_reason(res(5, 40), quota=5) == "quota"
    assert stop_reason(res(2, 100, 50, 40, 8), quota=5) == "retry budget spent"
    assert stop_reason(res(0, 100, length=100), quota=5) == "all candidates longer than the video"
    assert stop_reason(res(0, 100, 30, 70), quota=5) == "no candidate with all face anchors >= tau on every frame"


def test_per_video_reasons_in_the_stats():
    prior = np.array([8.0])  # 200 frames at 25 fps
    short = AnchorTrack("short", np.ones(100, np.float32), 25.0)           # 4 s: every candidate too long
    blinking = AnchorTrack("blink", np.tile([1, 1, 1, 0], 100).astype(np.float32), 25.0)  # never 200 frames
    good = AnchorTrack("good", np.ones(1000, np.float32), 25.0)
    clips, stats = sample_tracks([short, blinking, good], prior, seed=0, quota=2, tau=0.5, retry_budget=50)
    reasons = dict(zip(stats.video_id, stats.reason))
    assert reasons == {"short": "all candidates longer than the video",
                       "blink": "no candidate with all face anchors >= tau on every frame", "good": "quota"}

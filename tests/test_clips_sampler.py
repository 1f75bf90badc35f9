"""The rejection sampler: the fast path equals a plain reference loop; constraints; independence; cut-ins."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mgfm.clips.sample import sample_clips, sample_tracks
from mgfm.clips.rejection import sample_video
from mgfm.clips.visibility import AnchorTrack
from mgfm.common.seeding import rng_for
from mgfm.core.layout import FACE_ANCHORS
from mgfm.core.pose_store import read_scores

from tests.support.clips import person_pose, reference_sample, visibility_stream, write_corpus, write_pose


def random_case(i):
    rng = np.random.default_rng(1000 + i)
    fps = float(rng.choice([25.0, 30.0, 29.97, 12.5]))
    n = int(rng.integers(1, 3000))
    kind = i % 4
    if kind == 0:
        visible = visibility_stream(n, rng, p_hidden=rng.uniform(0.05, 0.6), mean_run_s=rng.uniform(0.5, 6), fps=fps)
    elif kind == 1:
        visible = rng.random(n) > rng.uniform(0.0, 0.2)  # scattered single-frame dropouts
    elif kind == 2:
        visible = np.ones(n, bool)
    else:
        visible = visibility_stream(n, rng, p_hidden=0.8, mean_run_s=1.0, fps=fps)
    prior = np.round(rng.gamma(1.5, 1.8, size=int(rng.integers(1, 400))) * 25 + 1) / 25  # whole frames at 25 fps
    if i % 7 == 0:
        prior = np.append(prior, [200.0, 5000.0])  # durations longer than the video
    quota = int(rng.choice([1, 5, 50, 80, 100]))
    budget = int(rng.choice([1, 30, 200, 1000]))
    return visible, fps, prior, quota, budget


def test_fast_sampler_equals_reference_on_many_random_videos():
    n_clips = 0
    for i in range(300):
        visible, fps, prior, quota, budget = random_case(i)
        ref, ref_stats = reference_sample(visible, fps, prior, rng_for(7, "clips", f"vid{i}"), quota, budget)
        got = sample_video(visible, fps, prior, rng_for(7, "clips", f"vid{i}"), quota, budget)
        assert list(zip(got.starts, got.ends)) == ref, f"case {i}"
        assert dict(candidates=got.candidates, rejected_length=got.rejected_length,
                    rejected_visibility=got.rejected_visibility, rejected_overlap=got.rejected_overlap) == ref_stats
        assert got.candidates == (ref_stats["rejected_length"] + ref_stats["rejected_visibility"]
                                  + ref_stats["rejected_overlap"] + len(ref))
        n_clips += len(ref)
    assert n_clips > 2000  # the cases exercise acceptance, not only rejection


@pytest.mark.parametrize("case", range(40))
def test_clips_are_visible_disjoint_within_video_and_within_quota(case):
    visible, fps, prior, quota, budget = random_case(case)
    got = sample_video(visible, fps, prior, rng_for(1, "clips", case), quota, budget)
    assert got.accepted <= quota and got.candidates <= budget
    assert got.starts == sorted(got.starts)
    for a, z in zip(got.starts, got.ends):
        assert 0 <= a <= z < len(visible)
        assert visible[a:z + 1].all()
    for (a0, z0), (a1, z1) in zip(zip(got.starts, got.ends), zip(got.starts[1:], got.ends[1:])):
        assert z0 < a1


def test_durations_come_from_the_prior_and_starts_cover_the_video():
    prior = np.array([0.4, 1.0, 2.0])
    visible = np.ones(100_000, bool)
    got = sample_video(visible, 25.0, prior, rng_for(0, "clips", "long"), 500, 5000)
    lengths = np.array(got.ends) - np.array(got.starts) + 1
    assert set(lengths.tolist()) == {10, 25, 50}
    assert min(got.starts) < 2000 and max(got.ends) > 98_000


def test_sampler_stops_at_quota_and_budget():
    visible = np.ones(10_000, bool)
    prior = np.array([1.0])
    assert sample_video(visible, 25.0, prior, rng_for(0, "x"), 3, 1000).accepted == 3
    res = sample_video(visible[:30], 25.0, prior, rng_for(0, "x"), 50, 17)
    assert res.accepted == 1 and res.candidates == 17 and res.rejected_overlap == 16


def tracks_for(ids, n=2000):
    out = []
    for vid in ids:
        rng = rng_for(0, "tracks", vid)  # per video, the same in every process
        vis = visibility_stream(n, rng)
        out.append(AnchorTrack(vid, np.where(vis, 0.9, 0.05).astype(np.float32), 25.0))
    return out


def test_adding_a_video_does_not_change_another_videos_clips():
    prior = np.linspace(0.3, 5.0, 50)
    a, _ = sample_tracks(tracks_for(["a", "b"]), prior, 3, 50, 0.3, 1000)
    b, _ = sample_tracks(tracks_for(["zz", "b", "c"]), prior, 3, 50, 0.3, 1000)
    pa = a[a.video_id == "b"].reset_index(drop=True)
    pb = b[b.video_id == "b"].reset_index(drop=True)
    assert len(pa) > 5
    pd.testing.assert_frame_equal(pa, pb)


def test_unusable_videos_get_zero_clips_with_a_reason(caplog):
    prior = np.array([1.0, 2.0])
    tracks = [AnchorTrack("gap", np.ones(100, np.float32), 25.0, reason="pose frames are not 0..99"),
              AnchorTrack("hidden", np.full(500, 0.1, np.float32), 25.0),
              AnchorTrack("fine", np.ones(500, np.float32), 25.0)]
    with caplog.at_level(logging.WARNING):
        clips, stats = sample_tracks(tracks, prior, 0, 10, 0.3, 100)
    assert set(clips.video_id) == {"fine"}
    reasons = dict(zip(stats.video_id, stats.reason))
    assert "not 0..99" in reasons["gap"] and "no frame has all face anchors" in reasons["hidden"]
    assert "hidden" in caplog.text and "gap" in caplog.text


def test_stage_never_accepts_a_clip_crossing_a_cutin_and_flags_missing_frames(tmp_path):
    corpus = write_corpus(tmp_path, n_labeled=4, n_unlabeled=4, seed=3)
    # a pose file with a hole in its frame column: zero clips, stage still succeeds
    pose = person_pose(600, np.random.default_rng(0))
    keep = np.r_[0:300, 310:600]
    from mgfm.core.pose_store import PoseFrames

    write_pose(corpus["pose_dir"] / "v007.parquet",
               PoseFrames(pose.frame[keep], pose.bbox[keep], pose.det_score[keep], pose.xy[keep], pose.score[keep]))
    out = tmp_path / "out"
    clips = sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], out / "clips.parquet",
                         out / "stats.csv", seed=11, params={"quota": 30, "retry_budget": 400})
    stats = pd.read_csv(out / "stats.csv")
    assert pd.read_parquet(out / "clips.parquet").equals(clips)
    assert set(stats.video_id) == set(corpus["manifest_df"].video_id)
    assert stats.set_index("video_id").loc["v007", "accepted"] == 0
    assert "not 0.." in stats.set_index("video_id").loc["v007", "reason"]
    assert len(clips) > 50
    for row in clips.itertuples():
        for a, b in corpus["cutins"][row.video_id]:
            assert row.end_frame < a or row.start_frame > b, row
    for vid, rows in clips.groupby("video_id"):
        _, scores = read_scores(corpus["pose_dir"] / f"{vid}.parquet", FACE_ANCHORS)
        for row in rows.itertuples():
            assert (scores[row.start_frame:row.end_frame + 1] >= 0.3).all()
    assert np.allclose(clips.duration_s, (clips.end_frame - clips.start_frame + 1) / 25.0)
    # the accepted clip durations are prior durations (labeled train MG lengths)
    ann = corpus["annotations_df"]
    train = corpus["manifest_df"].query("split == 'train'").video_id
    prior_frames = set((ann[ann.video_id.isin(train)].eval("end_frame - start_frame + 1")).tolist())
    assert set((clips.end_frame - clips.start_frame + 1).tolist()) <= prior_frames


def test_stage_errors_name_the_problem(tmp_path):
    corpus = write_corpus(tmp_path, n_labeled=2, n_unlabeled=1, seed=1)
    (corpus["pose_dir"] / "v001.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="v001"):
        sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "c.parquet",
                     tmp_path / "s.csv", seed=0)
    assert not (tmp_path / "c.parquet").exists()
    with pytest.raises(ValueError, match="clips.tau"):
        sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "c.parquet",
                     tmp_path / "s.csv", seed=0, params={"tau": 3})
    with pytest.raises(ValueError, match=r"clips.tua: unknown key \(did you mean .tau.\?\)"):
        sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "c.parquet",
                     tmp_path / "s.csv", seed=0, params={"tua": 0.3})

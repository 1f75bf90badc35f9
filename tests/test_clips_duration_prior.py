"""The MG duration prior reads each video's frame rate (pose metadata or the clips table), never a constant."""

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mgfm.clips.tables import (annotation_video_ids, clips_fps, load_prior, pose_fps, train_durations, video_fps,
                               with_fps)

MANIFEST = pd.DataFrame({"video_id": ["a", "b", "c"], "subset": ["labeled", "labeled", "unlabeled"],
                         "split": ["train", "test", ""]})
ANNOTATIONS = pd.DataFrame({"video_id": ["a", "a", "b"], "class_id": [1, 2, 1],
                            "start_frame": [0, 30, 0], "end_frame": [29, 89, 59]})


def fake_pose_file(path, fps):
    table = pa.table({"frame": pa.array([0], pa.int32())})
    pq.write_table(table.replace_schema_metadata({b"mgfm": json.dumps({"fps": fps}).encode()}), path)


@pytest.mark.parametrize("fps", [25.0, 30.0, 50.0])
def test_prior_durations_follow_the_videos_frame_rate(tmp_path, fps):
    fake_pose_file(tmp_path / "a.parquet", fps)
    fake_pose_file(tmp_path / "b.parquet", 10.0)
    assert annotation_video_ids(ANNOTATIONS) == ["a", "b"]
    rates = pose_fps(["a", "b"], tmp_path)
    assert rates == {"a": fps, "b": 10.0}
    prior = load_prior("train_split", MANIFEST, with_fps(ANNOTATIONS, rates))   # only the train video's instances
    assert prior.tolist() == pytest.approx([30 / fps, 60 / fps])
    assert train_durations(MANIFEST, with_fps(ANNOTATIONS, {"a": fps})).tolist() == pytest.approx([30 / fps, 60 / fps])


def test_missing_rate_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="frame rate of video 'a'"):
        pose_fps(["a"], tmp_path)
    with pytest.raises(ValueError, match=r"no frame rate for labeled train video\(s\) \['a'\]"):
        train_durations(MANIFEST, with_fps(ANNOTATIONS, {"b": 30.0}))
    with pytest.raises(ValueError, match="no frame rate"):
        train_durations(MANIFEST, ANNOTATIONS)
    fake_pose_file(tmp_path / "a.parquet", None)
    with pytest.raises(ValueError, match="no positive fps"):
        pose_fps(["a"], tmp_path)


def test_clips_table_gives_the_rate():
    clips = pd.DataFrame({"video_id": ["a", "a", "c"], "start_frame": [0, 100, 5], "end_frame": [29, 159, 54],
                          "duration_s": [1.0, 2.0, 50 / 50]})
    assert clips_fps(clips) == {"a": 30.0, "c": 50.0}


def test_the_figure_takes_the_rate_of_a_video_without_clips_from_its_metadata(tmp_path):
    """A labeled train video that gave no clip still has a rate: its video metadata, not its (absent) clips."""
    import numpy as np

    from mgfm.clips import sample

    (tmp_path / "a.json").write_text(json.dumps({"frames": 100, "fps": 30.0}))
    (tmp_path / "b.json").write_text(json.dumps({"frames": 100, "fps": 25.0}))
    assert video_fps(["a", "b"], tmp_path) == {"a": 30.0, "b": 25.0}
    MANIFEST.assign(outcome="win", url="x", sha256="", subject_id=["s1", "s2", "s3"]).to_csv(tmp_path / "m.csv",
                                                                                              index=False)
    ANNOTATIONS.to_csv(tmp_path / "ann.csv", index=False)
    clips = pd.DataFrame({"video_id": ["c"], "clip_index": [0], "start_frame": [0], "end_frame": [24],
                          "duration_s": [1.0]})                         # no clip of 'a' nor 'b'
    clips.to_parquet(tmp_path / "clips.parquet")
    seen = {}
    orig = sample.duration_figure
    try:
        sample.duration_figure = lambda prior, sampled, out, max_s: seen.update(prior=np.asarray(prior))
        sample.durations_figure(tmp_path / "clips.parquet", tmp_path / "m.csv", tmp_path / "ann.csv",
                                tmp_path / "f.png", video_dir=tmp_path)
        assert seen["prior"].tolist() == pytest.approx([30 / 30.0, 60 / 30.0])
        with pytest.raises(ValueError, match=r"no frame rate for labeled train video\(s\) \['a'\] \(it is read "
                                             "from their sampled clips"):
            sample.durations_figure(tmp_path / "clips.parquet", tmp_path / "m.csv", tmp_path / "ann.csv",
                                    tmp_path / "f.png")
    finally:
        sample.duration_figure = orig
    (tmp_path / "a.json").unlink()
    with pytest.raises(FileNotFoundError, match="a.json: no video metadata"):
        video_fps(["a"], tmp_path)

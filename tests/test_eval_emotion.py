"""Emotion recognition: sequences, masking, class weights, the protocol on synthetic clip features."""

import numpy as np
import pandas as pd
import pytest
import torch

from mgfm.eval.emotion import AttentionAggregator, MeanAggregator, build_sequences, class_weights, run_emotion

from tests.support.features import write_synthetic_features


def _meta(video_clips: dict[str, int]) -> pd.DataFrame:
    rows = []
    for v, n in video_clips.items():
        for i in range(n):
            rows.append({"clip_id": f"{v}_{i}", "video_id": v, "split": "train", "start_frame": 100 * (n - i)})
    return pd.DataFrame(rows)


def test_sequences_pad_mask_truncate():
    meta = _meta({"a": 3, "b": 7})
    x = np.arange(len(meta), dtype=np.float32)[:, None].repeat(2, axis=1)
    seq = build_sequences(meta, x, max_clips=4)
    assert seq.video_id.tolist() == ["a", "b"]
    assert seq.mask.sum(1).tolist() == [3, 4] and seq.n_clips.tolist() == [3, 7]
    # ordered by start frame: a's clips were written in reverse time order
    assert seq.x[0, :3, 0].tolist() == [2.0, 1.0, 0.0]
    assert np.all(seq.x[0, 3] == 0)
    # 7 clips -> 4 evenly spaced, first and last kept
    assert seq.x[1, 0, 0] == 9.0 and seq.x[1, 3, 0] == 3.0


def test_mixed_split_rejected():
    meta = _meta({"a": 2})
    meta.loc[1, "split"] = "test"
    with pytest.raises(ValueError, match="video 'a'"):
        build_sequences(meta, np.zeros((2, 1), np.float32), 4)


@pytest.mark.parametrize("cls", [MeanAggregator, AttentionAggregator])
def test_padding_is_ignored(cls):
    torch.manual_seed(0)
    model = cls(5)
    x = torch.randn(2, 6, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    y1 = model(x, mask)
    x2 = x.clone()
    x2[0, 3:] = 1e3
    assert torch.allclose(y1, model(x2, mask))


def test_class_weights():
    w = class_weights(np.array([1, 1, 1, 0]))
    assert w.tolist() == pytest.approx([2.0, 2 / 3])
    assert class_weights(np.array([1, 1]))[0] == 0.0


def test_run_emotion(tmp_path):
    p = write_synthetic_features(tmp_path, streams=("joint", "bone"))
    members = {s: str(p["features"] / "skeleton" / s / "video_clips.parquet") for s in ("joint", "bone")}
    for agg in ("mean", "attention"):
        res = run_emotion(members, str(p["manifest"]), {"seeds": [0, 1], "emotion": {"epochs": 60, "aggregator": agg}},
                          str(tmp_path / agg), global_seed=1)
        r = res["results"]
        assert set(r) == {"accuracy", "balanced_accuracy", "macro_f1"}
        assert r["balanced_accuracy"]["mean"] > 60
        assert res["n_train_videos"] + res["n_test_videos"] == len(p["videos"])
        assert (tmp_path / agg / "metrics.json").is_file()


def test_emotion_members_must_match(tmp_path):
    from mgfm.core.feature_store import read_features, write_features

    p = write_synthetic_features(tmp_path, streams=("joint", "bone"))
    meta, x = read_features(p["features"] / "skeleton" / "bone" / "video_clips.parquet")
    short = tmp_path / "short.parquet"
    write_features(short, meta.iloc[:-1], x[:-1])
    members = {"joint": str(p["features"] / "skeleton" / "joint" / "video_clips.parquet"), "bone": str(short)}
    with pytest.raises(ValueError, match="other clips"):
        run_emotion(members, str(p["manifest"]), {"seeds": [0]}, str(tmp_path / "out"))


def test_two_foundation_models_by_default():
    """Table XIII's model reads MG-FM-Skele (the joint-stream encoder unless eval.emotion.skeleton_streams says
    otherwise) and MG-FM-RGB; all three streams give the four-encoder variant; a stream not evaluated is an
    error naming the key."""
    from mgfm.config import resolve
    from mgfm.eval.checks import check_eval_config
    from mgfm.eval.members import emotion_members
    from mgfm.tables.build import emotion_models

    default = resolve("eval", {})["emotion"]["skeleton_streams"]
    streams = ["joint", "bone", "motion"]
    two = emotion_members(["skeleton", "rgb"], streams, default)
    assert two == [("skeleton", "joint"), ("rgb", "rgb")] and emotion_models(["joint", "rgb"]) == \
        "MG-FM-Skele (joint) + MG-FM-RGB"
    four = emotion_members(["skeleton", "rgb"], streams, ["motion", "joint", "bone"])
    assert four == [("skeleton", "joint"), ("skeleton", "bone"), ("skeleton", "motion"), ("rgb", "rgb")]
    assert emotion_members(["skeleton"], streams, default) == [("skeleton", "joint")]
    with pytest.raises(ValueError, match=r"eval\.emotion\.skeleton_streams: stream 'bone' is not in eval\.streams"):
        check_eval_config(resolve("eval", {"streams": ["joint"], "emotion": {"skeleton_streams": ["bone"]}}),
                          streams)

"""Spotting's RGB members: window clips streamed from the video equal the packed RGB dataset's clip recipe,
the model-card check names the file and the mismatch, and Skele+RGB fusion takes the multimodal weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgfm.packs.rgb import crop_resize, sample_indices
from mgfm.infer.bundle import BundleError, check_rgb_card
from mgfm.infer.calibrate import fusion_weights
from mgfm.infer.rgb_windows import stream_clips


def _frames(video: np.ndarray, needed: np.ndarray, log: list[int]):
    for f in needed.tolist():
        log.append(f)
        yield f, video[f]


def test_streamed_window_clips_equal_the_packed_recipe_and_read_each_frame_once():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (120, 48, 64, 3), dtype=np.uint8)
    lengths, stride = (9, 20, 37), 4
    starts = np.concatenate([np.arange(0, 120 - n + 1, stride) for n in lengths])
    ends = np.concatenate([np.arange(0, 120 - n + 1, stride) + n - 1 for n in lengths])
    crops = np.stack([rng.integers(-10, 30, len(starts)), rng.integers(-10, 20, len(starts)),
                      rng.integers(16, 60, len(starts))], axis=1)[:, [0, 1, 2, 2]]     # squares, some off-image
    T, S = 8, 16
    idx = sample_indices(starts, ends, T)
    read: list[int] = []
    seen = np.zeros(len(starts), int)
    n_batches = 0
    for pos, clips in stream_clips(_frames(video, np.unique(idx), read), idx, crops, S, batch_size=7):
        assert clips.shape == (len(pos), T, S, S, 3) and clips.dtype == np.uint8 and len(pos) <= 7
        n_batches += 1
        for p, clip in zip(pos, clips):
            seen[p] += 1
            want = np.stack([crop_resize(video[f], crops[p], S) for f in idx[p]])
            np.testing.assert_array_equal(clip, want)
    assert (seen == 1).all() and n_batches == -(-len(starts) // 7)
    assert read == sorted(set(read)) == np.unique(idx).tolist()          # one forward pass, each frame once


def test_a_reader_that_stops_early_is_an_error():
    video = np.zeros((30, 20, 20, 3), np.uint8)
    idx = sample_indices(np.array([0, 10]), np.array([9, 29]), 4)
    frames = ((f, video[f]) for f in np.unique(idx)[:3])
    with pytest.raises(ValueError, match="windows need frames up to 2"):
        list(stream_clips(frames, idx, np.array([[0, 0, 20, 20]] * 2), 8, 4))


def test_rgb_card_that_does_not_read_the_packed_clips_is_refused_naming_file_and_mismatch(tmp_path):
    card = tmp_path / "card.json"
    check_rgb_card({"num_frames": 8, "image_size": 64}, {"num_frames": 8, "size": 64}, card)
    with pytest.raises(BundleError, match=r"card\.json: RGB encoder reads 16 frames of 64 px.*8 frames of 64 px"):
        check_rgb_card({"num_frames": 16, "image_size": 64}, {"num_frames": 8, "size": 64}, card)
    with pytest.raises(BundleError, match=r"reads 8 frames of 32 px.*8 frames of 64 px"):
        check_rgb_card({"num_frames": 8, "image_size": 32}, {"num_frames": 8, "size": 64}, card)


def test_fusion_weights_are_the_skeleton_ones_or_the_multimodal_ones_when_rgb_is_a_member(tmp_path):
    ens = tmp_path / "metrics.json"
    skel = {"joint": 0.5, "bone": 0.3, "motion": 0.2}
    multi = {"joint": 0.4, "bone": 0.2, "motion": 0.1, "rgb": 0.3}
    ens.write_text(json.dumps({"seeds": [0], "members": [*multi], "weights": [skel], "weights_multimodal": [multi]}))
    mods = {"joint": "skeleton", "bone": "skeleton", "motion": "skeleton"}
    assert fusion_weights(str(ens), 0, [*skel], mods) == skel
    assert fusion_weights(str(ens), 0, [*multi], {**mods, "rgb": "rgb"}) == multi
    ens.write_text(json.dumps({"seeds": [0], "members": [*skel], "weights": [skel], "weights_multimodal": []}))
    with pytest.raises(BundleError, match="no weights_multimodal for seed 0"):
        fusion_weights(str(ens), 0, [*multi], {**mods, "rgb": "rgb"})


def test_a_spotter_with_an_rgb_member_and_no_rgb_clip_settings_is_refused(tmp_path):
    from mgfm.infer.bundle import load_spotter

    from tests.support.infer import spotter_fields

    (tmp_path / "classifiers" / "rgb" / "rgb").mkdir(parents=True)
    spotter = spotter_fields(members=[{"name": "rgb", "modality": "rgb", "stream": "rgb"}], weights={"rgb": 1.0})
    (tmp_path / "spotter.json").write_text(json.dumps(spotter))
    with pytest.raises(BundleError, match=r"spotter\.json: RGB member 'rgb' but no rgb_clip_params"):
        load_spotter(tmp_path, check_digests=False)
    (tmp_path / "spotter.json").write_text(json.dumps({**spotter, "rgb_clip_params": {"num_frames": 8, "size": 64}}))
    assert load_spotter(tmp_path, check_digests=False)["members"][0]["modality"] == "rgb"

"""Per-epoch views in RGB pretraining: the views layout of the packed pretraining clips (frames at a fixed stride,
a context margin), GroupMultiScaleCrop's choices, views seeded by (seed, clip id, epoch) through the loop's
epoch-carrying batches, the evaluation layout left exactly as it was, and fine-tuning's windows and test views
over a dataset in the views layout (its starts and margin)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from mgfm.core.packed import open_packed, write_packed
from mgfm.packs.rgb import build_rgb_pack, context_boxes, sample_indices, view_indices
from mgfm.train.loop import EpochBatchSampler, IndexBatch
from mgfm.train.rgb.clips import PackedRGBClips
from mgfm.train.rgb.pretrain_views import ViewAugment, crop_offsets, crop_sizes

AUG = ViewAugment(temporal=True, scales=(1.0, 0.875, 0.75, 0.66), max_distort=1)


def test_view_indices_take_the_stride_where_the_clip_is_long_enough():
    idx, starts = view_indices(np.array([100, 0, 0, 50]), np.array([199, 30, 9, 50 + 29 + 7]), 8, 12, 4)
    # 100 frames hold 8 at stride 4 (29 frames) for 5 starts (extra 4): 12 frames at the stride, centred
    assert starts.tolist() == [5, 1, 1, 3]
    assert np.all(np.diff(idx[0]) == 4) and idx[0, 0] == 100 + (100 - (11 * 4 + 1)) // 2
    # 31 frames: exactly one start at the stride (span 29), centred; unused slots repeat the last frame
    assert idx[1].tolist() == [1, 5, 9, 13, 17, 21, 25, 29, 29, 29, 29, 29]
    # 10 frames are too short for the stride: the plain layout's evenly spread frames, one start
    assert idx[2, :8].tolist() == sample_indices(np.array([0]), np.array([9]), 8)[0].tolist()
    # 37 frames: (37 - 29) // 4 + 1 = 3 starts
    assert starts[3] == 3 and idx[3, 0] >= 50 and idx[3, 9] <= 50 + 36 and np.all(np.diff(idx[3, :10]) == 4)


def test_context_boxes_grow_about_the_centre():
    boxes = np.array([[90, 40, 60, 60], [0, 0, 224, 224]])
    grown = context_boxes(boxes, 224, 240)
    assert grown[0].tolist() == [88, 38, 64, 64] and grown[1].tolist() == [-8, -8, 240, 240]


def test_multi_scale_crop_choices_are_group_multi_scale_crops():
    assert crop_sizes(256, 224, AUG.scales, 1) == [(256, 256), (224, 256), (256, 224), (224, 224), (192, 224),
                                                   (224, 192), (192, 192), (168, 192), (192, 168), (168, 168)]
    assert crop_sizes(224, 224, AUG.scales, 0) == [(224, 224), (196, 196), (168, 168), (147, 147)]
    offsets = crop_offsets(240, 158, 180)
    assert len(offsets) == 13 and (0, 0) in offsets and (80, 60) in offsets and (40, 30) in offsets


def _views_dataset(path, n=6, frames=12, side=20, num_frames=8, size=16, starts=None):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (n, frames, side, side, 3), dtype=np.uint8)
    meta = pd.DataFrame({"clip_id": [f"c{i}" for i in range(n)], "video_id": "v", "subject_id": "s",
                         "split": "unlabeled", "label": -1, "valid_len": num_frames, "start_frame": 0,
                         "end_frame": 40, "view_starts": starts if starts is not None else [5, 1, 3, 5, 2, 1]})
    write_packed(path, data, meta, {"modality": "rgb", "views": {"num_frames": num_frames, "size": size,
                                                                  "frames": frames, "side": side, "stride": 4,
                                                                  "context": side / size}})
    return data


def test_views_are_seeded_by_clip_and_epoch_and_the_centre_without_one(tmp_path):
    data = _views_dataset(tmp_path / "v")
    plain = PackedRGBClips(tmp_path / "v", 8, 16)
    centre = plain[[0, 1, 2]]["x"]
    assert centre.shape == (3, 8, 16, 16, 3)
    # the centre view: the middle start, the central 16 x 16 pixels of the 20 x 20 stored frames
    assert torch.equal(centre[0], torch.from_numpy(data[0, 2:10, 2:18, 2:18]))
    assert torch.equal(centre[1], torch.from_numpy(data[1, 0:8, 2:18, 2:18]))
    aug = PackedRGBClips(tmp_path / "v", 8, 16, augment=AUG, seed=7)
    assert torch.equal(aug[[0, 1, 2]]["x"], centre)                # no epoch (features, caches): the centre view
    e0 = aug[IndexBatch([0, 1, 2, 3, 4, 5], 0)]["x"]
    again = aug[IndexBatch([5, 3, 0], 0)]["x"]                      # another batch, the same clips' views
    assert torch.equal(again, e0[[5, 3, 0]])
    e1 = aug[IndexBatch([0, 1, 2, 3, 4, 5], 1)]["x"]
    assert not torch.equal(e0, e1)
    other_seed = PackedRGBClips(tmp_path / "v", 8, 16, augment=AUG, seed=8)[IndexBatch([0, 1, 2, 3, 4, 5], 0)]["x"]
    assert not torch.equal(e0, other_seed)
    # every view is T consecutive stored frames of a valid start, cropped and resized: the temporal order holds
    # and a clip with one start never leaves it
    fixed = ViewAugment(temporal=True, scales=(1.0,), max_distort=0)
    whole = PackedRGBClips(tmp_path / "v", 8, 16, augment=fixed, seed=1)
    starts_seen = set()
    for epoch in range(12):
        x = whole[IndexBatch([0, 1], epoch)]["x"].float()
        small = torch.nn.functional.interpolate(torch.from_numpy(data[0]).permute(0, 3, 1, 2).float(), size=(16, 16),
                                                mode="bilinear", align_corners=False, antialias=True)
        diffs = [(x[0].permute(0, 3, 1, 2) - small[s:s + 8]).abs().mean().item() for s in range(5)]
        starts_seen.add(int(np.argmin(diffs)))
        assert min(diffs) < 1.0
        ref1 = torch.nn.functional.interpolate(torch.from_numpy(data[1, :8]).permute(0, 3, 1, 2).float(),
                                               size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
        assert (x[1].permute(0, 3, 1, 2) - ref1).abs().mean().item() < 1.0
    assert len(starts_seen) > 2


def test_a_plain_dataset_is_read_unchanged_and_can_still_be_cropped(tmp_path):
    from tests.support.rgb import write_synthetic_rgb

    write_synthetic_rgb(tmp_path / "p", 4)
    stored, _ = open_packed(tmp_path / "p")
    data = PackedRGBClips(tmp_path / "p", 8, 64)
    assert torch.equal(data[IndexBatch([2, 0], 3)]["x"], torch.from_numpy(np.asarray(stored[[2, 0]])))
    cropped = PackedRGBClips(tmp_path / "p", 8, 64, augment=AUG, seed=0)
    assert torch.equal(cropped[[1]]["x"], torch.from_numpy(np.asarray(stored[[1]])))
    views = torch.stack([cropped[IndexBatch([1], e)]["x"][0] for e in range(6)])
    assert views.shape == (6, 8, 64, 64, 3) and len({v.float().sum().item() for v in views}) > 1
    # fine-tuning reads plain clips whole: every stored frame starts a window where more than T are stored
    assert PackedRGBClips(tmp_path / "p", 8, 64, larger=True)[[0, 1]]["starts"].tolist() == [1, 1]
    write_synthetic_rgb(tmp_path / "long", 2, frames=10)
    assert PackedRGBClips(tmp_path / "long", 8, 64, larger=True)[[0, 1]]["starts"].tolist() == [3, 3]


def test_batches_carry_their_epoch_to_the_loader_workers():
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(range(10), num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    sampler.set_epoch(4)
    batches = list(EpochBatchSampler(sampler, 3))
    assert len(batches) == 3 and all(isinstance(b, IndexBatch) and b.epoch == 4 for b in batches)
    copy = pickle.loads(pickle.dumps(batches[0]))                 # what a worker receives
    assert copy == batches[0] and copy.epoch == 4


def test_pretraining_dataset_in_the_views_layout_and_evaluation_datasets_unchanged(tmp_path):
    from mgfm.clips.sample import sample_clips

    from tests.support.clips import write_corpus

    corpus = write_corpus(tmp_path, n_labeled=2, n_unlabeled=2, seed=6, frames_range=(300, 500), with_video=True,
                          width=96, height=72)
    sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "clips.parquet",
                 tmp_path / "stats.csv", seed=1, params={"retry_budget": 200})
    params = {"num_frames": 6, "size": 32, "crop": "full", "views": {"stride": 7, "extra_frames": 3, "context": 1.25}}
    for name in ("pretrain", "mg_test"):
        build_rgb_pack(name, tmp_path / "rgb" / name, corpus["video_dir"], corpus["pose_dir"], corpus["manifest"],
                          corpus["annotations"], tmp_path / "clips.parquet", params)
        build_rgb_pack(name, tmp_path / "plain" / name, corpus["video_dir"], corpus["pose_dir"],
                          corpus["manifest"], corpus["annotations"], tmp_path / "clips.parquet",
                          {**params, "views": {"datasets": []}})
    # the evaluation dataset is byte for byte the plain layout
    a, ma = open_packed(tmp_path / "rgb" / "mg_test")
    b, _ = open_packed(tmp_path / "plain" / "mg_test")
    assert np.array_equal(np.asarray(a), np.asarray(b)) and "view_starts" not in ma.columns
    # the pretraining dataset: 9 frames of 40 px, the frames the views layout names (red = 7 x frame index)
    data, meta = open_packed(tmp_path / "rgb" / "pretrain")
    assert data.shape == (len(meta), 9, 40, 40, 3)
    idx, starts = view_indices(meta.start_frame.to_numpy(), meta.end_frame.to_numpy(), 6, 9, 7)
    assert meta.view_starts.tolist() == starts.tolist() and (starts > 1).any() and (starts == 1).any()
    red = data[..., 12:28, 12:28, 0].reshape(len(meta), 9, -1).mean(axis=-1)
    expect = (idx * 7) % 256
    near_wrap = (expect < 12) | (expect > 243)
    assert np.abs(red - expect)[~near_wrap].max() < 8
    # its centre view is the plain clip's crop at the same scale where the clip is too short for the stride
    views = PackedRGBClips(tmp_path / "rgb" / "pretrain", 6, 32)
    plain = PackedRGBClips(tmp_path / "plain" / "pretrain", 6, 32)
    short = np.flatnonzero(starts == 1)
    diff = (views[short]["x"].float() - plain[short]["x"].float()).abs().mean().item()
    assert diff < 6, diff


def test_fine_tuning_reads_a_views_layout_dataset_whole_within_each_clips_starts(tmp_path):
    from mgfm.eval.rgb_finetune import describe_views, view_scores
    from mgfm.train.rgb.finetune_views import crop_view, evaluation_views

    _views_dataset(tmp_path / "v")                       # 6 clips, 12 frames of 20 px, T 8 of 16 px, starts below
    whole = PackedRGBClips(tmp_path / "v", 8, 16, larger=True)
    b = whole[[0, 1, 2]]
    assert b["x"].shape == (3, 12, 20, 20, 3) and b["starts"].tolist() == [5, 1, 3]
    # the centred single test view is the centre view that features read
    centre = PackedRGBClips(tmp_path / "v", 8, 16)[[0, 1, 2]]["x"]
    one = evaluation_views(whole.data.shape, 8, 16, 1, 1)
    assert torch.equal(crop_view(b["x"], one.starts(b["starts"])[0][:, 0], one.places[0], 8, 16), centre)
    # temporal views over each clip's own starts, spatial ones over the context margin
    views = evaluation_views(whole.data.shape, 8, 16, 3, 3)
    t0, first = views.starts(b["starts"])
    assert t0.tolist() == [[0, 2, 4], [0, 0, 0], [0, 1, 2]] and views.places == ((2, 0), (2, 2), (2, 4))
    card = {"num_frames": 8, "image_size": 16}
    described = describe_views(whole, card, {"test_views": {"temporal": 3, "spatial": 3}})
    assert described["distinct"] == 9 and described["distinct_min"] == 3 and "offsets_t_y_x" not in described

    class Mean(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3, 4)), -x.mean((1, 2, 3, 4))], 1)

    scores = view_scores(Mean(), b["x"], views, b["starts"])
    assert scores.shape == (3, 2) and torch.isfinite(scores).all()
    # the layout was built for one input size; the two readers do not mix
    with pytest.raises(ValueError, match="model expects 6"):
        PackedRGBClips(tmp_path / "v", 6, 16, larger=True)
    with pytest.raises(ValueError, match="two readers"):
        PackedRGBClips(tmp_path / "v", 8, 16, augment=AUG, larger=True)


def test_fine_tuning_on_views_layout_datasets_runs_with_per_clip_test_views(tmp_path):
    import json

    from mgfm.cli import main
    from mgfm.core.packed import read_info

    from tests.support.features import write_synthetic_encoders
    from tests.support.rgb import add_rgb_branch, synthetic_rgb

    pytest.importorskip("transformers")
    paths = write_synthetic_encoders(tmp_path, streams=("joint",), num_classes=4, n_train=24, n_test=12, frames=8,
                                     hidden=8)
    add_rgb_branch(tmp_path)
    for i, name in enumerate(("mg_train", "mg_test")):  # the same clips again, in the views layout
        path = tmp_path / "packs" / "rgb" / name
        _, meta = open_packed(path)
        clips, _ = synthetic_rgb(len(meta), 12, 80, seed=i)
        starts = np.arange(len(meta)) % 5 + 1
        write_packed(path, clips, meta.assign(view_starts=starts),
                     {**read_info(path), "views": {"num_frames": 8, "size": 64, "frames": 12, "side": 80,
                                                   "stride": 2, "context": 1.25}})
    params = {"modalities": ["rgb"], "streams": ["joint"], "seeds": [0], "validation": {"fraction": 0.25},
              "finetune": {"eval_every": 1, "train": {"epochs": 1, "batch_size": 8, "lr": 0.002, "warmup_epochs": 0},
                           "rgb": {"test_views": {"temporal": 2, "spatial": 3}}}}
    out = tmp_path / "eval"
    assert main(["eval", "finetune", "--protocol", "finetune", "--modality", "rgb", "--stream", "rgb",
                 "--model-dir", str(tmp_path / "models" / "rgb" / "rgb"),
                 "--train", str(tmp_path / "packs" / "rgb" / "mg_train"),
                 "--test", str(tmp_path / "packs" / "rgb" / "mg_test"),
                 "--out-dir", str(out), "--pretrained-streams", "joint", "--taxonomy", str(paths["taxonomy"]),
                 "--params", json.dumps(params)]) == 0
    views = json.loads((out / "metrics.json").read_text())["rgb_recipe"]["test_views"]
    assert views["stored"] == [12, 80, 80] and views["distinct"] == 6 and views["distinct_min"] == 3

"""Clip dataset throughput on demo-like data: skeleton build, RGB extraction, and DataLoader batch loading of the
packed skeleton dataset against loading the same clips from the pose Parquet files.

    python benchmarks/bench_packs.py [--videos 16] [--workdir /tmp/mgfm-bench-packs]

Demo-like corpus (``tests.support.clips.write_corpus``): 20-60 s videos at 25 fps, 320x240, half labeled.
Packed loading is the loader the pipeline runs: ``mgfm.train.skeleton_clips.PackedClips`` behind a shuffling
DistributedSampler and a BatchSampler, as ``mgfm.train.loop.fit`` builds it (one memmap read per batch; the last
short batch kept here so that every clip is compared). Baseline: a Dataset whose item reads the clip's frames
from the video's pose Parquet file (``read_pose(path, start, end)``, only the x/y/score columns, touching only
the overlapping row groups) and builds the tensor with the same ``clip_tensors`` code. Both run in the same
process, batch 64, shuffled, no workers, and must return identical tensors.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler  # noqa: E402

from mgfm.packs.rgb import build_rgb_pack  # noqa: E402
from mgfm.clips.sample import sample_clips  # noqa: E402
from mgfm.packs.skeleton import build_skeleton_pack, clip_tensors  # noqa: E402
from mgfm.core.pose_store import read_pose, read_pose_meta  # noqa: E402
from mgfm.train.skeleton_clips import PackedClips  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.clips import write_corpus  # noqa: E402

SKELETON = {"num_frames": 32}


class ParquetClips(Dataset):
    """The baseline: every item parses its frames out of the pose Parquet file."""

    def __init__(self, meta, pose_dir: Path) -> None:
        self.meta, self.pose_dir = meta.reset_index(drop=True), pose_dir

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, i: int):
        row = self.meta.iloc[i]
        path = self.pose_dir / f"{row.video_id}.parquet"
        pose = read_pose(path, int(row.start_frame), int(row.end_frame), columns=["frame", "x", "y", "score"])
        meta = read_pose_meta(path)
        # clip_tensors indexes rows by frame number: shift the clip to start at row 0
        n = int(row.end_frame - row.start_frame)
        x, _, _ = clip_tensors(pose.xy, pose.score, np.array([0]), np.array([n]), SKELETON,
                               (meta["width"], meta["height"]))
        return torch.from_numpy(x[0]), i


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:.0f} clips/s ({n} clips in {seconds:.2f}s)"


def packed_batches(ds: PackedClips, batch: int, epoch: int):
    """(x, index) batches as ``mgfm.train.loop.fit`` draws them (but keeping the last short batch)."""
    sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=False)
    sampler.set_epoch(epoch)
    for b in DataLoader(ds, sampler=BatchSampler(sampler, batch, drop_last=False), batch_size=None):
        yield b["x"], b["index"]


def parquet_batches(ds: ParquetClips, batch: int, epoch: int):
    yield from DataLoader(ds, batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(epoch))


def load_all(batches, ds, epochs: int = 1, batch: int = 64) -> tuple[float, dict]:
    """Seconds per epoch (mean over ``epochs`` shuffled passes) and the clips of the last pass by index."""
    out = {}
    t0 = time.perf_counter()
    for epoch in range(epochs):
        for x, idx in batches(ds, batch, epoch):
            for k, v in zip(idx.tolist(), x):
                out[k] = v
    return (time.perf_counter() - t0) / epochs, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--workdir", default="/tmp/mgfm-bench-packs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    c = write_corpus(work, n_labeled=args.videos // 2, n_unlabeled=args.videos - args.videos // 2, seed=0,
                     frames_range=(500, 1500), with_video=True)
    print(f"corpus: {args.videos} videos written in {time.perf_counter() - t0:.1f}s")

    t0 = time.perf_counter()
    sample_clips(c["pose_dir"], c["manifest"], c["annotations"], work / "clips.parquet", work / "stats.csv", seed=0)
    print(f"sampling: {time.perf_counter() - t0:.2f}s")

    total_n, total_s = 0, 0.0
    for name in ("pretrain", "mg_train", "mg_test", "video_clips"):
        t0 = time.perf_counter()
        meta = build_skeleton_pack(name, work / "skel" / name, c["pose_dir"], c["manifest"], c["annotations"],
                                      work / "clips.parquet", SKELETON)
        total_n, total_s = total_n + len(meta), total_s + time.perf_counter() - t0
    print(f"skeleton build (T=32, 4 datasets): {rate(total_n, total_s)}")

    for label, params in (("demo 8x64x64", {"num_frames": 8, "size": 64}),
                          ("paper 16x224x224", {"num_frames": 16, "size": 224})):
        n, s = 0, 0.0
        for name in ("pretrain", "video_clips"):
            t0 = time.perf_counter()
            meta = build_rgb_pack(name, work / "rgb" / label.split()[0] / name, c["video_dir"], c["pose_dir"],
                                     c["manifest"], c["annotations"], work / "clips.parquet", params)
            n, s = n + len(meta), s + time.perf_counter() - t0
        print(f"rgb extraction ({label}, person crop, 320x240 source): {rate(n, s)}")

    packed = PackedClips(work / "skel" / "pretrain")
    baseline = ParquetClips(packed.meta, c["pose_dir"])
    packed_s, a = load_all(packed_batches, packed, epochs=50)
    parquet_s, b = load_all(parquet_batches, baseline)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "loaders disagree"
    n = len(packed)
    print(f"DataLoader, batch 64, per epoch: packed (training loader) {rate(n, packed_s)} (mean of 50 epochs); "
          f"pose Parquet "
          f"{rate(n, parquet_s)} -> "
          f"packed x{parquet_s / packed_s:.0f} faster (identical tensors)")


if __name__ == "__main__":
    main()

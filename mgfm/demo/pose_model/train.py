"""Train the demo's whole-body pose model on rendered demo frames, export it to ONNX with its sidecar JSON.

    python -m mgfm.demo.pose_model.train [--out mgfm/pose/models/demo_wholebody.onnx] [--minutes 18]

Data: ``mgfm.demo.render.render_training_samples`` (fresh subjects, venues and gestures, ~6% cut-in
frames with no person) with exact ground-truth keypoints and visibility. Each frame is cropped with the very
affine the pose stage uses (whole-frame box, padding 1.25, aspect fixed to the input), with a random jitter of
the box on most samples so the model does not depend on one framing. Held-out frames come from another seed.

Targets are RTMPose's Gaussian SimCC labels with peak 1 (sigma in bins) for visible keypoints and all-zero
vectors for hidden keypoints and cut-in frames; the loss is per-bin binary cross-entropy on sigmoid outputs,
so a bin's value is a calibrated "the keypoint is here" probability: the SimCC score (min of the per-axis
maxima) is high where the renderer shows the keypoint and near 0 where it does not, which is what the clip
sampler's face-anchor threshold (tau = 0.3) needs. Curves go to ``<out>.train_log.csv``; the sidecar JSON
records input size, split ratio, normalisation, sha256 and the held-out accuracy.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mgfm.common.seeding import derive_seed, rng_for
from mgfm.pose.affine import boxes_to_cs, crop_batch, crop_to_image, get_warp_matrix
from mgfm.demo.pose_model.export import export_onnx
from mgfm.demo.pose_model.net import DemoSimCCNet
from mgfm.pose.params import DEMO_MODEL
from mgfm.pose.preprocess import RTMPOSE_MEAN, RTMPOSE_STD
from mgfm.pose.simcc import decode_simcc

log = logging.getLogger("mgfm.pose.train")


def compress_like_video(frames: np.ndarray, rng: np.random.Generator, fraction: float) -> None:
    """In place: JPEG-recompress a random ``fraction`` of RGB frames at quality 20-80, standing in for the
    H.264 (crf ~23) artefacts of the demo videos that the renderer's clean frames lack."""
    for i in np.nonzero(rng.random(len(frames)) < fraction)[0]:
        ok, buf = cv2.imencode(".jpg", frames[i][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 81))])
        if ok:
            frames[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def render_crops(n: int, seed: int, input_size: tuple[int, int], jitter: float, chunk: int = 500,
                 cut_in_fraction: float = 0.06, jpeg_fraction: float = 0.0):
    """Rendered samples cropped to the model input: crops (n, h, w, 3) uint8, keypoints in crop pixels
    (n, 133, 2), visibility (n, 133) (0 outside the crop), plus the uncropped ground truth for evaluation."""
    from mgfm.demo.render import render_training_samples

    w_in, h_in = input_size
    crops = np.empty((n, h_in, w_in, 3), np.uint8)
    kp = np.zeros((n, 133, 2), np.float32)
    vis = np.zeros((n, 133), np.float32)
    rng = rng_for(seed, "pose-train", "jitter")
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        frames, xy, v = render_training_samples(k, derive_seed(seed, "pose-train", start),
                                                cut_in_fraction=cut_in_fraction)
        compress_like_video(frames, rng, jpeg_fraction)
        H, W = frames.shape[1:3]
        boxes = np.tile(np.array([0, 0, W, H], np.float32), (k, 1))
        if jitter > 0:
            jit = rng.random(k) < 0.7
            s = rng.uniform(1 - jitter, 1 + jitter, k)
            dx = rng.uniform(-jitter, jitter, k) * W * 0.5
            dy = rng.uniform(-jitter, jitter, k) * H * 0.5
            c = np.stack([W / 2 + dx, H / 2 + dy], 1)
            half = np.stack([W / 2 * s, H / 2 * s], 1)
            boxes[jit] = np.concatenate([c - half, c + half], 1)[jit]
        centers, scales = boxes_to_cs(boxes, input_size)
        crops[start:start + k] = crop_batch(frames, centers, scales, input_size)
        for i in range(k):
            m = get_warp_matrix(centers[i], scales[i], 0.0, input_size)
            kp[start + i] = xy[i] @ m[:, :2].T + m[:, 2]
        inside = ((kp[start:start + k, :, 0] >= 0) & (kp[start:start + k, :, 0] < w_in)
                  & (kp[start:start + k, :, 1] >= 0) & (kp[start:start + k, :, 1] < h_in))
        vis[start:start + k] = (v > 0) & inside
    return crops, kp, vis


def simcc_targets(kp: torch.Tensor, vis: torch.Tensor, bins_x: int, bins_y: int, ratio: float,
                  sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian SimCC labels (peak 1 at keypoint * ratio) for visible keypoints, zeros elsewhere."""
    bx = torch.arange(bins_x, dtype=torch.float32)
    by = torch.arange(bins_y, dtype=torch.float32)
    mx, my = kp[..., 0:1] * ratio, kp[..., 1:2] * ratio
    tx = torch.exp(-((bx - mx) ** 2) / (2 * sigma ** 2)) * vis[..., None]
    ty = torch.exp(-((by - my) ** 2) / (2 * sigma ** 2)) * vis[..., None]
    return tx, ty


def simcc_loss(lx: torch.Tensor, ly: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor,
               vis: torch.Tensor) -> torch.Tensor:
    """Per-bin BCE (calibrates the score: ~1 at a visible keypoint, ~0 everywhere for a hidden one) plus, on
    visible keypoints, RTMPose's localisation term: cross-entropy between softmax(logits) and the normalised
    Gaussian label (KLDiscretLoss up to a constant), which gives a strong gradient towards the right bin even
    while the sigmoid outputs are still near 0."""
    bce = F.binary_cross_entropy_with_logits(lx, tx) + F.binary_cross_entropy_with_logits(ly, ty)
    m = vis > 0
    if m.any():
        px = tx[m] / tx[m].sum(-1, keepdim=True).clamp_min(1e-6)
        py = ty[m] / ty[m].sum(-1, keepdim=True).clamp_min(1e-6)
        ce = -(px * F.log_softmax(lx[m], -1)).sum(-1).mean() - (py * F.log_softmax(ly[m], -1)).sum(-1).mean()
    else:
        ce = lx.sum() * 0
    return 100 * bce + 0.2 * ce


class _Normalizer:
    """uint8 NHWC RGB batch -> normalised NCHW float, with optional photometric augmentation."""

    def __init__(self) -> None:
        self.mean = torch.tensor(RTMPOSE_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(RTMPOSE_STD).view(1, 3, 1, 1)

    def __call__(self, crops: np.ndarray, gen: torch.Generator | None = None) -> torch.Tensor:
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
        if gen is not None:
            n = x.shape[0]
            gain = 1 + 0.25 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 2
            chan = 1 + 0.08 * (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 2
            bias = 25 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5) * 2
            x = (x * gain * chan + bias + 4 * torch.randn(x.shape, generator=gen)).clamp(0, 255)
        return (x - self.mean) / self.std


def evaluate_crops(model: DemoSimCCNet, norm: _Normalizer, crops: np.ndarray, gt_xy: np.ndarray,
                   gt_vis: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> dict:
    from mgfm.demo.pose_model.evaluate import pose_metrics

    model.eval()
    xs, ss = [], []
    with torch.no_grad():
        for i in range(0, len(crops), 128):
            sx, sy = model(norm(crops[i:i + 128]))
            k, s = decode_simcc(sx.numpy(), sy.numpy(), model.split_ratio)
            xs.append(crop_to_image(k, centers[i:i + 128], scales[i:i + 128], model.input_size))
            ss.append(s)
    model.train()
    return pose_metrics(np.concatenate(xs), np.concatenate(ss), gt_xy, gt_vis)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEMO_MODEL))
    ap.add_argument("--train-samples", type=int, default=14000)
    ap.add_argument("--val-samples", type=int, default=800)
    ap.add_argument("--input-size", type=int, nargs=2, default=[128, 96], metavar=("W", "H"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--minutes", type=float, default=18.0, help="training time budget (epochs are cut to fit)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sigma", type=float, default=2.5, help="SimCC label sigma in bins")
    ap.add_argument("--jitter", type=float, default=0.12, help="box scale/shift jitter fraction")
    ap.add_argument("--jpeg-fraction", type=float, default=0.6, help="share of frames JPEG-recompressed")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20240601)
    return ap


@dataclass
class _HeldOut:
    """Whole-frame crops of held-out renders (with cut-ins) and their ground truth, for per-epoch metrics."""

    seed: int
    crops: np.ndarray
    xy: np.ndarray
    vis: np.ndarray
    centers: np.ndarray
    scales: np.ndarray

    def metrics(self, model: DemoSimCCNet, norm: _Normalizer) -> dict:
        return evaluate_crops(model, norm, self.crops, self.xy, self.vis, self.centers, self.scales)


def _held_out(n: int, seed: int, input_size: tuple[int, int]) -> _HeldOut:
    from mgfm.demo.render import render_training_samples

    vframes, vxy, vvis = render_training_samples(n, seed, cut_in_fraction=0.15)
    H, W = vframes.shape[1:3]
    vcenters, vscales = boxes_to_cs(np.tile(np.array([0, 0, W, H], np.float32), (len(vframes), 1)), input_size)
    return _HeldOut(seed, crop_batch(vframes, vcenters, vscales, input_size), vxy, vvis, vcenters, vscales)


@dataclass
class _Schedule:
    """Cosine decay over whichever runs out first, the steps of every epoch or the time budget."""

    lr: float
    total_steps: int
    budget_s: float
    start: float

    def at(self, step: int) -> float:
        progress = max(step / self.total_steps, (time.perf_counter() - self.start) / self.budget_s)
        return self.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _train_epoch(model: DemoSimCCNet, norm: _Normalizer, opt: torch.optim.Optimizer, crops: np.ndarray,
                 kp_t: torch.Tensor, vis_t: torch.Tensor, perm: np.ndarray, batch_size: int, sigma: float,
                 gen: torch.Generator, schedule: _Schedule, step: int) -> tuple[list[float], int, float]:
    """One pass in ``perm`` order: (step losses, global step after the epoch, last learning rate)."""
    bins_x, bins_y = int(model.input_size[0] * model.split_ratio), int(model.input_size[1] * model.split_ratio)
    losses = []
    for b in range(len(crops) // batch_size):
        idx = np.sort(perm[b * batch_size:(b + 1) * batch_size])
        x = norm(crops[idx], gen)
        tx, ty = simcc_targets(kp_t[idx], vis_t[idx], bins_x, bins_y, model.split_ratio, sigma)
        lx, ly = model.logits(x)
        loss = simcc_loss(lx, ly, tx, ty, vis_t[idx])
        lr = schedule.at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
    return losses, step, lr


def _epoch_row(epoch: int, step: int, lr: float, losses: list[float], m: dict, elapsed: float) -> dict:
    return {"epoch": epoch + 1, "step": step, "lr": lr, "train_loss": float(np.mean(losses)),
            "val_body_px": m["body"]["mean_px_error"], "val_body_pck": m["body"]["pck@0.05"],
            "val_anchor_pck": m["face_anchors"]["pck@0.05"], "val_hands_pck": m["hands"]["pck@0.05"],
            "val_anchor_score_visible": m["face_anchor_score"]["visible_mean"],
            "val_anchor_score_cut_in": m["face_anchor_score"]["cut_in_mean"], "elapsed_s": elapsed}


def _write_log(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    from mgfm.common.logs import setup_logging

    args = _parser().parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.threads)
    torch.manual_seed(derive_seed(args.seed, "pose-train", "init"))
    input_size = (args.input_size[0], args.input_size[1])
    out = Path(args.out)
    t0 = time.perf_counter()

    crops, kp, vis = render_crops(args.train_samples, derive_seed(args.seed, "pose-train", "train"), input_size,
                                  args.jitter, jpeg_fraction=args.jpeg_fraction)
    held_out = _held_out(args.val_samples, derive_seed(args.seed, "pose-train", "val"), input_size)
    log.info("rendered %d train + %d held-out frames in %.0fs", len(crops), len(held_out.crops),
             time.perf_counter() - t0)

    model = DemoSimCCNet(input_size=input_size)
    norm = _Normalizer()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(derive_seed(args.seed, "pose-train", "aug"))
    order_rng = rng_for(args.seed, "pose-train", "order")
    kp_t, vis_t = torch.from_numpy(kp), torch.from_numpy(vis)
    log_path = out.with_suffix(".train_log.csv")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    budget = args.minutes * 60
    epochs = args.epochs
    schedule = _Schedule(args.lr, epochs * (len(crops) // args.batch_size), budget, time.perf_counter())
    step = 0
    for epoch in range(epochs):
        perm = order_rng.permutation(len(crops))
        losses, step, lr = _train_epoch(model, norm, opt, crops, kp_t, vis_t, perm, args.batch_size, args.sigma,
                                        gen, schedule, step)
        elapsed = time.perf_counter() - schedule.start
        row = _epoch_row(epoch, step, lr, losses, held_out.metrics(model, norm), elapsed)
        rows.append(row)
        _write_log(log_path, rows)
        log.info("epoch %d/%d loss %.4f | held-out body %.2fpx PCK %.3f anchors PCK %.3f hands PCK %.3f | "
                 "anchor score visible %.3f cut-in %.3f | %.0fs", epoch + 1, epochs, row["train_loss"],
                 row["val_body_px"], row["val_body_pck"], row["val_anchor_pck"], row["val_hands_pck"],
                 row["val_anchor_score_visible"], row["val_anchor_score_cut_in"], elapsed)
        if elapsed >= budget:
            log.info("time budget of %.0f min reached after %d epochs", args.minutes, epoch + 1)
            break

    side = export_onnx(model, out, "mgfm-demo-simcc-wholebody", extra={
        "trained_on": "mgfm.demo.render.render_training_samples", "train_samples": len(crops),
        "epochs": len(rows), "sigma_bins": args.sigma, "seed": args.seed,
        "held_out": {"samples": len(held_out.crops), "seed": held_out.seed,
                     "metrics": held_out.metrics(model, norm)},
    })
    log.info("exported %s (%d bytes, sha256 %s) in %.0fs total", out, out.stat().st_size, side["sha256"],
             time.perf_counter() - t0)


if __name__ == "__main__":
    main()

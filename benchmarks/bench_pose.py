"""Pose stage benchmark: the stage's frames/s against its two bounds and against rtmlib, on the same model and video.

Measured in one run, same threads, each figure the median of ``--repeat`` rounds (per-round figures printed too):
  * decode-only: frames/s of decoding alone (the stage's reader and batches), the first bound;
  * model-only: frames/s of the pose model on pre-cropped, pre-normalised batches through onnxruntime (the
    stage's session, batch size and threads), the second bound;
  * stage: frames/s of ``mgfm.pose.extract.estimate_video`` with whole-frame boxes (decode thread, crop workers,
    batched inference, Parquet write; the model loaded beforehand, its load time printed apart), and its share
    of the lower bound;
  * rtmlib 0.0.16: ``rtmlib.RTMPose`` frame by frame on the same ONNX model and video (its public API: one crop
    per call, whole-frame box), with max |keypoint difference| against the stage;
  * with a detector (``--detector``, or the preset's): detector-only frames/s (letterboxed batches through
    onnxruntime), the stage with detection and tracking, and its share of the bound its model runs give
    (pose model on the frames with a person, detector on the frames it ran on, both at their model-only rates);
  * bytes per frame of the Parquet output; ``--long-minutes M``: peak RSS of extracting a synthetic M-minute
    video against a 1-minute one, in child processes, to show memory does not grow with length.

``--preset-random rtmw-x`` benchmarks the paper's models at their real size: random-weight checkpoints of
RTMW-x and RTMDet-m (released weights cannot be downloaded here) exported exactly as rule export_pose_onnx
exports them (`mgfm pose export-onnx`, in the pinned mmpose venv, built once if absent), cached in ``--work``.
The random detector's head is biased so that it sees a person everywhere, so that its boxes feed the pose model.

  python benchmarks/bench_pose.py [--video V.mp4 | --size 640x360 --frames 32] [--model M.onnx | --preset-random
      rtmw-x] [--detector D.onnx] [--threads 2] [--batch-size 8] [--repeat 3] [--long-minutes 40]

rtmlib is not a project dependency: install it beside the venv, e.g.
``pip install --no-deps rtmlib==0.0.16 --target /tmp/rtmlib`` and run with ``PYTHONPATH=.:/tmp/rtmlib``.
rtmlib 0.0.16 scores a keypoint by the *mean* of the two per-axis maxima; mmpose (and we) use the *min*.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mgfm.pose.params import DEMO_MODEL  # noqa: E402


# ---- inputs -----------------------------------------------------------------------------------------------------

def _synthetic_video(path: Path, seconds: float, width: int = 320, height: int = 240) -> Path:
    """ffmpeg testsrc at 25 fps, H.264, plus the metadata JSON the pose stage reads."""
    from mgfm.ingest.video import ffmpeg_exe

    cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
           "-i", f"testsrc=size={width}x{height}:rate=25:duration={seconds}",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    n = int(round(seconds * 25))
    path.with_suffix(".json").write_text(json.dumps({"video_id": path.stem, "frames": n, "fps": 25.0,
                                                     "width": width, "height": height, "duration": seconds}))
    return path


def _with_meta(video: Path, tmp: Path) -> Path:
    """The video itself if its metadata JSON lies beside it, else a link in ``tmp`` with a probed JSON."""
    if video.with_suffix(".json").is_file():
        return video
    from mgfm.ingest.video import probe_video

    link = tmp / video.name
    link.symlink_to(video.resolve())
    link.with_suffix(".json").write_text(json.dumps({"video_id": video.stem, **probe_video(video)}))
    return link


def _pick_video(args, tmp: Path) -> Path:
    """--video, else a synthetic one of --size and --frames."""
    if args.video:
        return _with_meta(Path(args.video), tmp)
    w, h = (int(v) for v in args.size.split("x"))
    return _synthetic_video(tmp / "synthetic.mp4", args.frames / 25.0, w, h)


def _write_random_checkpoints(preset: str, out: Path) -> None:
    """(In the pinned mmpose venv.) Random-weight checkpoints of the preset's pose model and detector; the
    detector's last layers are set so that every prior scores about 0.88 with a box of 8 strides a side."""
    import torch
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

    from mgfm.pose.backends.mmpose_backend import resolve_config
    from mgfm.pose.onnx_export import build_detector, save_random_checkpoint
    from mgfm.pose.presets import PRESETS

    files = PRESETS[preset]
    out.mkdir(parents=True, exist_ok=True)
    save_random_checkpoint("pose", files["config"], out / "pose_random.pth")
    torch.manual_seed(0)
    det = build_detector(resolve_config(files["det_config"]), None)
    with torch.no_grad():
        for cls, reg in zip(det.bbox_head.rtm_cls, det.bbox_head.rtm_reg):
            cls.bias.fill_(2.0)
            reg.bias.fill_(float(np.log(4.0)) if det.bbox_head.exp_on_reg else 4.0)
    save_checkpoint({"meta": {"dataset_meta": {"classes": ("person",)}}, "state_dict": weights_to_cpu(get_state_dict(det))},
                    str(out / "detector_random.pth"))


def preset_random_models(preset: str, work: Path, flip_test: str) -> tuple[Path, Path]:
    """The preset's architectures with random weights, exported by `mgfm pose export-onnx` as the workflow does
    (cached in ``work``): (pose .onnx, detector .onnx)."""
    from mgfm.common.digest import sha256_file
    from mgfm.pose.mmpose_env import REPO, pinned_venv_python

    work.mkdir(parents=True, exist_ok=True)
    pose_onnx, det_onnx = work / f"pose_random.flip-{flip_test}.onnx", work / "detector_random.onnx"
    if not (work / "pose_random.pth").is_file() or not (work / "detector_random.pth").is_file():
        print(f"writing random-weight {preset} checkpoints in the pinned mmpose venv ...", flush=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([str(pinned_venv_python()), __file__, "--write-random-checkpoints", preset, "--work", str(work)],
                       check=True, env=env)
    for kind, ckpt, out, config_key in (("pose", "pose_random.pth", pose_onnx, "config"),
                                         ("detector", "detector_random.pth", det_onnx, "det_config")):
        if out.is_file() and out.with_suffix(".json").is_file():
            continue
        from mgfm.pose.presets import PRESETS

        print(f"exporting {kind} (mgfm pose export-onnx) ...", flush=True)
        subprocess.run([sys.executable, "-m", "mgfm", "pose", "export-onnx", "--kind", kind, "--config",
                        PRESETS[preset][config_key], "--checkpoint", str(work / ckpt), "--sha256",
                        sha256_file(work / ckpt), "--out", str(out), "--flip-test", flip_test], check=True)
    return pose_onnx, det_onnx


# ---- measurements -----------------------------------------------------------------------------------------------

def decode_only(video: Path, batch_size: int) -> float:
    """frames/s of decoding alone (the stage's reader and batches): the first bound."""
    from mgfm.pose.video_reader import VideoBatches

    t0 = time.perf_counter()
    n = sum(len(frames) for _, frames in VideoBatches(video).batches(batch_size))
    return n / (time.perf_counter() - t0)


def model_only(backend, video: Path, batch_size: int) -> float:
    """frames/s of the pose model on the video's whole-frame crops, cropped and normalised beforehand."""
    from mgfm.pose.video_reader import VideoBatches

    reader = VideoBatches(video)
    whole = np.array([0, 0, reader.width, reader.height], np.float32)
    batches = [backend.prepare(f, np.tile(whole, (len(f), 1)))[0] for _, f in reader.batches(batch_size)]
    run = backend.infer.__self__.run
    t0 = time.perf_counter()
    for x in batches:
        run(x)
    return sum(len(x) for x in batches) / (time.perf_counter() - t0)


def detector_only(detector, video: Path, batch: int = 4) -> float:
    """frames/s of the detector's network on letterboxed frames prepared beforehand (batches of ``batch``)."""
    from mgfm.pose.detection import letterbox
    from mgfm.pose.video_reader import VideoBatches

    batches = [letterbox(f, detector.spec)[0] for _, f in VideoBatches(video).batches(batch)]
    t0 = time.perf_counter()
    for x in batches:
        detector.session.run(detector.output_names, {detector.input_name: x})
    return sum(len(x) for x in batches) / (time.perf_counter() - t0)


class CountingDetector:
    """Counts the frames a detector runs on (the stage's bound with a detector depends on it)."""

    def __init__(self, detector) -> None:
        self.detector, self.frames = detector, 0

    def detect_batch(self, frames):
        self.frames += len(frames)
        return self.detector.detect_batch(frames)

    def detect(self, frame):
        return self.detect_batch(frame[None])[0]


def stage(backend, p, video: Path, out: Path) -> tuple[float, np.ndarray]:
    """frames/s of the stage (estimate_video into a Parquet file) with a loaded backend; and which frames had a
    person (the pose model ran on those)."""
    from mgfm.core.pose_store import PoseWriter, read_pose
    from mgfm.pose.video_reader import VideoBatches, read_video_meta

    reader = VideoBatches(video, threads=1)
    meta = {**backend.meta, "video_id": video.stem, "fps": float(read_video_meta(video.with_suffix(".json"))["fps"]),
            "width": reader.width, "height": reader.height, "batch_size": p.batch_size, "bbox_padding": p.bbox_padding}
    from mgfm.pose.extract import estimate_video

    t0 = time.perf_counter()
    with PoseWriter(out, meta) as writer:
        estimate_video(reader, backend, p, writer, desc="bench")
    elapsed = time.perf_counter() - t0
    return writer.n_frames / elapsed, read_pose(out).det_score > 0


def rtmlib_run(video: Path, model: Path, threads: int):
    """rtmlib's RTMPose on every frame (RGB frames: the channel order of our exports); the session is built with
    our thread count before timing."""
    import onnxruntime as ort
    from rtmlib import RTMPose

    from mgfm.ingest.video import iter_frames
    from mgfm.pose.backends.onnx_backend import read_sidecar

    side = read_sidecar(model)
    pose = RTMPose(str(model), model_input_size=tuple(side["input_size"]), mean=tuple(side["mean"]),
                   std=tuple(side["std"]), backend="onnxruntime", device="cpu")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    pose.session = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    kpts = []
    t0 = time.perf_counter()
    for _, frames in iter_frames(video, batch_size=64):
        for frame in frames:
            k, _ = pose(frame)
            kpts.append(k[0])
    return len(kpts) / (time.perf_counter() - t0), np.stack(kpts)


def peak_rss_child(video: Path, model: Path, threads: int, batch_size: int) -> float:
    """Peak RSS (MiB) of a fresh process extracting ``video``."""
    code = (
        "import resource, sys; from mgfm.pose.memory import limit_malloc_arenas; limit_malloc_arenas(); "
        "from mgfm.pose.extract import extract_pose; "
        f"extract_pose({str(video)!r}, {str(video.with_suffix('.json'))!r}, {str(video.with_suffix('.parquet'))!r}, "
        f"{{'model': {str(model)!r}, 'batch_size': {batch_size}}}, threads={threads}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    print(f"  {video.name}: {time.perf_counter() - t0:.1f}s wall", flush=True)
    return float(out.stdout.strip().splitlines()[-1])


# ---- the run ----------------------------------------------------------------------------------------------------

def _median_line(name: str, values: list[float], unit: str = "frames/s") -> float:
    med = statistics.median(values)
    print(f"{name:<34}: {med:8.2f} {unit} (median of {', '.join(f'{v:.2f}' for v in values)})")
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", help="a normalised video with its .json (default: a synthetic one, --size, --frames)")
    parser.add_argument("--size", default="320x240", help="synthetic video size WxH")
    parser.add_argument("--frames", type=int, default=500, help="synthetic video length in frames")
    parser.add_argument("--model", default=str(DEMO_MODEL))
    parser.add_argument("--detector", default="", help="an ONNX person detector (our export or mmdeploy's)")
    parser.add_argument("--preset-random", choices=("rtmw-x",), help="the preset's architectures, random weights")
    parser.add_argument("--flip-test", choices=("config", "on", "off"), default="config",
                        help="with --preset-random: the pose model's export setting")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "mgfm-bench-pose"),
                        help="with --preset-random: where the random checkpoints and their exports are kept")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the median")
    parser.add_argument("--no-rtmlib", action="store_true", help="skip the rtmlib comparison")
    parser.add_argument("--long-minutes", type=float, default=0.0, help="also measure peak RSS on a video this long")
    parser.add_argument("--write-random-checkpoints", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_random_checkpoints:  # the child run in the pinned mmpose venv
        _write_random_checkpoints(args.write_random_checkpoints, Path(args.work))
        return
    from mgfm.common.logs import setup_logging
    from mgfm.core.pose_store import read_pose
    from mgfm.pose.backends.registry import load_backend
    from mgfm.config.sections import from_partial
    from mgfm.pose.params import PoseParams

    setup_logging()
    model, detector_path = Path(args.model), args.detector
    if args.preset_random:
        model, det = preset_random_models(args.preset_random, Path(args.work), args.flip_test)
        detector_path = detector_path or str(det)
    p = from_partial(PoseParams, "pose", {"model": str(model), "batch_size": args.batch_size, "device": "cpu"})
    t0 = time.perf_counter()
    backend = load_backend(p, args.threads)
    load_s = time.perf_counter() - t0
    det_backend = det_p = None
    if detector_path:
        det_p = from_partial(PoseParams, "pose", {"model": str(model), "batch_size": args.batch_size, "device": "cpu",
                                      "detector": {"model": detector_path}})
        det_backend = load_backend(det_p, args.threads)
        det_backend.detector = CountingDetector(det_backend.detector)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        video = _pick_video(args, tmp)
        stage(backend, p, video, tmp / "warmup.parquet")  # warm caches, files and the session
        k_rtm = None
        for r in range(args.repeat):
            rows.setdefault("decode-only", []).append(decode_only(video, args.batch_size))
            rows.setdefault("model-only (pose)", []).append(model_only(backend, video, args.batch_size))
            fps, _ = stage(backend, p, video, tmp / "ours.parquet")
            rows.setdefault("stage, whole-frame boxes", []).append(fps)
            if not args.no_rtmlib:
                fps_rtm, k_rtm = rtmlib_run(video, model, args.threads)
                rows.setdefault("rtmlib 0.0.16 RTMPose, per frame", []).append(fps_rtm)
            if det_backend is not None:
                counter = det_backend.detector
                rows.setdefault("detector-only", []).append(detector_only(counter.detector, video))
                counter.frames = 0
                fps_det, present = stage(det_backend, det_p, video, tmp / "det.parquet")
                rows.setdefault("stage, detector + tracking", []).append(fps_det)
                n = len(present)
                # the bound of this run's model work: pose on the frames with a person, detector where it ran
                seconds = present.sum() / rows["model-only (pose)"][-1] + counter.frames / rows["detector-only"][-1]
                rows.setdefault("  its model-work bound", []).append(n / seconds)
                rows.setdefault("  detector frames per frame", []).append(counter.frames / n)
            print(f"round {r + 1}/{args.repeat}: " + ", ".join(f"{k.strip()} {v[-1]:.2f}" for k, v in rows.items()),
                  flush=True)
        ours = read_pose(tmp / "ours.parquet")
        n = len(ours.frame)
        print(f"\nvideo {video.name if args.video else args.size + ' synthetic'} ({n} frames), model {model.name}, "
              f"{args.threads} threads, batch {args.batch_size}, {args.repeat} rounds; model load {load_s:.1f} s "
              "(not in the stage's figure)")
        med = {k: _median_line(k, v, "" if k.strip().startswith("detector frames") else "frames/s")
               for k, v in rows.items()}
        bound = min(med["decode-only"], med["model-only (pose)"])
        print(f"stage / lower bound (whole-frame)   : {med['stage, whole-frame boxes'] / bound:.0%} "
              f"(bound: {'decoding' if med['decode-only'] < med['model-only (pose)'] else 'the model'})")
        if det_backend is not None:
            det_bound = min(med["decode-only"], med["  its model-work bound"])
            print(f"stage / lower bound (with detector) : {med['stage, detector + tracking'] / det_bound:.0%}")
        if k_rtm is not None:
            print(f"speed ratio (stage / rtmlib)        : {med['stage, whole-frame boxes'] / med['rtmlib 0.0.16 RTMPose, per frame']:.2f}x")
            diff = np.abs(ours.xy - k_rtm.astype(np.float32)).max(axis=-1)
            confident = ours.score >= 0.1
            print(f"max |stage - rtmlib| keypoints      : {diff.max():.2e} px over all, "
                  f"{diff[confident].max() if confident.any() else 0:.2e} px where score >= 0.1 "
                  f"({np.mean(diff < 1e-2):.2%} identical; the rest: near-flat SimCC vectors whose argmax flips with "
                  "last-bit input differences, rtmlib normalising in float64)")
        size = (tmp / "ours.parquet").stat().st_size
        print(f"Parquet: {size} bytes, {size / n:.0f} bytes/frame (float32 coordinates, zstd)")
        if args.long_minutes > 0:
            short = _synthetic_video(tmp / "short.mp4", 60.0)
            long = _synthetic_video(tmp / "long.mp4", args.long_minutes * 60.0)
            print(f"peak RSS (child processes, {args.long_minutes:g}-minute synthetic video vs 1 minute):")
            r_short = peak_rss_child(short, model, args.threads, args.batch_size)
            r_long = peak_rss_child(long, model, args.threads, args.batch_size)
            print(f"  1 min: {r_short:.0f} MiB, {args.long_minutes:g} min: {r_long:.0f} MiB "
                  f"(ratio {r_long / r_short:.2f})")
    print(f"benchmark process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

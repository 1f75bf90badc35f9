"""The spotting protocol beside the paper's: spot every labeled test video from its pose file (the workflow's
own pose stage output), compare with the annotations, and do the same with a class-prior baseline.

Baseline: the same windows, face gate, smoothing, NMS and validation-chosen threshold, but every visible
window gets the training class frequencies instead of the classifiers' probabilities. It shows what spotting
earns over knowing only how often each class occurs.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.config.steps import resolve_step
from mgfm.infer.bundle import load_members, load_spotter
from mgfm.infer.calibrate import prior_probs
from mgfm.infer.metrics import spotting_metrics
from mgfm.infer.run import spot_pose, versions
from mgfm.infer.spotting import proposals

log = logging.getLogger("mgfm.infer")


def fusion_label(spotter: dict) -> str:
    """What was fused, as the tables name it: "Skele" (skeleton streams) or "Skele+RGB"."""
    mods = {m["modality"] for m in spotter["members"]}
    return "+".join(label for mod, label in (("skeleton", "Skele"), ("rgb", "RGB")) if mod in mods)


def evaluate_spotting(models_dir: str | os.PathLike, manifest: str, annotations: str, pose_dir: str | os.PathLike,
                      videos_dir: str | os.PathLike | None, out_dir: str | os.PathLike, metrics_out: str | os.PathLike,
                      params: dict) -> dict:
    """Spot the labeled test videos into ``out_dir`` and write the metrics (ours and the baseline)."""
    from mgfm.common.logs import Progress
    from mgfm.data.contract import load_annotations, load_manifest
    from mgfm.eval.results import git_revision, write_json

    params = resolve_step("infer_spot", params)
    spotter = load_spotter(models_dir)
    members = load_members(models_dir, spotter)
    man = load_manifest(manifest, labels=False)     # the manifest or its label-free view: no outcome is read
    ann = load_annotations(annotations, man)
    test = man.loc[(man["subset"] == "labeled") & (man["split"] == "test"), "video_id"].tolist()
    leak = sorted(set(test) & set(spotter["validation_videos"]))
    if leak:
        raise ValueError(f"{models_dir}/spotter.json: validation videos {leak} are test videos of {manifest}")
    bs = int(params["batch_size"])
    ours, base, empty = [], [], []
    video_s, model_s = 0.0, 0.0
    bar = Progress(len(test), "spotting test videos", unit="videos", logger=log)
    for vid in test:
        pose = Path(pose_dir) / f"{vid}.parquet"
        video = Path(videos_dir) / f"{vid}.mp4" if videos_dir else None
        t0 = time.perf_counter()
        sc, props, inst, meta = spot_pose(vid, pose, models_dir, spotter, members, out_dir, bs,
                                      str(video) if video and video.is_file() else None)
        model_s += time.perf_counter() - t0
        video_s += meta["duration_s"]
        if meta["reason"]:
            empty.append({"video_id": vid, "reason": meta["reason"]})
        ours.append((props.assign(video_id=vid), inst.assign(video_id=vid)))
        if not meta["reason"]:
            bp = proposals(prior_probs(sc.probs, sc.windows.visible, np.asarray(spotter["class_prior"])),
                           sc.windows, spotter["merge"]).assign(video_id=vid)
            base.append((bp, bp[bp["confidence"] >= spotter["baseline"]["threshold"]]))
        bar.update()
    bar.close()
    gt = ann[ann["video_id"].isin(test)]
    tious = spotter["tious"]
    cat = lambda pairs, i: pd.concat([p[i] for p in pairs], ignore_index=True) if pairs else \
        pd.DataFrame(columns=["video_id", "start_frame", "end_frame", "class_id", "confidence"])  # noqa: E731
    names = spotter["class_names"]
    result = {
        "protocol": "spotting", "n_test_videos": len(test), "n_gt": int(len(gt)), "tious": tious,
        "ours": spotting_metrics(cat(ours, 1), cat(ours, 0), gt, tious, names),
        "class_prior_baseline": spotting_metrics(cat(base, 1), cat(base, 0), gt, tious, names),
        "threshold": spotter["threshold"], "baseline_threshold": spotter["baseline"]["threshold"],
        "validation": spotter["calibration"], "validation_videos": spotter["validation_videos"],
        "window_frames": spotter["window_frames"], "stride_frames": spotter["stride_frames"],
        "members": [m["name"] for m in spotter["members"]], "weights": spotter["weights"],
        "modalities": sorted({m["modality"] for m in spotter["members"]}), "fusion": fusion_label(spotter),
        "empty_videos": empty, "real_time_factor_model": video_s / max(model_s, 1e-9),
        "anchor": {"what": "best published online-recognition F1 on iMiGUE (MiGA challenge, 2025)", "f1": 38.03,
                   "status": "cited, not reproduced"},
        "versions": versions(), "git_revision": git_revision(),
    }
    write_json(metrics_out, result)
    o, b = result["ours"]["tiou"], result["class_prior_baseline"]["tiou"]
    log.info("spotting (%s: %s) on %d test videos: F1 %s (class-prior baseline %s), mAP %.1f (%.1f); model real-time "
             "factor %.1f", result["fusion"], "+".join(result["members"]), len(test), {t: round(o[t]["f1"], 1) for t in o}, {t: round(b[t]["f1"], 1) for t in b},
             result["ours"]["map_mean"], result["class_prior_baseline"]["map_mean"], result["real_time_factor_model"])
    return result

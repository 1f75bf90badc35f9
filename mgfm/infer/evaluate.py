"""The spotting protocol beside the paper's: spot every labeled test video from its pose file (the workflow's
own pose stage output), compare with the annotations, and do the same with a class-prior baseline.

Baseline: the same windows, face gate, smoothing, NMS and validation-chosen threshold, but every visible
window gets the training class frequencies instead of the classifiers' probabilities. It shows what spotting
earns over knowing only how often each class occurs. Its proposals of one class share one confidence, so any
ranking of them is arbitrary and a single order would decide its mAP (and, through one-to-one matching, its
F1): its figures are the means over ``BASELINE_TIE_ORDERS`` random orders of the tied proposals, seeded from the
spotter's seed, with their spread. Real scores would make it another baseline, one that knows more than the
class frequencies.

Metrics and scorers: ``mgfm.infer.metrics`` (ActivityNet's evaluation by default, the SMG / MiGA start kit's
rule with ``infer.evaluate.scorer: smg``).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.seeding import derive_seed
from mgfm.config.steps import resolve_step
from mgfm.infer.bundle import BundleError, load_members, load_spotter
from mgfm.infer.calibrate import prior_probs
from mgfm.infer.metrics import ACTIVITYNET_TIOUS, THUMOS_TIOUS, spotting_metrics, tie_order_metrics
from mgfm.infer.run import spot_pose, versions
from mgfm.infer.spotting import proposals

log = logging.getLogger("mgfm.infer")
#: Random orders of the class-prior baseline's tied proposals that its figures average over.
BASELINE_TIE_ORDERS = 100


def fusion_label(spotter: dict) -> str:
    """What was fused, as the tables name it: "Skele" (skeleton streams) or "Skele+RGB"."""
    mods = {m["modality"] for m in spotter["members"]}
    return "+".join(label for mod, label in (("skeleton", "Skele"), ("rgb", "RGB")) if mod in mods)


def evaluate_spotting(models_dir: str | os.PathLike, manifest: str, annotations: str, pose_dir: str | os.PathLike,
                      videos_dir: str | os.PathLike | None, out_dir: str | os.PathLike, metrics_out: str | os.PathLike,
                      params: dict) -> dict:
    """Spot the labeled test videos into ``out_dir`` and write the metrics (ours and the baseline)."""
    from mgfm.common.logs import Progress
    from mgfm.ingest.contract import load_annotations, load_manifest
    from mgfm.common.revision import git_revision
    from mgfm.eval.results import write_json

    params = resolve_step("infer_spot", params)
    spotter = load_spotter(models_dir)
    missing = [k for k in ("scorer", "seed") if k not in spotter]
    if missing:
        raise BundleError(f"{Path(models_dir) / 'spotter.json'}: no {' or '.join(missing)} (written by an older "
                          "infer_calibrate); rerun the workflow's infer_calibrate rule")
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
                                          str(video) if video and video.is_file() else None,
                                          truth=ann[ann["video_id"] == vid])
        model_s += time.perf_counter() - t0
        video_s += meta["duration_s"]
        if meta["reason"]:
            empty.append({"video_id": vid, "reason": meta["reason"]})
        ours.append((props.assign(video_id=vid), inst.assign(video_id=vid)))
        if not meta["reason"]:
            bp = proposals(prior_probs(sc.probs, sc.windows.visible, np.asarray(spotter["class_prior"])),
                           sc.windows, spotter["merge"]).assign(video_id=vid)
            base.append(bp)
        bar.update()
    bar.close()
    gt = ann[ann["video_id"].isin(test)]
    tious = spotter["tious"]
    cat = lambda pairs, i: pd.concat([p[i] for p in pairs], ignore_index=True) if pairs else \
        pd.DataFrame(columns=["video_id", "start_frame", "end_frame", "class_id", "confidence"])  # noqa: E731
    names, scorer = spotter["class_names"], spotter["scorer"]
    ours_metrics = spotting_metrics(cat(ours, 1), cat(ours, 0), gt, tious, names, scorer)
    exclusive = spotting_metrics(cat(ours, 1), cat(ours, 0), gt, tious, names, scorer, inclusive=False)
    ours_metrics["exclusive_ends"] = {"f1": {t: r["f1"] for t, r in exclusive["tiou"].items()},
                                      **{k: exclusive[k] for k in ("map_mean", "map_activitynet", "map_thumos")}}
    base_ranked = pd.concat(base, ignore_index=True) if base else cat([], 0)
    seed = derive_seed(int(spotter["seed"]), "spotting", "class_prior_baseline", "tie_orders")
    result = {
        "protocol": "spotting", "n_test_videos": len(test), "n_gt": int(len(gt)), "tious": tious,
        "scorer": scorer, "frames": "inclusive: an instance s..e is [s, e + 1), e - s + 1 frames long",
        "map_averages": {"activitynet": list(ACTIVITYNET_TIOUS), "thumos": list(THUMOS_TIOUS)},
        "ours": ours_metrics,
        "class_prior_baseline": tie_order_metrics(base_ranked, spotter["baseline"]["threshold"], gt, tious, names,
                                                  scorer, BASELINE_TIE_ORDERS, seed),
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
    log.info("%s; model real-time factor %.1f", spotting_summary(result), result["real_time_factor_model"])
    return result


def spotting_summary(result: dict) -> str:
    """One line of the headline numbers: ours, then the class-prior baseline (mean ± sd over its tie orders)."""
    o, b = result["ours"], result["class_prior_baseline"]
    spread = b["tie_orders"]

    def maps(m: dict, sd: dict | None = None) -> str:
        parts = []
        for key, what in (("map_mean", "mAP"), ("map_activitynet", "mAP@0.5:0.95"), ("map_thumos", "mAP@0.3:0.7")):
            parts.append(f"{what} {m[key]:.1f}" + (f" ± {sd[key]['sd']:.1f}" if sd else ""))
        return ", ".join(parts)

    f1 = lambda m: " / ".join(f"{m['tiou'][t]['f1']:.1f}" for t in m["tiou"])  # noqa: E731
    return (f"spotting ({result['fusion']}: {'+'.join(result['members'])}) on {result['n_test_videos']} test videos, "
            f"{result['scorer']} scorer: F1@{'/'.join(o['tiou'])} {f1(o)}, {maps(o)}; class-prior baseline "
            f"(mean of {spread['n_orders']} tie orders) F1 {f1(b)}, {maps(b, spread)}")

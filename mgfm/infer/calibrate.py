"""The spotter description: window lengths from the training duration prior, fusion weights from the ensemble
protocol, and the confidence threshold chosen on the classifiers' validation videos (never on test).

Threshold choice: all proposals of the validation videos (``mgfm.infer.spotting.proposals``) are scored once
per tIoU by the evaluation's scorer (``infer.evaluate.scorer``, ``mgfm.infer.metrics``): one-to-one matching in
confidence order never changes a higher-confidence match when lower ones are dropped, and the SMG rule finds an
instance once the best proposal that finds it is kept, so the hits at any threshold are counted from one pass
and every candidate threshold is scored exactly. The chosen one maximises the mean F1 over
``infer.evaluate.tious``; ties keep the higher threshold. The class-prior baseline gets its own threshold the
same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.config.steps import resolve_step
from mgfm.core.layout import LAYOUT_NAME, UPPER_BODY
from mgfm.config import resolve
from mgfm.eval.export import write_json
from mgfm.infer.bundle import (CLASSIFIER_NAME, SPOTTER_FORMAT, SPOTTER_NAME, BundleError, classifier_dir,
                               load_members, read_emotion_info, read_json)
from mgfm.infer.integrity import bundle_files, pose_model_digests, record_digests
from mgfm.infer.metrics import check_scorer, cumulative_hits, f1_score
from mgfm.infer.spotting import proposals
from mgfm.infer.windows import window_lengths

log = logging.getLogger("mgfm.infer")


def prior_probs(probs: np.ndarray, visible: np.ndarray, class_prior: np.ndarray) -> np.ndarray:
    """The class-prior baseline's window probabilities: the training class frequencies on every visible window."""
    return np.broadcast_to(np.where(visible[:, None], class_prior[None, :], 0.0), probs.shape).copy()


def choose_threshold(props: pd.DataFrame, gt: pd.DataFrame, tious: list[float],
                     scorer: str = "activitynet") -> dict:
    """The threshold maximising mean F1 (by ``scorer``) over ``tious`` on ``props`` (all videos, column
    video_id) vs ``gt``."""
    sorted_conf, cum = cumulative_hits(props, gt, tious, check_scorer(scorer))
    n = len(sorted_conf)
    # candidate cut after proposal i (keep the first i+1); only where the next confidence is lower
    last_of_value = np.append(sorted_conf[1:] < sorted_conf[:-1], True) if n else np.zeros(0, bool)
    best = {"threshold": float(sorted_conf[0] + 1e-6) if n else 1.0, "f1": 0.0}
    n_gt = len(gt)
    f1 = 100 * f1_score(cum / np.arange(1, n + 1), cum / max(n_gt, 1), scorer).mean(axis=0) if n else np.zeros(0)
    for i in np.flatnonzero(last_of_value):
        if f1[i] > best["f1"] + 1e-12:
            best = {"threshold": float(sorted_conf[i]), "f1": float(f1[i]), "n_kept": int(i + 1)}
    best["n_proposals"], best["n_gt"], best["scorer"] = int(n), int(n_gt), scorer
    return best


def spotter_hash(spotter: dict) -> str:
    """sha256 of the spotter description (what decides every output), recorded in each video's JSON."""
    return hashlib.sha256(json.dumps(spotter, sort_keys=True).encode()).hexdigest()


def fusion_weights(ensemble_metrics: str, seed: int, names: list[str], modality_of: dict[str, str]) -> dict:
    """The ensemble protocol's weights for ``seed``: the skeleton streams' (``weights``) when every member is a
    skeleton stream, the Skele+RGB fusion's (``weights_multimodal``) when an RGB member is in."""
    ens = read_json(ensemble_metrics, "ensemble metrics")
    key = "weights" if set(modality_of.values()) == {"skeleton"} else "weights_multimodal"
    used = dict(zip(ens["seeds"], ens.get(key) or []))
    w = used.get(seed)
    if w is None or set(w) != set(names):
        raise BundleError(f"{ensemble_metrics}: no {key} for seed {seed} over members {sorted(names)} "
                          f"(has seeds {ens['seeds']}, members {ens.get('members')}, "
                          f"{key} for {len(ens.get(key) or [])} seeds)")
    return {n: float(w[n]) for n in names}


def build_spotter(models_dir: str | os.PathLike, members: list[tuple[str, str, str]], ensemble_metrics: str | None,
                  manifest: str, annotations: str, pose_dir: str | os.PathLike, params: dict, tau: float,
                  pose_params: dict, download_params: dict, fps: float,
                  videos_dir: str | os.PathLike | None = None, dataset: str | None = None,
                  demo: bool = False) -> dict:
    """Write ``models_dir/spotter.json``; ``members``: (name, modality, stream) of the fine-tuned classifiers
    (at least one skeleton stream; RGB members read the validation videos' frames from ``videos_dir``).
    ``dataset``: what the models were trained on (the run's dataset label), named on every page; ``demo``:
    whether that is the synthetic demo corpus."""
    from mgfm.ingest.contract import load_annotations, load_manifest
    from mgfm.infer.score import score_video

    params = resolve_step("infer_calibrate", params)
    infos = {}
    for name, modality, stream in members:
        infos[name] = read_json(classifier_dir(models_dir, modality, stream) / CLASSIFIER_NAME, "classifier")
    modality_of = {n: m for n, m, _ in members}
    skeleton = [n for n in infos if modality_of[n] == "skeleton"]
    if not skeleton:
        raise BundleError(f"members {sorted(infos)}: spotting needs a skeleton stream (its clip settings, face "
                          "test and class prior); config key eval.modalities")
    first = infos[skeleton[0]]
    for name, info in infos.items():
        if info["validation_videos"] != first["validation_videos"] or info["class_names"] != first["class_names"]:
            raise BundleError(f"classifier {name!r}: other validation videos or classes than {members[0][0]!r}; "
                              "train every member with the same eval.seeds and eval.validation")
    weights = {n: 1.0 for n in infos}
    if ensemble_metrics:
        weights = fusion_weights(ensemble_metrics, first["seed"], list(infos), modality_of)
    rgb = [n for n in infos if modality_of[n] == "rgb"]
    if rgb and videos_dir is None:
        raise BundleError(f"RGB member {rgb[0]!r}: calibration reads the validation videos' frames; give the "
                          "normalised videos folder (--videos-dir)")
    man = load_manifest(manifest, labels=False)     # the manifest or its label-free view: no outcome is read
    ann = load_annotations(annotations, man)
    train_ann = ann[ann["video_id"].isin(first["train_videos"])]
    prior_s = ((train_ann["end_frame"] - train_ann["start_frame"] + 1) / fps).to_numpy()
    lengths = window_lengths(prior_s, params["windows"]["quantiles"], fps)
    counts = np.asarray(first["class_counts"], np.float64)
    spotter = {
        "format": SPOTTER_FORMAT, "layout": LAYOUT_NAME, "joints": list(UPPER_BODY),
        "class_names": first["class_names"], "class_prior": (counts / counts.sum()).tolist(),
        "members": [{"name": n, "modality": m, "stream": s} for n, m, s in members], "weights": weights,
        "fps": fps, "window_frames": lengths, "window_quantiles": params["windows"]["quantiles"],
        "stride_frames": max(1, int(round(params["windows"]["stride_s"] * fps))),
        "min_visible": params["windows"]["min_visible"], "tau": tau, "merge": params["merge"],
        "clip_params": first["clip_params"], "pose": pose_params, "download": download_params,
        "validation_videos": first["validation_videos"], "tious": params["evaluate"]["tious"],
        "scorer": params["evaluate"]["scorer"], "seed": first["seed"],
        "modalities": sorted(set(modality_of.values())),
        "trained_on": {"dataset": dataset or "not recorded", "demo": bool(demo)},
    }
    if rgb:
        spotter["rgb_clip_params"] = infos[rgb[0]]["clip_params"]
    loaded = load_members(models_dir, {**spotter, "members": spotter["members"]})
    props, base = [], []
    for vid in first["validation_videos"]:
        video = Path(videos_dir) / f"{vid}.mp4" if videos_dir is not None else None
        sc = score_video(vid, Path(pose_dir) / f"{vid}.parquet", spotter, loaded, int(params["batch_size"]), video)
        if sc.reason:
            log.warning("validation video %s: %s", vid, sc.reason)
            continue
        props.append(proposals(sc.probs, sc.windows, params["merge"]).assign(video_id=vid))
        bp = prior_probs(sc.probs, sc.windows.visible, np.asarray(spotter["class_prior"]))
        base.append(proposals(bp, sc.windows, params["merge"]).assign(video_id=vid))
    if not first["validation_videos"]:
        raise ValueError("no validation video: the classifiers hold out no validation subject (config key "
                         "eval.validation.fraction is 0, or the training split has one subject), and the threshold "
                         "is chosen on validation videos only")
    if not props:
        raise ValueError(f"no validation video ({', '.join(first['validation_videos'])}) has a visible person "
                         f"(face anchors >= tau {tau} on {100 * params['windows']['min_visible']:.0f}% of a window's "
                         "frames): cannot choose a threshold. Likely cause: a pose model that does not fit these "
                         "videos (the demo pose model on real faces)")
    gt = ann[ann["video_id"].isin(first["validation_videos"])]
    tious = params["evaluate"]["tious"]
    scorer = spotter["scorer"]
    spotter["calibration"] = choose_threshold(pd.concat(props, ignore_index=True), gt, tious, scorer)
    spotter["threshold"] = spotter["calibration"]["threshold"]
    spotter["baseline"] = choose_threshold(pd.concat(base, ignore_index=True), gt, tious, scorer)
    # what ties the bundle together: every file inference loads, and the pose model the keypoints came from
    encoders = read_emotion_info(models_dir)["encoders"].values()
    spotter["digests"] = record_digests(models_dir, bundle_files(spotter["members"], encoders))
    try:
        spotter["pose_models"] = pose_model_digests(resolve("pose", pose_params))
    except FileNotFoundError as err:
        raise BundleError(f"--pose: {err}") from None
    write_json(Path(models_dir) / SPOTTER_NAME, spotter)
    log.info("spotter: windows %s frames, stride %d, threshold %.3f (validation mean F1 %.1f on %d videos), "
             "class-prior baseline %.1f", lengths, spotter["stride_frames"], spotter["threshold"],
             spotter["calibration"]["f1"], len(props), spotter["baseline"]["f1"])
    return spotter

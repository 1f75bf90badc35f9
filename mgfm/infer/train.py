"""The models inference needs that the paper's protocols do not keep: one fine-tuned classifier per stream (every
evaluated modality: the skeleton streams and the RGB encoder) and
the emotion aggregator, each written as safetensors + JSON into the models folder.

The classifier is the ``finetune`` protocol's model of the first configured seed (same training code, data,
validation hold-out and seed as ``eval_finetune``'s first seed), trained once more here because the protocol
keeps only scores; its validation subjects' videos are recorded so thresholds are chosen on them, never on test.
The emotion aggregator is the emotion protocol's model (``mgfm.eval.emotion``) trained on every labeled train
video's sampled-clip features.
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from mgfm.common.atomic import atomic_path
from mgfm.common.seeding import derive_seed
from mgfm.config.steps import resolve_step
from mgfm.core.layout import LAYOUT_NAME, UPPER_BODY
from mgfm.infer.bundle import (CLASSIFIER_FORMAT, CLASSIFIER_NAME, HEAD_NAME, emotion_dir, save_head,
                               write_json)

log = logging.getLogger("mgfm.infer")


def export_classifier(model_dir: str, train_data: str, test_data: str, taxonomy: str, params: dict,
                      out_dir: str, global_seed: int = 0, device: str | None = None) -> dict:
    """Fine-tune ``model_dir``'s encoder (``finetune`` protocol, first seed) and save it to ``out_dir``."""
    from mgfm.core.packed import read_info
    from mgfm.eval.splits import class_names_of, num_classes_of, validation_rows
    from mgfm.eval.finetune import build_classifier, finetune_once
    from mgfm.models.artifact import read_card, save_encoder
    from mgfm.train.encoder_inputs import open_clips

    params = copy.deepcopy(resolve_step("infer_classifier", params))
    params["finetune"]["keep_checkpoints"] = True        # the model is read back from the last checkpoint
    seed = int(params["seeds"][0])
    k = num_classes_of(taxonomy)
    out = Path(out_dir)
    run_dir = out.parent / f".{out.name}.run"
    result = finetune_once("finetune", model_dir, train_data, test_data, k, params, run_dir, seed, global_seed,
                           device)
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    card = read_card(model_dir)
    # the architecture the protocol trained (for the RGB encoder SMILE's fine-tuning model), then its weights
    model, _, _ = build_classifier("finetune", model_dir, card, k, params["finetune"], load_weights=False)
    model.load_state_dict({key.removeprefix("module."): v for key, v in state.items()}, strict=True)
    train_meta = open_clips(train_data, card, larger=True).meta        # skeleton or RGB clips
    val = validation_rows(train_meta, float(params["validation"]["fraction"]), derive_seed(global_seed, "eval", seed))
    skel = read_info(train_data)
    info = {"format": CLASSIFIER_FORMAT, "modality": card.get("modality", "skeleton"), "stream": card["stream"],
            "num_classes": k, "class_names": class_names_of(taxonomy), "layout": LAYOUT_NAME,
            "joints": list(skel.get("joints", UPPER_BODY)), "clip_params": skel.get("params", {}),
            "protocol": "finetune", "seed": seed, "pretrained": str(model_dir), "train_data": str(train_data),
            "validation_videos": sorted(train_meta.loc[val, "video_id"].astype(str).unique()),
            "train_videos": sorted(train_meta.loc[~val, "video_id"].astype(str).unique()),
            "class_counts": np.bincount(train_meta.loc[~val, "label"].to_numpy().astype(int), minlength=k).tolist(),
            "last_epoch": result["summary"]["last"] if result else None}
    out.mkdir(parents=True, exist_ok=True)
    save_encoder(out, model.encoder, model.encoder.card)
    save_head(out / HEAD_NAME, model.head)
    write_json(out / CLASSIFIER_NAME, info)
    shutil.rmtree(run_dir, ignore_errors=True)
    log.info("classifier %s/%s: %d classes, %d validation videos, saved to %s", info["modality"], info["stream"],
             k, len(info["validation_videos"]), out)
    return info


def export_emotion(members: dict[str, str], encoders: dict[str, str], manifest: str, params: dict,
                   models_dir: str, global_seed: int = 0) -> dict:
    """Train the emotion aggregator on all labeled train videos (``members``: name -> video_clips features)."""
    from mgfm.ingest.contract import load_manifest
    from mgfm.eval.emotion import OUTCOME_LABEL, EmotionConfig, build_sequences, clip_table, train_aggregator

    params = resolve_step("infer_emotion", params)
    cfg = EmotionConfig.from_section(params["emotion"])
    man = load_manifest(manifest).set_index("video_id")
    meta, x = clip_table(members)
    seq = build_sequences(meta, x, cfg.max_clips)
    tr = seq.split == "train"
    if not tr.any():
        raise ValueError(f"{list(members.values())[0]}: no train video has clips; the emotion model needs some")
    y = np.array([OUTCOME_LABEL[man.loc[v, "outcome"]] for v in seq.video_id[tr]], dtype=np.int64)
    mean = np.zeros(x.shape[1], np.float32)
    std = np.ones(x.shape[1], np.float32)
    xs = seq.x[tr]
    if cfg.feature_norm == "standardize":
        valid = xs[seq.mask[tr]]
        mean, std = valid.mean(0), valid.std(0) + 1e-6
        xs = np.where(seq.mask[tr][..., None], (xs - mean) / std, 0.0).astype(np.float32)
    seed = int(params["seeds"][0])
    model = train_aggregator(xs, seq.mask[tr], y, cfg, derive_seed(global_seed, "eval", "emotion", seed))
    out = emotion_dir(models_dir)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    state["feature_mean"], state["feature_std"] = torch.from_numpy(mean), torch.from_numpy(std)
    with atomic_path(out / "aggregator.safetensors") as tmp:
        save_file(state, str(tmp))
    info = {"members": list(members), "encoders": dict(encoders), "config": cfg.__dict__, "dim": int(x.shape[1]),
            "n_train_videos": int(tr.sum()), "train_counts": {"lose": int((y == 0).sum()), "win": int((y == 1).sum())},
            "seed": seed}
    write_json(out / "emotion.json", info)
    return info

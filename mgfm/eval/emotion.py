"""MG-based emotion recognition (paper Table XIII): win/lose of a labeled video from its clips' frozen features.

The paper's model reads two frozen foundation models: MG-FM-Skele, here the encoder(s) of
``eval.emotion.skeleton_streams`` (the joint stream by default; all three streams give the four-encoder
variant), and MG-FM-RGB. Per video, the features of its sampled clips (``video_clips`` tables; the members
given are concatenated per clip) are ordered by start frame, padded to ``max_clips`` with a boolean attention mask
(videos with more clips keep ``max_clips`` evenly spaced ones), and one lightweight aggregator maps the
sequence to two logits: ``mean`` (masked mean, then a linear layer) or ``attention`` (a learned score per
clip, masked softmax pooling, then a linear layer). The classes are imbalanced (paper train 199 win / 49
lose), so the cross-entropy is class-weighted (n / (2 n_c)) and accuracy, balanced accuracy and macro-F1
are reported.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mgfm.common.seeding import derive_seed
from mgfm.config.sections import section_values
from mgfm.config.steps import resolve_step
from mgfm.core.feature_store import read_features

log = logging.getLogger(__name__)
OUTCOME_LABEL = {"lose": 0, "win": 1}
AGGREGATORS = ("mean", "attention")


@dataclass(frozen=True)
class EmotionConfig:
    """``eval.emotion``, resolved by mgfm.config (defaults live in the eval schema only)."""

    skeleton_streams: tuple[str, ...]
    max_clips: int
    aggregator: str
    epochs: int
    lr: float
    weight_decay: float
    feature_norm: str

    def __post_init__(self) -> None:
        if self.aggregator not in AGGREGATORS:
            raise ValueError(f"config key eval.emotion.aggregator must be one of {AGGREGATORS}, got {self.aggregator!r}")
        if self.max_clips < 1 or self.epochs < 1:
            raise ValueError("config key eval.emotion: max_clips and epochs must be >= 1")
        if self.feature_norm not in ("none", "standardize"):
            raise ValueError(f"config key eval.emotion.feature_norm must be none or standardize, got {self.feature_norm!r}")

    @classmethod
    def from_section(cls, p: dict) -> EmotionConfig:
        """From the resolved ``eval.emotion`` block; a missing or unknown key is an error naming it."""
        section = section_values(cls, p, "eval.emotion")
        return cls(**{**section, "skeleton_streams": tuple(section["skeleton_streams"])})


@dataclass
class Sequences:
    video_id: np.ndarray    # (Nv,)
    split: np.ndarray       # (Nv,) train | test
    x: np.ndarray           # (Nv, L, D) float32, zero where masked
    mask: np.ndarray        # (Nv, L) bool, True = a real clip
    n_clips: np.ndarray     # (Nv,) clips before truncation


def clip_table(paths: dict[str, str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Concatenate members' clip features on clip_id (every member must list the same clips)."""
    meta0, feats = None, []
    for name, path in paths.items():
        meta, x = read_features(path)
        if meta0 is None:
            meta0, order = meta, np.arange(len(meta))
        else:
            pos = pd.Series(np.arange(len(meta)), index=meta["clip_id"].to_numpy())
            if len(meta) != len(meta0) or not pos.index.is_unique or not set(pos.index) == set(meta0["clip_id"]):
                raise ValueError(f"{path}: member {name!r} lists other clips than {list(paths)[0]!r}; "
                                 "extract every member from the same video_clips dataset")
            order = pos.loc[meta0["clip_id"].to_numpy()].to_numpy()
        feats.append(x[order])
    return meta0.reset_index(drop=True), np.concatenate(feats, axis=1)


def build_sequences(meta: pd.DataFrame, x: np.ndarray, max_clips: int) -> Sequences:
    """Group clips by video (ordered by start_frame), keep at most ``max_clips`` evenly spaced, pad + mask."""
    meta = meta.assign(_row=np.arange(len(meta))).sort_values(["video_id", "start_frame", "clip_id"])
    vids, splits, seqs, masks, counts = [], [], [], [], []
    d = x.shape[1]
    for vid, group in meta.groupby("video_id", sort=True):
        rows = group["_row"].to_numpy()
        sp = group["split"].astype(str).unique()
        if len(sp) != 1 or sp[0] not in ("train", "test"):
            raise ValueError(f"video_clips: video {vid!r} has split(s) {list(sp)}; expected one of train/test")
        counts.append(len(rows))
        if len(rows) > max_clips:
            rows = rows[np.linspace(0, len(rows) - 1, max_clips).round().astype(int)]
        seq = np.zeros((max_clips, d), dtype=np.float32)
        seq[:len(rows)] = x[rows]
        m = np.zeros(max_clips, dtype=bool)
        m[:len(rows)] = True
        vids.append(vid), splits.append(sp[0]), seqs.append(seq), masks.append(m)
    if not vids:
        raise ValueError("video_clips: no clips")
    return Sequences(np.array(vids), np.array(splits), np.stack(seqs), np.stack(masks), np.array(counts))


class MeanAggregator(nn.Module):
    """Masked mean over clips, then a linear layer."""

    def __init__(self, dim: int, classes: int = 2) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)
        return self.fc((x * m).sum(1) / m.sum(1).clamp_min(1.0))


class AttentionAggregator(nn.Module):
    """One learned relevance score per clip, masked softmax pooling, then a linear layer."""

    def __init__(self, dim: int, classes: int = 2) -> None:
        super().__init__()
        self.score = nn.Linear(dim, 1)
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.score(x).squeeze(-1).masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, dim=1).nan_to_num(0.0)     # a video without clips pools to zeros
        return self.fc((a.unsqueeze(-1) * x).sum(1))


def class_weights(y: np.ndarray, classes: int = 2) -> np.ndarray:
    """n / (classes * n_c); a class absent from training gets weight 0 (it cannot be learned)."""
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (classes * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


def train_aggregator(x: np.ndarray, mask: np.ndarray, y: np.ndarray, cfg: EmotionConfig, seed: int) -> nn.Module:
    """Full-batch Adam on the training videos (a few hundred sequences at most)."""
    torch.manual_seed(derive_seed(seed, "emotion", "init"))
    model = (MeanAggregator if cfg.aggregator == "mean" else AttentionAggregator)(x.shape[2])
    xt, mt, yt = torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(y)
    loss_fn = nn.CrossEntropyLoss(weight=torch.from_numpy(class_weights(y)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    for epoch in range(cfg.epochs):
        loss = loss_fn(model(xt, mt), yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not torch.isfinite(loss):
            raise RuntimeError(f"emotion: loss is not finite at epoch {epoch + 1}; lower eval.emotion.lr")
    return model.eval()


def feature_scaling(x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std + 1e-6) per feature over the real clips (``mask``) of the training videos' sequences ``x``."""
    valid = x[mask]
    return valid.mean(0), valid.std(0) + 1e-6


def binary_metrics(pred: np.ndarray, y: np.ndarray) -> dict:
    from mgfm.eval.metrics import balanced_accuracy, macro_f1

    return {"accuracy": float(100.0 * np.mean(pred == y)), "balanced_accuracy": balanced_accuracy(pred, y, 2),
            "macro_f1": macro_f1(pred, y, 2)}


def run_emotion(members: dict[str, str], manifest: str, params: dict, out_dir: str, global_seed: int = 0) -> dict:
    """Emotion recognition from ``members`` ({"skeleton/joint": video_clips table, ...}); writes metrics.json."""
    from mgfm.ingest.contract import load_manifest
    from mgfm.eval.splits import check_disjoint
    from mgfm.common.revision import git_revision
    from mgfm.eval.results import fold_seeds, write_json

    params = resolve_step("eval_emotion", params)
    cfg = EmotionConfig.from_section(params["emotion"])
    seeds = [int(s) for s in params["seeds"]]
    man = load_manifest(manifest).set_index("video_id")
    meta, x = clip_table(members)
    seq = build_sequences(meta, x, cfg.max_clips)
    unknown = [v for v in seq.video_id if v not in man.index]
    if unknown:
        raise ValueError(f"{manifest}: video_clips videos {unknown[:5]} are not in the manifest")
    y = np.array([OUTCOME_LABEL[man.loc[v, "outcome"]] for v in seq.video_id], dtype=np.int64)
    wrong = [v for v, s in zip(seq.video_id, seq.split) if man.loc[v, "split"] != s]
    if wrong:
        raise ValueError(f"{manifest}: split of videos {wrong[:5]} differs between the manifest and video_clips")
    tr, te = seq.split == "train", seq.split == "test"
    if not tr.any() or not te.any():
        raise ValueError(f"emotion: need train and test videos with clips, got {int(tr.sum())} train, {int(te.sum())} test")
    subj = man.loc[seq.video_id, "subject_id"].to_numpy()
    check_disjoint(pd.DataFrame({"subject_id": subj[tr]}), pd.DataFrame({"subject_id": subj[te]}))
    xs = seq.x.copy()
    if cfg.feature_norm == "standardize":
        mean, std = feature_scaling(seq.x[tr], seq.mask[tr])
        xs = np.where(seq.mask[..., None], (seq.x - mean) / std, 0.0).astype(np.float32)
    per_seed = []
    for seed in seeds:
        model = train_aggregator(xs[tr], seq.mask[tr], y[tr], cfg, derive_seed(global_seed, "eval", "emotion", seed))
        with torch.inference_mode():
            logits = model(torch.from_numpy(xs[te]), torch.from_numpy(seq.mask[te])).numpy()
        per_seed.append(binary_metrics(logits.argmax(1), y[te]))
    yt = y[te]
    result = {
        "protocol": "emotion", "members": list(members), "config": asdict(cfg), "seeds": seeds, "n_seeds": len(seeds),
        "n_train_videos": int(tr.sum()), "n_test_videos": int(te.sum()),
        "train_counts": {"lose": int((y[tr] == 0).sum()), "win": int((y[tr] == 1).sum())},
        "test_counts": {"lose": int((yt == 0).sum()), "win": int((yt == 1).sum())},
        "majority_accuracy": float(100.0 * max(np.mean(yt == 0), np.mean(yt == 1))),
        "clips_per_video": {"min": int(seq.n_clips.min()), "max": int(seq.n_clips.max()),
                            "mean": float(seq.n_clips.mean())},
        "units": "percent", "results": fold_seeds(per_seed), "per_seed": per_seed,
        "inputs": dict(members), "git_revision": git_revision(),
    }
    write_json(Path(out_dir) / "metrics.json", result)
    log.info("emotion: %s", {k: round(v["mean"], 2) for k, v in result["results"].items()})
    return result


def export_emotion_model(members: dict[str, str], encoders: dict[str, str], manifest: str, params: dict,
                         out_dir: str, global_seed: int = 0) -> dict:
    """The emotion aggregator inference applies to spotted windows (``mgfm.infer.score``), into ``out_dir``
    (``results/models/emotion``): trained as the protocol trains its first seed, on every labeled train video's
    clip features of ``members`` (name -> video_clips table; the skeleton encoders only, since windows have no
    RGB features, so it is not the protocol's model when rgb is evaluated). ``encoders``: name -> encoder folder
    relative to the models folder, recorded for inference to encode windows with."""
    from mgfm.ingest.contract import load_manifest
    from mgfm.eval.export import save_aggregator

    params = resolve_step("eval_emotion_model", params)
    cfg = EmotionConfig.from_section(params["emotion"])
    missing = sorted(set(members) - set(encoders))
    if missing:
        raise ValueError(f"emotion model: members {missing} have no encoder folder")
    man = load_manifest(manifest).set_index("video_id")
    meta, x = clip_table(members)
    seq = build_sequences(meta, x, cfg.max_clips)
    tr = seq.split == "train"
    if not tr.any():
        raise ValueError(f"{list(members.values())[0]}: no train video has clips; the emotion model needs some")
    unknown = [v for v in seq.video_id[tr] if v not in man.index]
    if unknown:
        raise ValueError(f"{manifest}: video_clips videos {unknown[:5]} are not in the manifest")
    y = np.array([OUTCOME_LABEL[man.loc[v, "outcome"]] for v in seq.video_id[tr]], dtype=np.int64)
    mean = np.zeros(x.shape[1], np.float32)
    std = np.ones(x.shape[1], np.float32)
    xs = seq.x[tr]
    if cfg.feature_norm == "standardize":
        mean, std = feature_scaling(xs, seq.mask[tr])
        xs = np.where(seq.mask[tr][..., None], (xs - mean) / std, 0.0).astype(np.float32)
    seed = int(params["seeds"][0])
    model = train_aggregator(xs, seq.mask[tr], y, cfg, derive_seed(global_seed, "eval", "emotion", seed))
    info = {"members": list(members), "encoders": dict(encoders), "config": asdict(cfg), "dim": int(x.shape[1]),
            "n_train_videos": int(tr.sum()), "train_counts": {"lose": int((y == 0).sum()), "win": int((y == 1).sum())},
            "seed": seed}
    save_aggregator(out_dir, model, torch.from_numpy(mean), torch.from_numpy(std), info)
    log.info("emotion model: %d train videos (%s), saved to %s", info["n_train_videos"], info["train_counts"],
             out_dir)
    return info

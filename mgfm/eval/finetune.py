"""Fine-tuning an encoder with a linear head: semi-supervised (Table IX, a seeded 10% of the labeled
training clips), supervised (Table X, all of them) and the same architecture from scratch (same budget).

The training itself is ``mgfm.train.loop.fit`` (the model engineer's loop: Adam/AdamW, warm-up + step or
cosine schedule, DDP under torchrun, bf16 on GPU, atomic checkpoints and resume, CSV curves); this module
adds the classifier, the labeled data, and test / validation scores every ``eval_every`` epochs (saved as
they happen, so a resumed run still reports every epoch); with an export folder it saves the first seed's trained
model as inference loads it (``export_classifier``). Skeleton clips are fed exactly as at feature
extraction (``mgfm.train.features.prepare_clips``: valid frames resampled to the card's frame count, then the
stream); the RGB encoder is fine-tuned with SMILE's recipe (``mgfm.eval.rgb_finetune``: fc_norm pooling,
drop-path, RandAugment, random resized crop, random erasing, mixup / CutMix, layer decay, multi-view testing).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mgfm.common.seeding import derive_seed
from mgfm.config.steps import resolve_step
from mgfm.common.revision import git_revision
from mgfm.eval.splits import check_disjoint, num_classes_of, semi_supervised_rows, validation_rows
from mgfm.eval.export import unwrap
from mgfm.eval.results import fold_seeds, read_json, write_json, write_npz
from mgfm.eval.selection import REPORT_LABELS, summarize_epochs

log = logging.getLogger(__name__)
PROTOCOLS = ("semi_supervised", "finetune", "scratch")


def fit_batch_size(configured: int, n_clips: int, protocol: str,
                   key: str = "eval.finetune.train.batch_size") -> int:
    """The batch size fine-tuning uses: the configured one (config key ``key``), or the largest even one the
    clips fill.

    One rule, one message: a batch never exceeds the training clips (every epoch takes at least one full
    batch), and it stays even and >= 2 (batch norm needs two samples); fewer than 2 clips is an error (the
    workflow skips such a protocol before its first job, mgfm.eval.plan).
    """
    if n_clips < 2:
        raise ValueError(f"{protocol}: only {n_clips} training clip(s) left after the validation hold-out and "
                         "the semi-supervised fraction; fine-tuning needs at least 2 (batch norm)")
    if configured <= n_clips:
        return configured
    used = n_clips - n_clips % 2
    log.warning("%s %d is more than the %d training clips of %s: training with batch size %d (the clip count, "
                "even)", key, configured, n_clips, protocol, used)
    return used


class Classifier(nn.Module):
    """Encoder + linear head (N(0, init_std) weights, zero bias) on the clip feature."""

    def __init__(self, encoder: nn.Module, num_classes: int, init_std: float, layer_decay: float | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.card = encoder.card
        self.layer_decay = layer_decay
        self.head = nn.Linear(int(encoder.card["feature_dim"]), num_classes)
        nn.init.normal_(self.head.weight, 0.0, init_std)
        nn.init.zeros_(self.head.bias)

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """One group (the optimiser's defaults), or with ``layer_decay`` (encoders with ``layer_of``) one group per
        depth with ``lr_scale`` = decay^(depth_max - depth), and no weight decay on biases and norms (VideoMAE)."""
        if self.layer_decay is None or not hasattr(self.encoder, "layer_of"):
            return [{"params": list(self.parameters())}]
        top = self.encoder.cfg.depth + 1
        groups: dict[tuple[int, bool], dict] = {}
        named = [(n, p, self.encoder.layer_of(n)) for n, p in self.encoder.named_parameters()]
        named += [(f"head.{n}", p, top) for n, p in self.head.named_parameters()]
        for name, p, depth in named:
            decay = p.ndim > 1
            g = groups.setdefault((depth, decay), {"params": [], "lr_scale": self.layer_decay ** (top - depth),
                                                   "weight_decay": weight_decay if decay else 0.0})
            g["params"].append(p)
        return list(groups.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class LabeledClips(torch.utils.data.Dataset):
    """Rows ``rows`` of a packed labeled dataset; ``ds[list]`` -> {"x", "valid_len", "label"} (batch reads)."""

    def __init__(self, clips, rows: np.ndarray, labels: np.ndarray) -> None:
        self.clips, self.rows, self.labels = clips, np.asarray(rows, dtype=np.int64), labels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, indices) -> dict:
        rows = self.rows[np.atleast_1d(np.asarray(indices, dtype=np.int64))]
        batch = self.clips[rows]
        # "starts": how many starts of the model's frames each RGB clip stores, where the clips are read whole
        keep = {k: batch[k] for k in ("x", "valid_len", "starts") if k in batch}
        return {**keep, "label": torch.from_numpy(self.labels[rows])}


def build_encoder(card: dict) -> nn.Module:
    """A freshly initialised encoder of the card's architecture (the from-scratch baseline)."""
    from mgfm.models.artifact import encoder_from_arch

    encoder = encoder_from_arch(card["architecture"], card["arch"])
    encoder.card = card
    return encoder


@torch.inference_mode()
def predict(model: nn.Module, clips, rows: np.ndarray, batch_size: int, views=None) -> np.ndarray:
    """Scores (len(rows), K) in eval mode: logits, or with RGB test ``views`` (``rgb_finetune.view_list``) the
    log of their averaged softmax (``rgb_finetune.view_scores``); the model's train/eval mode is restored
    afterwards."""
    from mgfm.train.encoder_inputs import prepare_input

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    outs = []
    for start in range(0, len(rows), batch_size):
        b = clips[rows[start:start + batch_size]]
        if views is not None:
            from mgfm.eval.rgb_finetune import view_scores

            outs.append(view_scores(model, b["x"].to(dev), views, b.get("starts")).cpu().numpy())
            continue
        outs.append(model(prepare_input(b["x"].to(dev), b["valid_len"].to(dev), model.card)).float().cpu().numpy())
    model.train(was_training)
    k = model.head.out_features
    return np.concatenate(outs) if outs else np.zeros((0, k), np.float32)


def _labels(meta: pd.DataFrame, k: int, path) -> np.ndarray:
    y = meta["label"].to_numpy().astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= k))
    if len(bad):
        r = int(bad[0])
        raise ValueError(f"{path}: meta row {r} (clip_id {meta['clip_id'].iloc[r]}) has label {y[r]} outside [0, {k})")
    return y


def _training_rows(protocol: str, train_meta: pd.DataFrame, params: dict, split_seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(training pool, validation rows) of the training split: validation subjects held out first, then, for the
    semi-supervised protocol, the labeled fraction of what is left."""
    is_val = validation_rows(train_meta, float(params["validation"]["fraction"]), split_seed)
    pool = np.flatnonzero(~is_val)
    if protocol == "semi_supervised":
        frac = float(params["semi_supervised"]["fraction"])
        pool = pool[semi_supervised_rows(len(pool), frac, split_seed)]
    return pool, np.flatnonzero(is_val)


# the packages whose code shapes a fine-tuned classifier (the fingerprint's code version)
FINETUNE_CODE = ("common", "config", "core", "models", "train", "eval")


def _train_config(protocol: str, params: dict, n_pool: int, run_seed: int, rgb: bool = False):
    """The ``finetune.train`` block as a TrainConfig (for the RGB encoder with ``finetune.rgb.train``'s overrides),
    its batch size set by ``fit_batch_size``; the semi-supervised protocol takes ``semi_supervised.epochs`` when it
    is set (a tenth of the labels is a tenth of the steps)."""
    from mgfm.train.loop import TrainConfig

    train_params = dict(params["finetune"]["train"])
    key = "eval.finetune.train"
    if rgb:
        overrides = {k: v for k, v in params["finetune"]["rgb"]["train"].items() if v is not None}
        train_params.update(overrides)
        key = "eval.finetune.rgb.train" if "batch_size" in overrides else key
    if protocol == "semi_supervised" and params["semi_supervised"]["epochs"] is not None:
        train_params["epochs"] = int(params["semi_supervised"]["epochs"])
    train_params["batch_size"] = fit_batch_size(int(train_params["batch_size"]), n_pool, protocol,
                                                f"{key}.batch_size")
    return TrainConfig.from_section(train_params, seed=run_seed, key=key)


def _prepare_run_dir(run_dir: Path, scores_dir: Path, fingerprint: str, is_main: bool) -> None:
    """Keep checkpoints and per-epoch scores only when they belong to this very setup (then ``fit`` resumes)."""
    stamp = scores_dir / "fingerprint.txt"
    resumable = (run_dir / "checkpoints" / "last.pt").is_file() and stamp.is_file() \
        and stamp.read_text() == fingerprint
    if is_main and not resumable:       # scores of an earlier, finished or different run must not mix in
        if (run_dir / "checkpoints" / "last.pt").is_file():
            log.warning("%s: checkpoint of another setup (parameters, encoder, data or code); removed, training "
                        "from scratch", run_dir / "checkpoints" / "last.pt")
        shutil.rmtree(scores_dir, ignore_errors=True)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        scores_dir.mkdir(parents=True)
        stamp.write_text(fingerprint)


def _seed_result(scores_dir: Path, y_test: np.ndarray, y_train: np.ndarray, pool: np.ndarray,
                 val_rows: np.ndarray, test_meta: pd.DataFrame) -> dict:
    """The per-seed summary over the scored epochs, and the last epoch's scores for the ensemble."""
    files = sorted(scores_dir.glob("epoch_*.npz"))
    epochs = [int(f.stem.split("_")[1]) for f in files]
    loaded = [np.load(f) for f in files]
    test_scores = np.stack([z["test"] for z in loaded])
    val_scores = np.stack([z["val"] for z in loaded])
    summary = summarize_epochs(epochs, test_scores, y_test, val_scores, y_train[val_rows])
    covered = int(len(np.unique(y_train[pool])))
    return {"summary": {**summary, "classes_covered": covered, "n_train": int(len(pool))},
            "test_last": test_scores[-1], "val_last": val_scores[-1], "y_test": y_test, "y_val": y_train[val_rows],
            "test_epochs": test_scores, "val_epochs": val_scores, "epochs": np.asarray(epochs, np.int64),
            "clip_id": test_meta["clip_id"].to_numpy().astype(str)}


def build_classifier(protocol: str, model_dir: str | os.PathLike, card: dict, num_classes: int, ft: dict,
                     load_weights: bool = True) -> tuple[Classifier, str | None, dict | None]:
    """(the model ``protocol`` trains, sha256 of the weights it starts from, the RGB init checkpoint if any): the
    card's encoder (pretrained, or freshly initialised for ``scratch``) and a linear head; for the RGB encoder
    SMILE's fine-tuning model and layer decay (``finetune.rgb``)."""
    from mgfm.models.artifact import WEIGHTS_NAME, load_encoder
    from mgfm.train.checkpoint import file_digest

    if card.get("modality") == "rgb":
        from mgfm.eval.rgb_finetune import finetuning_encoder

        recipe = ft["rgb"]
        encoder, weights, init = finetuning_encoder(protocol, model_dir, card, recipe, load_weights)
        model = Classifier(encoder, num_classes, float(recipe["head_init_std"]))
        if recipe["layer_decay"] < 1:
            model.layer_decay = float(recipe["layer_decay"])
        return model, weights, init
    if protocol == "scratch":
        encoder, weights = build_encoder(card), None
    else:
        encoder, weights = load_encoder(model_dir), file_digest(Path(model_dir) / WEIGHTS_NAME)
    return Classifier(encoder, num_classes, float(ft["init_std"])), weights, None


def finetune_once(protocol: str, model_dir: str, train_data: str, test_data: str, num_classes: int, params: dict,
                  run_dir: Path, seed: int, global_seed: int, device: str | None = None) -> dict:
    """One seed of one protocol: train, score test/val along the way, return the per-seed summary + scores."""
    from mgfm.models.artifact import read_card
    from mgfm.train.checkpoint import code_version, dataset_digest, fingerprint_of
    from mgfm.train.encoder_inputs import open_clips, prepare_input
    from mgfm.train.loop import fit

    params = resolve_step(f"eval_{protocol}", params)
    ft = params["finetune"]
    card = read_card(model_dir)
    rgb = card.get("modality") == "rgb"
    recipe = ft["rgb"] if rgb else {}          # SMILE's fine-tuning recipe for the RGB encoder
    train_clips, test_clips = open_clips(train_data, card, larger=rgb), open_clips(test_data, card, larger=rgb)
    check_disjoint(train_clips.meta, test_clips.meta)
    y_train = _labels(train_clips.meta, num_classes, train_data)
    y_test = _labels(test_clips.meta, num_classes, test_data)
    pool, val_rows = _training_rows(protocol, train_clips.meta, params, derive_seed(global_seed, "eval", seed))
    test_rows = np.arange(len(test_clips))

    run_seed = derive_seed(global_seed, "eval", protocol, card["stream"], seed)
    cfg = _train_config(protocol, params, len(pool), run_seed, rgb)
    torch.manual_seed(derive_seed(run_seed, "init"))
    model, weights, rgb_init = build_classifier(protocol, model_dir, card, num_classes, ft)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=float(ft["label_smoothing"]))
    views = val_views = None
    if rgb:
        from mgfm.eval.rgb_finetune import describe_views, train_input, view_list
        from mgfm.train.rgb.augment import ClipAugment

        augment = ClipAugment.from_section(recipe)
        views = view_list(test_clips.data.shape, card, recipe)
        val_views = view_list(train_clips.data.shape, card, recipe)
        log.info("%s rgb: %s", protocol, describe_views(test_clips, card, recipe))

    def step(m, batch, ctx):
        if rgb:
            x = train_input(batch["x"], card, augment, ctx.generator, batch.get("starts"))
        else:
            x = prepare_input(batch["x"], batch["valid_len"], card)
        if rgb and (recipe["mixup"] > 0 or recipe["cutmix"] > 0):
            from mgfm.train.mix import mix_batch

            x, soft = mix_batch(x, batch["label"], num_classes, float(ft["label_smoothing"]), float(recipe["mixup"]),
                                float(recipe["cutmix"]), ctx.generator)
            logits = m(x)
            loss = -(soft * torch.log_softmax(logits.float(), dim=1)).sum(1).mean()
        else:
            logits = m(x)
            loss = loss_fn(logits.float(), batch["label"])
        acc = (logits.argmax(1) == batch["label"]).float().mean() * 100
        return loss, {"train_top1": acc.detach()}

    eval_every = int(ft["eval_every"])
    eval_bs = int(ft["eval_batch_size"])
    scores_dir = run_dir / "scores"
    is_main = int(os.environ.get("RANK", "0")) == 0      # fit() starts the process group only later

    def on_epoch_end(epoch: int, row: dict) -> None:
        if not is_main or (epoch % eval_every and epoch != cfg.epochs):
            return
        test = predict(model, test_clips, test_rows, eval_bs, views)
        val = predict(model, train_clips, val_rows, eval_bs, val_views)
        write_npz(scores_dir / f"epoch_{epoch:04d}.npz", test=test, val=val)

    # by content: the encoder's weights (a retrained encoder has the same card keys), both datasets, the code
    setup = {"protocol": protocol, "card": card, "encoder_sha256": weights, "train": cfg.to_dict(), "finetune": ft,
             "seed": seed, "global_seed": global_seed, "rows": [int(len(pool)), int(pool.sum()), int(len(val_rows))],
             "params": {k: v for k, v in params.items() if k != "seeds"},     # another seed list: same run
             "data": [dataset_digest(train_data), dataset_digest(test_data)],
             "num_classes": num_classes, "code": code_version(*FINETUNE_CODE)}
    fingerprint = fingerprint_of(setup)
    _prepare_run_dir(run_dir, scores_dir, fingerprint, is_main)
    fitted = fit(model, LabeledClips(train_clips, pool, y_train), step, cfg, run_dir, fingerprint,
                 desc=f"{protocol} {card['stream']} seed {seed}", device=device, on_epoch_end=on_epoch_end)
    if not is_main:                     # under torchrun only rank 0 scores, summarises and writes
        return None
    result = _seed_result(scores_dir, y_test, y_train, pool, val_rows, test_clips.meta)
    # the trained model itself (for the first seed's export to inference) and what it was trained on
    result["model"] = unwrap(fitted.model)
    videos = train_clips.meta["video_id"].astype(str).to_numpy()
    result["training"] = {"validation_videos": sorted(set(videos[val_rows])), "train_videos": sorted(set(videos[pool])),
                          "class_counts": np.bincount(y_train[pool], minlength=num_classes).tolist()}
    if rgb:
        result["rgb"] = {"init": rgb_init, "test_views": describe_views(test_clips, card, recipe),
                         "augment": augment.to_dict(), "pooling": "fc_norm", "drop_path": float(recipe["drop_path"])}
    if not ft["keep_checkpoints"]:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return result


def run_finetune(protocol: str, model_dir: str, train_data: str, test_data: str, taxonomy: str, params: dict,
                 out_dir: str, global_seed: int = 0, device: str | None = None,
                 export_dir: str | os.PathLike | None = None) -> dict:
    """Every seed of ``protocol`` for one encoder; writes metrics.json and scores.npz in ``out_dir``, and with
    ``export_dir`` the first seed's trained classifier there (``export_classifier``: what inference loads)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown fine-tuning protocol {protocol!r}; expected one of {PROTOCOLS}")
    from mgfm.models.artifact import read_card

    out = Path(out_dir)
    k = num_classes_of(taxonomy)
    card = read_card(model_dir)
    params = resolve_step(f"eval_{protocol}", params)
    seeds = [int(s) for s in params["seeds"]]
    per_seed, arrays, rgb_recipe = [], {}, None
    for seed in seeds:
        r = finetune_once(protocol, model_dir, train_data, test_data, k, params, out / f"seed{seed}", seed,
                          global_seed, device)
        if r is None:
            continue
        if export_dir is not None and seed == seeds[0]:
            export_classifier(export_dir, r, protocol, seed, model_dir, train_data, taxonomy)
        per_seed.append(r["summary"])
        rgb_recipe = r.get("rgb", rgb_recipe)
        # every scored epoch too: Table X's stream fusion is reported at the same epochs as its members
        arrays.update({f"test_last_seed{seed}": r["test_last"], f"val_last_seed{seed}": r["val_last"],
                       f"y_val_seed{seed}": r["y_val"], f"test_epochs_seed{seed}": r["test_epochs"],
                       f"val_epochs_seed{seed}": r["val_epochs"], f"epochs_seed{seed}": r["epochs"]})
        arrays.update(y_test=r["y_test"], clip_id=r["clip_id"])
        log.info("%s %s seed %d: last top1 %.2f, best-test top1 %.2f", protocol, card["stream"], seed,
                 r["summary"]["last"]["top1"], r["summary"]["best_test"]["top1"])
    if not per_seed:
        return {}
    results = fold_seeds([{k2: v for k2, v in s.items() if k2 in ("best_test", "last", "val_selected")}
                          for s in per_seed])
    result = {
        "protocol": protocol, "modality": card.get("modality", "skeleton"), "stream": card["stream"],
        "num_classes": k, "seeds": seeds, "n_seeds": len(seeds), "results": results, "per_seed": per_seed,
        "classes_covered": [s["classes_covered"] for s in per_seed], "n_train": [s["n_train"] for s in per_seed],
        "n_test": int(len(arrays["y_test"])), "n_val": [int(len(arrays[f"y_val_seed{s}"])) for s in seeds],
        "encoder": _encoder_origin(protocol, rgb_recipe),
        "config": {k: params[k] for k in ("finetune", "semi_supervised", "validation") if k in params},
        "report_labels": REPORT_LABELS, "training_loop": "mgfm.train.loop.fit",
        "inputs": {"model": str(model_dir), "train": str(train_data), "test": str(test_data)},
        "git_revision": git_revision(),
    }
    if rgb_recipe is not None:
        result["rgb_recipe"] = rgb_recipe
    write_npz(out / "scores.npz", **arrays)
    write_json(out / "metrics.json", result)
    return result


def export_classifier(out_dir: str | os.PathLike, result: dict, protocol: str, seed: int, model_dir: str,
                      train_data: str, taxonomy: str) -> dict:
    """One seed's trained classifier (``finetune_once``'s result) as inference loads it (``mgfm.eval.export``):
    weights from the model in memory, and a description naming its classes, the skeleton layout and clip settings
    of the training data, and the validation subjects' videos (inference chooses its threshold on those, never on
    test)."""
    from mgfm.core.layout import LAYOUT_NAME, UPPER_BODY
    from mgfm.core.packed import read_info
    from mgfm.eval.splits import class_names_of
    from mgfm.eval.export import save_classifier

    model = result["model"]
    skel = read_info(train_data)
    info = {"modality": model.card.get("modality", "skeleton"), "stream": model.card["stream"],
            "num_classes": int(model.head.out_features), "class_names": class_names_of(taxonomy),
            "layout": LAYOUT_NAME, "joints": list(skel.get("joints", UPPER_BODY)),
            "clip_params": skel.get("params", {}), "protocol": protocol, "seed": int(seed),
            "pretrained": str(model_dir), "train_data": str(train_data), **result["training"],
            "last_epoch": result["summary"]["last"]}
    save_classifier(out_dir, model, info)
    log.info("classifier %s/%s (%s, seed %d): %d classes, %d validation videos, saved to %s", info["modality"],
             info["stream"], protocol, seed, info["num_classes"], len(info["validation_videos"]), out_dir)
    return info


def _encoder_origin(protocol: str, rgb_recipe: dict | None) -> str:
    if protocol == "scratch":
        return "random init (same architecture as the card)"
    init = (rgb_recipe or {}).get("init")
    if init:
        return f"checkpoint {init['checkpoint']} (sha256 {init['sha256']})"
    return "pretrained"


def load_scores(metrics_path: str | Path, seed: int) -> dict:
    """The saved test / validation logits of one seed of a fine-tuning run (for the ensemble): the last epoch's
    (``test``, ``val``) and every scored epoch's (``test_epochs`` (E, N, K), ``val_epochs``, ``epochs``)."""
    metrics_path = Path(metrics_path)
    meta = read_json(metrics_path)
    z = np.load(metrics_path.parent / "scores.npz")
    if f"test_last_seed{seed}" not in z.files:
        raise ValueError(f"{metrics_path}: no scores for seed {seed} (seeds run: {meta.get('seeds')}); rerun it")
    if f"test_epochs_seed{seed}" not in z.files:
        raise ValueError(f"{metrics_path}: scores of an older mgfm without every scored epoch; rerun the fine-tuning")
    return {"test": z[f"test_last_seed{seed}"], "val": z[f"val_last_seed{seed}"], "y_test": z["y_test"],
            "y_val": z[f"y_val_seed{seed}"], "clip_id": z["clip_id"], "meta": meta,
            "test_epochs": z[f"test_epochs_seed{seed}"], "val_epochs": z[f"val_epochs_seed{seed}"],
            "epochs": z[f"epochs_seed{seed}"]}

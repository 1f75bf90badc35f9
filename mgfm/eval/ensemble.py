"""Score fusion (paper Eq. 20 / Table XI): a weighted sum of per-stream (later per-modality) class
probabilities. Weights come from the config or are chosen on the validation split, never on test."""

from __future__ import annotations

import itertools

import numpy as np

from mgfm.eval.metrics import softmax, topk_accuracy


def fuse(scores: dict[str, np.ndarray], weights: dict[str, float] | None = None) -> np.ndarray:
    """Weighted sum of softmax probabilities of logits (..., N, K) per member; equal weights by default.

    Probabilities rather than raw logits so members with larger logit scales do not dominate.
    """
    names = list(scores)
    if not names:
        raise ValueError("fusion needs at least one member")
    weights = weights or {n: 1.0 for n in names}
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"config key eval.ensemble.weights lacks {missing}")
    shape = scores[names[0]].shape
    total = np.zeros(shape, dtype=np.float64)
    for n in names:
        if scores[n].shape != shape:
            raise ValueError(f"fusion: {n!r} scores {scores[n].shape} differ from {names[0]!r} {shape}")
        flat = scores[n].reshape(-1, shape[-1])
        total += float(weights[n]) * softmax(flat).reshape(shape)
    return total


def select_weights(val_scores: dict[str, np.ndarray], y_val: np.ndarray, step: float = 0.1) -> dict[str, float]:
    """Grid search over weights in {0, step, ..., 1}^M (not all zero) for the best validation Top-1.

    Ties go to the most uniform weighting (then the first found), so equal weights win when nothing is better.
    """
    names = list(val_scores)
    if len(y_val) == 0:
        raise ValueError("config key eval.ensemble.select is 'validation' but the validation split is empty")
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, step), 6)
    probs = {n: softmax(val_scores[n]) for n in names}
    best, best_key = None, None
    for combo in itertools.product(grid, repeat=len(names)):
        w = np.asarray(combo)
        if w.sum() == 0:
            continue
        fused = sum(wi * probs[n] for wi, n in zip(w, names))
        top1 = topk_accuracy(fused, y_val, (1,))[1]
        key = (top1, -np.var(w / w.sum()))
        if best_key is None or key > best_key:
            best, best_key = w, key
    return {n: float(v) for n, v in zip(names, best / best.sum())}


def configured_weights(given: dict[str, float], members: list[str]) -> dict[str, float]:
    """The configured weight of every member; a member without one is a config error (never a silent 1.0)."""
    missing = [n for n in members if n not in given]
    if missing:
        raise ValueError(f"config key eval.ensemble.weights has no weight for {missing} (eval.ensemble.select is "
                         f"'config'; give every member a weight, e.g. eval.ensemble.weights.{missing[0]}: 1.0)")
    return {n: float(given[n]) for n in members}


def _weights(select: str, cfg: dict, val: dict[str, np.ndarray], y_val: np.ndarray) -> dict[str, float]:
    if select == "validation":
        return select_weights(val, y_val, float(cfg["grid_step"]))
    if select == "config":
        return configured_weights(cfg.get("weights") or {}, list(val))
    raise ValueError(f"config key eval.ensemble.select must be config or validation, got {select!r}")


def equal_fusion_reports(loaded: dict[str, dict], paths: dict[str, str]) -> dict:
    """The equal-weight fusion at every epoch its members were scored, reported as each member is (best test
    Top-1 seen, last epoch, validation-selected epoch): Table X's multi-stream row beside its streams'."""
    from mgfm.eval.selection import summarize_epochs

    names = list(loaded)
    epochs = loaded[names[0]]["epochs"]
    for n in names[1:]:
        if not np.array_equal(loaded[n]["epochs"], epochs):
            raise ValueError(f"{paths[n]}: member {n!r} was scored at epochs {loaded[n]['epochs'].tolist()}, "
                             f"{names[0]!r} at {epochs.tolist()}; fine-tune every member with the same schedule")
    first = loaded[names[0]]
    test = fuse({n: loaded[n]["test_epochs"] for n in names})
    val = fuse({n: loaded[n]["val_epochs"] for n in names}) if len(first["y_val"]) else None
    return summarize_epochs([int(e) for e in epochs], test, first["y_test"], val, first["y_val"])


def run_ensemble(members: dict[str, str], params: dict, out_dir: str,
                 modality_of: dict[str, str] | None = None) -> dict:
    """Fuse fine-tuned members ({name: finetune metrics.json}) per seed, last-epoch scores; write metrics.json.

    Two fusions of the skeleton members: equal weights (Table X's multi-stream row, also at every scored epoch:
    ``equal_reports`` holds its best-seen, last and validation-selected numbers) and the weighted one whose
    weights come from ``eval.ensemble.weights`` (select: config) or a grid search on the validation split.
    With RGB members too (``modality_of`` names each member's modality), Table XI's Skele+RGB fusion of every
    member (``multimodal_weighted`` / ``multimodal_equal``), weights chosen the same way, never on test.
    """
    from pathlib import Path

    from mgfm.eval.finetune import load_scores
    from mgfm.common.revision import git_revision
    from mgfm.eval.results import fold_seeds, write_json

    from mgfm.config.steps import resolve_step

    params = resolve_step("eval_ensemble", params)
    cfg = params["ensemble"]
    select = cfg["select"]
    seeds = [int(s) for s in params["seeds"]]
    modality_of = modality_of or {n: "skeleton" for n in members}
    skeleton = [n for n in members if modality_of.get(n, "skeleton") == "skeleton"]
    multimodal = len(set(modality_of.get(n, "skeleton") for n in members)) > 1
    if not skeleton:
        raise ValueError("the ensemble needs at least one skeleton member (config key eval.modalities)")
    per_seed, weights_used, weights_multi = [], [], []
    for seed in seeds:
        loaded = {n: load_scores(p, seed) for n, p in members.items()}
        first = next(iter(loaded.values()))
        for n, s in loaded.items():
            if not np.array_equal(s["clip_id"], first["clip_id"]):
                raise ValueError(f"{members[n]}: member {n!r} was tested on other clips than the others")
        y_test, y_val = first["y_test"], first["y_val"]
        test = {n: s["test"] for n, s in loaded.items()}
        weights = _weights(select, cfg, {n: loaded[n]["val"] for n in skeleton}, y_val)
        weights_used.append(weights)
        eq = topk_accuracy(fuse({n: test[n] for n in skeleton}), y_test)
        wt = topk_accuracy(fuse({n: test[n] for n in skeleton}, weights), y_test)
        single = {n: topk_accuracy(s, y_test) for n, s in test.items()}
        row = {"equal": {"top1": eq[1], "top5": eq[5]}, "weighted": {"top1": wt[1], "top5": wt[5]},
               "equal_reports": equal_fusion_reports({n: loaded[n] for n in skeleton}, members),
               **{n: {"top1": a[1], "top5": a[5]} for n, a in single.items()}}
        if multimodal:
            w_all = _weights(select, cfg, {n: s["val"] for n, s in loaded.items()}, y_val)
            weights_multi.append(w_all)
            meq, mwt = topk_accuracy(fuse(test), y_test), topk_accuracy(fuse(test, w_all), y_test)
            row.update(multimodal_equal={"top1": meq[1], "top5": meq[5]},
                       multimodal_weighted={"top1": mwt[1], "top5": mwt[5]})
        per_seed.append(row)
    result = {"protocol": "ensemble", "members": list(members), "skeleton_members": skeleton,
              "modality_of": dict(modality_of), "weights_multimodal": weights_multi,
              "select": select, "weights": weights_used,
              "seeds": seeds, "n_seeds": len(seeds), "scores": "last-epoch fine-tuned logits -> softmax",
              "results": fold_seeds(per_seed), "per_seed": per_seed, "inputs": dict(members),
              "git_revision": git_revision()}
    write_json(Path(out_dir) / "metrics.json", result)
    return result

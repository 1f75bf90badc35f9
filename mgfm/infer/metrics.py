"""Spotting metrics on untrimmed video: precision / recall / F1 at a temporal IoU with the class required to
match, mAP, the standard mAP averages, a per-class breakdown, and the class-prior baseline over tie orders.

Segments are inclusive frame ranges: an instance of frames s..e is ActivityNet's segment [s, e + 1) and lasts
e - s + 1 frames (tIoU adds the 1 to every length). Reading the same numbers as exclusive ends shortens every
segment by a frame, which lowers tIoU most for short instances; ``spotting_metrics(..., inclusive=False)`` gives
that reading so its effect can be reported.

Two scorers of P/R/F1 (config key ``infer.evaluate.scorer``):

* ``activitynet`` (default): ActivityNet's detection evaluation (``Evaluation/eval_detection.py``,
  ``compute_average_precision_detection``, run per class), reproduced exactly with its tie rules. Per class, the
  predictions are taken in the order of numpy's default argsort of their confidences (in row order), reversed:
  highest first; equal confidences come in whatever order that sort leaves them (numpy's sort is not stable:
  without SIMD sorting and for arrays of up to 16 values that is the last row first, numpy's AVX2 / AVX-512
  sorts on x86-64 may order equal values otherwise in arrays of 4 or more). Each prediction walks the ground
  truths of its class in its video by tIoU, highest first (the same reversed default argsort, so among equal
  tIoUs the last row first where the sort keeps row order) and takes the first one that no earlier prediction
  took, if that tIoU reaches the threshold: greedy and one-to-one.
* ``smg``: the rule of the start kit for online recognition on SMG by the MiGA challenge's organisers
  (github.com/mikecheninoulu/SMG, ``online recognition/SMG/THDutils.py``, ``tester_SMG``), so that F1 can be
  set beside the challenge's published online-recognition F1. Confidences are ignored. A ground truth is found
  when some prediction of its class in its video overlaps it by more than the threshold (the kit fixes 0.3),
  overlap = (min end - max start) / (max end - min start) on the frame numbers as they are, without +1: the
  intersection over the hull span, negative when they are apart, 0/0 (never a hit) for one-frame segments on
  the same frame. Not one-to-one: one prediction may find several ground truths. Precision = found ground
  truths / predictions, so it (and F1) can exceed 100 %; recall = found / ground truths;
  F1 = 2PR / (P + R + 1e-7).

mAP is ActivityNet's under either scorer: per annotated class, the interpolated average precision of all
proposals ranked as above (classes without a proposal score 0), averaged over the annotated classes; reported at
the configured tIoUs and their mean, and as ActivityNet's average mAP (0.5:0.05:0.95) and THUMOS14's
(0.3:0.1:0.7). The thresholds are the decimal values (ActivityNet's ``np.linspace(0.5, 0.95, 10)`` holds
0.8999999999999999 for 0.9; no tIoU of frame counts lies between the two).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SCORERS = ("activitynet", "smg")
#: ActivityNet's average-mAP thresholds (0.5:0.05:0.95) and THUMOS14's (0.3:0.1:0.7).
ACTIVITYNET_TIOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
THUMOS_TIOUS = (0.3, 0.4, 0.5, 0.6, 0.7)
#: The SMG start kit's F1 adds this to its denominator.
SMG_F1_EPS = 1e-7


def tiou_key(t: float) -> str:
    """How a tIoU names its entry in the metrics ("0.3", "0.55")."""
    return f"{t:g}"


def _groups(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Rows of every key value, each in row order."""
    order = np.argsort(keys, kind="stable")
    uniq, first = np.unique(keys[order], return_index=True)
    return dict(zip(uniq.tolist(), np.split(order, first[1:])))


def _tiou(ps: np.ndarray, pe: np.ndarray, gs: np.ndarray, ge: np.ndarray, inclusive: bool) -> np.ndarray:
    """ActivityNet's segment IoU (P, G) of [s, e + 1) (inclusive frames) or [s, e) (``inclusive=False``)."""
    one = 1 if inclusive else 0
    ps, pe, gs, ge = ps[:, None], pe[:, None] + one, gs[None, :], ge[None, :] + one
    inter = np.clip(np.minimum(pe, ge) - np.maximum(ps, gs), 0, None)
    union = (ge - gs) + (pe - ps) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def _smg_overlap(ps: np.ndarray, pe: np.ndarray, gs: np.ndarray, ge: np.ndarray) -> np.ndarray:
    """The SMG kit's overlap (P, G): intersection over the hull span of the raw frame numbers, no +1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((np.minimum(pe[:, None], ge[None, :]) - np.maximum(ps[:, None], gs[None, :]))
                / (np.maximum(pe[:, None], ge[None, :]) - np.minimum(ps[:, None], gs[None, :])))


def activitynet_rank(conf: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Each row's place in its class's processing order: numpy's default argsort of the class's confidences (in
    row order), reversed, exactly as ActivityNet sorts a class's predictions (ties: see the module docstring)."""
    rank = np.empty(len(conf), np.int64)
    for rows in _groups(cls).values():
        order = np.argsort(conf[rows])[::-1]
        rank[rows[order]] = np.arange(len(rows))
    return rank


def tie_broken_rank(conf: np.ndarray, tie_key: np.ndarray) -> np.ndarray:
    """Places by confidence, highest first, equal confidences by ``tie_key`` (e.g. a random permutation)."""
    rank = np.empty(len(conf), np.int64)
    rank[np.lexsort((tie_key, -conf))] = np.arange(len(conf))
    return rank


class Segments:
    """Predictions against ground truth, split into (class, video) blocks with their tIoU matrices."""

    def __init__(self, pred: pd.DataFrame, gt: pd.DataFrame, inclusive: bool = True):
        codes, _ = pd.factorize(pd.concat([pred["video_id"], gt["video_id"]], ignore_index=True).astype(str))
        n_vid = int(codes.max()) + 1 if len(codes) else 1
        self.n = len(pred)
        self.cls = pred["class_id"].to_numpy(np.int64)
        self.conf = pred["confidence"].to_numpy(np.float64) if "confidence" in pred else np.zeros(self.n)
        self.start, self.end = pred["start_frame"].to_numpy(np.int64), pred["end_frame"].to_numpy(np.int64)
        self.gt_cls = gt["class_id"].to_numpy(np.int64)
        self.gt_start, self.gt_end = gt["start_frame"].to_numpy(np.int64), gt["end_frame"].to_numpy(np.int64)
        gt_groups = _groups(self.gt_cls * n_vid + codes[self.n:])
        #: (prediction rows, ground-truth rows, tIoU matrix), rows in input order
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for key, prows in _groups(self.cls * n_vid + codes[: self.n]).items():
            grows = gt_groups.get(key)
            if grows is not None:
                iou = _tiou(self.start[prows], self.end[prows], self.gt_start[grows], self.gt_end[grows], inclusive)
                self.blocks.append((prows, grows, iou))

    def true_positives(self, rank: np.ndarray, tious: list[float]) -> np.ndarray:
        """(rows, thresholds) True where ActivityNet's matching makes the row a true positive; ``rank``: each
        row's place in its class's processing order."""
        thr = np.asarray(tious, np.float64)
        tp = np.zeros((self.n, len(thr)), bool)
        if not len(thr):
            return tp
        at = np.arange(len(thr))
        for prows, _, iou in self.blocks:
            # a row whose best tIoU is below every threshold is a false positive and takes nothing
            cand = np.flatnonzero(~(iou.max(axis=1) < thr.min()))
            cand = cand[np.argsort(rank[prows[cand]], kind="stable")]
            taken = np.zeros((len(thr), iou.shape[1]), bool)
            for k in cand:
                row = iou[k]
                walk = np.argsort(row)[::-1]                    # ActivityNet's walk over the ground truths
                free = ~taken[:, walk]
                first = free.argmax(axis=1)                     # the first one not taken, per threshold
                j = walk[first]
                hit = free[at, first] & ~(row[j] < thr)
                taken[at[hit], j[hit]] = True
                tp[prows[k], hit] = True
        return tp

    def class_ap(self, tp: np.ndarray, rank: np.ndarray) -> dict[int, np.ndarray]:
        """ActivityNet's AP per ground-truth class at each threshold of ``tp`` (rows, thresholds)."""
        rows_of = _groups(self.cls)
        out = {}
        for c, n_gt in zip(*np.unique(self.gt_cls, return_counts=True)):
            rows = rows_of.get(int(c), np.zeros(0, np.int64))
            rows = rows[np.argsort(rank[rows], kind="stable")]
            out[int(c)] = average_precision(tp[rows].T, int(n_gt)) if len(rows) else np.zeros(tp.shape[1])
        return out

    def smg_found(self, tious: list[float]) -> np.ndarray:
        """(ground truths, thresholds) True where the SMG kit's rule finds the ground truth."""
        found = np.zeros((len(self.gt_cls), len(tious)), bool)
        thr = np.asarray(tious, np.float64)
        for prows, grows, _ in self.blocks:
            ov = _smg_overlap(self.start[prows], self.end[prows], self.gt_start[grows], self.gt_end[grows])
            found[grows] = (ov[:, :, None] > thr).any(axis=0)
        return found

    def smg_best_conf(self, tious: list[float]) -> np.ndarray:
        """(ground truths, thresholds) the highest confidence among the predictions that find each ground truth
        by the SMG rule (-inf when none): at a confidence threshold c it is found when this is >= c."""
        best = np.full((len(self.gt_cls), len(tious)), -np.inf)
        thr = np.asarray(tious, np.float64)
        for prows, grows, _ in self.blocks:
            ov = _smg_overlap(self.start[prows], self.end[prows], self.gt_start[grows], self.gt_end[grows])
            conf = np.where(ov[:, :, None] > thr, self.conf[prows][:, None, None], -np.inf)
            best[grows] = conf.max(axis=0)
        return best


def average_precision(tp: np.ndarray, n_gt: int) -> np.ndarray:
    """ActivityNet's interpolated AP of predictions in ranked order: ``tp`` (thresholds, predictions) or
    (predictions,) true-positive flags against ``n_gt`` ground truths (the VOC 2011 all-point envelope)."""
    flags = np.atleast_2d(np.asarray(tp, np.float64))
    if n_gt <= 0:
        raise ValueError(f"average precision needs ground truth (n_gt={n_gt})")
    tp_sum, fp_sum = np.cumsum(flags, axis=1), np.cumsum(1.0 - flags, axis=1)
    recall = tp_sum / float(n_gt)
    with np.errstate(invalid="ignore"):
        precision = tp_sum / (tp_sum + fp_sum)
    zeros, ones = np.zeros((len(flags), 1)), np.ones((len(flags), 1))
    mprec = np.hstack([zeros, precision, zeros])
    mrec = np.hstack([zeros, recall, ones])
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    gain = (mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:]
    moved = mrec[:, 1:] != mrec[:, :-1]
    # summed over the recall steps only, as ActivityNet sums, so the float result is the same to the last bit
    ap = np.array([np.sum(g[m]) for g, m in zip(gain, moved)])
    return ap if np.ndim(tp) == 2 else ap[0]


def f1_score(precision: np.ndarray | float, recall: np.ndarray | float, scorer: str) -> np.ndarray | float:
    """F1 from fractions: 2PR / (P + R), or the SMG kit's 2PR / (P + R + 1e-7); 0 where P + R is 0."""
    p, r = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    eps = SMG_F1_EPS if scorer == "smg" else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(p + r > 0, 2 * p * r / (p + r + eps), 0.0)
    return f if f.ndim else float(f)


def prf(n_hit: int, n_pred: int, n_gt: int, scorer: str = "activitynet") -> dict:
    """Precision, recall, F1 in percent; ``n_hit``: matched predictions (activitynet) or found ground truths
    (smg), so with ``smg`` precision may exceed 100."""
    p = n_hit / n_pred if n_pred else 0.0
    r = n_hit / n_gt if n_gt else 0.0
    return {"precision": 100 * p, "recall": 100 * r, "f1": 100 * f1_score(p, r, scorer), "n_pred": n_pred,
            "n_gt": n_gt, "n_hit": n_hit}


def check_scorer(scorer: str) -> str:
    if scorer not in SCORERS:
        raise ValueError(f"config key infer.evaluate.scorer: {scorer!r} is not one of {', '.join(SCORERS)}")
    return scorer


def match(pred: pd.DataFrame, gt: pd.DataFrame, tiou: float) -> np.ndarray:
    """Per prediction row, True when ActivityNet's matching makes it a true positive at ``tiou``."""
    seg = Segments(pred, gt)
    return seg.true_positives(activitynet_rank(seg.conf, seg.cls), [tiou])[:, 0]


def cumulative_hits(props: pd.DataFrame, gt: pd.DataFrame, tious: list[float],
                    scorer: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidences by rank, hits (thresholds, proposals)): the hits counted when the first i + 1 proposals by
    confidence are kept, for choosing a confidence threshold. Only cuts between different confidences are
    meaningful; activitynet: a kept set's matches never depend on the proposals below it (greedy in confidence
    order), so its hits are the prefix sums of the whole set's true positives (tied proposals in the whole set's
    order); smg: a ground truth is found once the best of the proposals that find it is kept."""
    seg = Segments(props, gt)
    order = np.argsort(-seg.conf, kind="stable")
    conf = seg.conf[order]
    if check_scorer(scorer) == "activitynet":
        tp = seg.true_positives(activitynet_rank(seg.conf, seg.cls), tious)
        return conf, np.cumsum(tp[order].T, axis=1)
    best = seg.smg_best_conf(tious)                              # (G, T)
    asc = np.sort(best, axis=0)
    kept = np.stack([len(asc) - np.searchsorted(asc[:, t], conf, side="left") for t in range(len(tious))])
    return conf, kept.reshape(len(tious), len(conf))


class Evaluation:
    """Metrics of thresholded predictions ``pred`` and ranked proposals ``ranked`` against ``gt``; the tIoU
    matrices are computed once, so the ranking can be changed cheaply (``metrics(pred_rank, ranked_rank)``)."""

    def __init__(self, pred: pd.DataFrame, ranked: pd.DataFrame, gt: pd.DataFrame, tious: list[float],
                 class_names: list[str], scorer: str = "activitynet", inclusive: bool = True):
        self.tious = [float(t) for t in tious]
        self.scorer = check_scorer(scorer)
        self.class_names = class_names
        self.ap_tious = sorted({round(t, 6) for t in (*self.tious, *ACTIVITYNET_TIOUS, *THUMOS_TIOUS)})
        self.pred, self.ranked = Segments(pred, gt, inclusive), Segments(ranked, gt, inclusive)
        self.n_gt = len(gt)
        if self.scorer == "smg":
            self.smg_found = self.pred.smg_found(self.tious)

    def default_ranks(self) -> tuple[np.ndarray, np.ndarray]:
        """ActivityNet's processing order of ``pred`` and ``ranked``."""
        return (activitynet_rank(self.pred.conf, self.pred.cls), activitynet_rank(self.ranked.conf, self.ranked.cls))

    def metrics(self, pred_rank: np.ndarray | None = None, ranked_rank: np.ndarray | None = None) -> dict:
        if pred_rank is None or ranked_rank is None:
            pred_rank, ranked_rank = self.default_ranks()
        out: dict = {"scorer": self.scorer, "tiou": {}, "per_class": {}}
        tp = self.ranked.true_positives(ranked_rank, self.ap_tious)
        ap = self.ranked.class_ap(tp, ranked_rank)
        maps = {tiou_key(t): 100 * float(np.mean([ap[c][i] for c in ap])) if ap else 0.0
                for i, t in enumerate(self.ap_tious)}
        pc, gc = self.pred.cls, self.pred.gt_cls
        if self.scorer == "activitynet":
            hits = self.pred.true_positives(pred_rank, self.tious)
        for i, t in enumerate(self.tious):
            key = tiou_key(t)
            if self.scorer == "activitynet":
                n_hit = lambda sel: int(hits[sel, i].sum())                  # noqa: E731
                row = prf(n_hit(slice(None)), self.pred.n, self.n_gt)
                per_class = {c: n_hit(pc == c) for c in sorted(set(gc) | set(pc))}
            else:
                found = self.smg_found[:, i]
                row = prf(int(found.sum()), self.pred.n, self.n_gt, "smg")
                per_class = {c: int(found[gc == c].sum()) for c in sorted(set(gc) | set(pc))}
            row["map"] = maps[key]
            out["tiou"][key] = row
            out["per_class"][key] = {self.class_names[int(c)]: prf(h, int((pc == c).sum()), int((gc == c).sum()),
                                                                   self.scorer) for c, h in per_class.items()}
        out["map"] = maps
        out["map_mean"] = float(np.mean([maps[tiou_key(t)] for t in self.tious])) if self.tious else 0.0
        out["map_activitynet"] = float(np.mean([maps[tiou_key(t)] for t in ACTIVITYNET_TIOUS]))
        out["map_thumos"] = float(np.mean([maps[tiou_key(t)] for t in THUMOS_TIOUS]))
        return out


def spotting_metrics(pred: pd.DataFrame, ranked: pd.DataFrame, gt: pd.DataFrame, tious: list[float],
                     class_names: list[str], scorer: str = "activitynet", inclusive: bool = True) -> dict:
    """P/R/F1 of thresholded ``pred`` (by ``scorer``) and mAP of the un-thresholded ``ranked`` proposals
    (ActivityNet's), over all videos; ``inclusive=False`` reads the end frames as exclusive.

    Frames: columns video_id, start_frame, end_frame, class_id (and confidence for predictions).
    """
    return Evaluation(pred, ranked, gt, tious, class_names, scorer, inclusive).metrics()


def _mean_tree(runs: list) -> object:
    """Leaf-wise mean of equally shaped metric dicts (numbers averaged, counts that never change kept as they
    are, strings kept)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: _mean_tree([r[k] for r in runs]) for k in first}
    if isinstance(first, (int, np.integer)) and all(r == first for r in runs):
        return int(first)
    if isinstance(first, (int, float, np.integer, np.floating)):
        return float(np.mean(runs))
    return first


def _spread(values: list[float]) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "min": float(v.min()),
            "max": float(v.max())}


def tie_order_metrics(ranked: pd.DataFrame, threshold: float, gt: pd.DataFrame, tious: list[float],
                      class_names: list[str], scorer: str, n_orders: int, seed: int) -> dict:
    """``spotting_metrics`` of ``ranked`` (and its rows at or above ``threshold`` as the predictions) averaged
    over ``n_orders`` random orders of equally confident proposals (generator seeded with ``seed``), with the
    spread of the headline numbers under ``tie_orders``: for proposals whose confidences tie by construction
    (the class-prior baseline) any one order is an arbitrary ranking, and its expected value is the figure."""
    if n_orders < 1:
        raise ValueError(f"tie orders: need at least one order, got {n_orders}")
    kept = ranked["confidence"].to_numpy(np.float64) >= threshold
    ev = Evaluation(ranked[kept], ranked, gt, tious, class_names, scorer)
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(n_orders):
        rank = tie_broken_rank(ev.ranked.conf, rng.permutation(ev.ranked.n))
        runs.append(ev.metrics(rank[kept], rank))
    out = _mean_tree(runs)
    out["tie_orders"] = {
        "n_orders": n_orders, "seed": int(seed),
        "n_tied": int(ev.ranked.n - len(np.unique(np.stack([ev.ranked.cls, ev.ranked.conf]), axis=1).T)),
        **{k: _spread([r[k] for r in runs]) for k in ("map_mean", "map_activitynet", "map_thumos")},
        "f1": {t: _spread([r["tiou"][t]["f1"] for r in runs]) for t in out["tiou"]},
    }
    return out

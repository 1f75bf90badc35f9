"""Training-free retrieval (paper Table XII): test instances query a gallery of training instances.

Features are L2-normalised, so cosine similarity is one matrix product; the k nearest gallery items come
from ``torch.topk``. Top-1: the nearest gallery item has the query's class. Top-5: the query's class is
among the classes of the 5 nearest gallery items. Queries are processed in chunks so memory stays bounded
(chunk x gallery similarities at a time).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)
TOP5_DEFINITION = ("Top-k: a query (test instance) counts as correct when its class is among the classes of "
                   "its k nearest gallery (training) instances by cosine similarity of L2-normalised features.")


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def nearest(gallery: np.ndarray, queries: np.ndarray, k: int = 5, chunk: int = 1024,
            device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices (Q, k) of the k most cosine-similar gallery rows per query, and their similarities."""
    if gallery.shape[1] != queries.shape[1]:
        raise ValueError(f"gallery dim {gallery.shape[1]} != query dim {queries.shape[1]}")
    k = min(k, len(gallery))
    dev = torch.device(device or "cpu")  # its rule reserves no GPU: a GPU only when asked
    g = l2_normalize(torch.from_numpy(np.array(gallery, dtype=np.float32)).to(dev))
    idx = np.empty((len(queries), k), dtype=np.int64)
    sim = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), chunk):
        q = l2_normalize(torch.from_numpy(np.array(queries[start:start + chunk], dtype=np.float32)).to(dev))
        s, i = torch.topk(q @ g.T, k, dim=1)
        idx[start:start + len(q)] = i.cpu().numpy()
        sim[start:start + len(q)] = s.cpu().numpy()
    return idx, sim


def retrieval_accuracy(neighbour_labels: np.ndarray, query_labels: np.ndarray, ks=(1, 5)) -> dict[int, float]:
    """Percent of queries whose class is among the classes of their first k neighbours."""
    hit = neighbour_labels == np.asarray(query_labels)[:, None]
    return {k: float(100.0 * hit[:, :k].any(axis=1).mean()) for k in ks}


def nearest_loop(gallery: np.ndarray, queries: np.ndarray, k: int = 5) -> np.ndarray:
    """Baseline for the benchmark: one query at a time, one gallery item at a time, in Python."""
    g = [row / max(np.linalg.norm(row), 1e-12) for row in gallery]
    out = np.empty((len(queries), k), dtype=np.int64)
    for qi, q in enumerate(queries):
        q = q / max(np.linalg.norm(q), 1e-12)
        sims = [float(np.dot(q, row)) for row in g]
        out[qi] = sorted(range(len(sims)), key=lambda j: -sims[j])[:k]
    return out


def run_retrieval(features: dict[str, tuple[str, str]], taxonomy: str, params: dict, out_dir: str,
                  modality: str = "skeleton") -> dict:
    """Retrieval for every stream of ``features``; writes ``metrics.json`` (deterministic: no seeds)."""
    from mgfm.eval.splits import check_disjoint, load_labeled, num_classes_of
    from mgfm.common.revision import git_revision
    from mgfm.eval.results import write_json

    from mgfm.config.steps import resolve_step

    cfg = resolve_step("eval_retrieval", params)["retrieval"]
    chunk = int(cfg["chunk"])
    ks = tuple(int(k) for k in cfg["ks"])
    kc = num_classes_of(taxonomy)
    results = {}
    for stream, (train_path, test_path) in features.items():
        gallery, queries = load_labeled(train_path, kc, stream), load_labeled(test_path, kc, stream)
        check_disjoint(gallery.meta, queries.meta, "gallery/query")
        idx, _ = nearest(gallery.x, queries.x, max(ks), chunk)
        acc = retrieval_accuracy(gallery.y[idx], queries.y, ks)
        results[stream] = {f"top{k}": v for k, v in acc.items()}
        log.info("retrieval %s/%s: %s", modality, stream, results[stream])
    result = {"protocol": "retrieval", "modality": modality, "streams": list(features), "num_classes": kc,
              "n_gallery": int(len(gallery)), "n_query": int(len(queries)), "definition": TOP5_DEFINITION,
              "ks": list(ks), "results": results, "n_seeds": 0, "git_revision": git_revision(),
              "inputs": {s: list(map(str, p)) for s, p in features.items()}}
    write_json(Path(out_dir) / "metrics.json", result)
    return result

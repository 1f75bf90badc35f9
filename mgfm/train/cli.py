"""``mgfm pretrain skeleton`` and ``mgfm features extract``: thin wrappers over the train package's functions.

Under ``torchrun --nproc-per-node N -m mgfm pretrain skeleton ...`` the same command runs data-parallel.
"""

from __future__ import annotations

import argparse

from mgfm.cli import json_object, params_help
from mgfm.config import default_seed


def _pretrain(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.train.pretrain import pretrain_skeleton

    set_torch_threads(args.threads)
    pretrain_skeleton(args.dataset, args.stream, args.out, args.params, seed=args.seed, device=args.device)
    return 0


def _pretrain_rgb(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.train.rgb.pretrain import pretrain_rgb

    set_torch_threads(args.threads)
    pretrain_rgb(args.dataset, args.stage, args.out, args.params, seed=args.seed, init=args.init, device=args.device)
    return 0


def _fetch_clip(args: argparse.Namespace) -> int:
    from mgfm.train.rgb.clip_fetch import fetch_clip_teacher

    fetch_clip_teacher(args.url, args.sha256, args.out)
    return 0


def _extract(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.train.features import extract_features

    set_torch_threads(args.threads)
    extract_features(args.model, args.dataset, args.out, batch_size=args.batch_size, device=args.device,
                     params=args.params)
    return 0


def register(subparsers) -> None:
    pre = subparsers.add_parser("pretrain", help="self-supervised pretraining of the foundation models")
    pre_sub = pre.add_subparsers(dest="modality", required=True)
    sk = pre_sub.add_parser("skeleton", help="MG-FM-Skele: DSTE + four-view multi-grained decorrelation, one stream")
    sk.add_argument("--dataset", required=True,
                    help="packed skeleton dataset folder (results/packs/skeleton/pretrain)")
    sk.add_argument("--stream", required=True, choices=("joint", "bone", "motion"),
                    help="which stream of the skeleton to pretrain on")
    sk.add_argument("--out", required=True, help="model folder (encoder.safetensors, card.json, checkpoints/, logs)")
    sk.add_argument("--params", type=json_object, default={}, help=params_help("pretrain", "pretrain_skeleton"))
    sk.add_argument("--seed", type=int, default=default_seed(), help="global seed (config key 'seed')")
    sk.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    sk.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    sk.set_defaults(func=_pretrain)

    rgb = pre_sub.add_parser("rgb", help="MG-FM-RGB: SMILE masked video distillation, one stage")
    rgb.add_argument("--dataset", required=True, help="packed RGB dataset folder (results/packs/rgb/pretrain)")
    rgb.add_argument("--stage", required=True, type=int, choices=(1, 2),
                     help="1: synthetic motion + trajectory-aware masking; 2: original clips, tube masking")
    rgb.add_argument("--out", required=True, help="model folder (encoder.safetensors, card.json, smile_model...)")
    rgb.add_argument("--init", default=None, help="stage 2: the Stage 1 model folder")
    rgb.add_argument("--params", type=json_object, default={}, help=params_help("rgb_pretrain") + " (the keys of its stage, or the whole section)")
    rgb.add_argument("--seed", type=int, default=default_seed(), help="global seed (config key 'seed')")
    rgb.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    rgb.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    rgb.set_defaults(func=_pretrain_rgb)

    fc = pre_sub.add_parser("fetch-clip", help="download OpenAI CLIP (pinned sha256) -> vision tower safetensors")
    fc.add_argument("--url", required=True, help="where to download the OpenAI CLIP checkpoint (config key rgb_pretrain.teacher.url)")
    fc.add_argument("--sha256", required=True, help="sha256 the downloaded file must have (config key rgb_pretrain.teacher.sha256)")
    fc.add_argument("--out", required=True, help="safetensors file (config key rgb_pretrain.teacher.weights)")
    fc.set_defaults(func=_fetch_clip)

    feat = subparsers.add_parser("features", help="frozen-encoder features")
    feat_sub = feat.add_subparsers(dest="action", required=True)
    ex = feat_sub.add_parser("extract", help="features of every clip of a packed dataset -> Parquet")
    ex.add_argument("--model", required=True, help="model folder with encoder.safetensors + card.json")
    ex.add_argument("--dataset", required=True, help="packed skeleton or RGB dataset folder (the card says which)")
    ex.add_argument("--out", required=True, help="output feature table (.parquet)")
    ex.add_argument("--params", type=json_object, default={}, help=params_help("pretrain", "extract_features"))
    ex.add_argument("--batch-size", type=int, default=None,
                    help="clips per forward pass (default: config key pretrain.features.batch_size)")
    ex.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ex.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ex.set_defaults(func=_extract)

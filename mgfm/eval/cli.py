"""``mgfm eval ...``: one subcommand per protocol, each a thin wrapper over a ``run_*`` function.

Every command first resolves its ``--params`` (the eval keys its step reads, mgfm.config.steps) and checks them
(streams pretrained, modalities built), naming the config key, before reading any data.
"""

from __future__ import annotations

import argparse

from mgfm.cli import json_object, params_help
from mgfm.config import default_seed


def pretrained_streams(args: argparse.Namespace) -> list[str]:
    """The --pretrained-streams list (config key pretrain.streams); every stream when not given."""
    from mgfm.core.layout import STREAMS

    given = [s.strip() for s in (args.pretrained_streams or "").split(",") if s.strip()]
    return given or list(STREAMS)


def _check(args: argparse.Namespace, step: str) -> dict:
    """``--params`` resolved for ``step`` (defaults filled, cut to the step's keys) and checked."""
    from mgfm.config.steps import resolve_step
    from mgfm.eval.checks import check_eval_config, check_modality, check_streams

    params = resolve_step(step, args.params)
    pretrained = pretrained_streams(args)
    check_eval_config(params, pretrained)
    if getattr(args, "modality", None):
        check_modality(args.modality, "--modality")
        if "modalities" in params and args.modality not in params["modalities"]:
            raise ValueError(f"--modality {args.modality!r} is not in config key eval.modalities = "
                             f"{params['modalities']}")
    if getattr(args, "stream", None) and not (getattr(args, "modality", None) == "rgb" and args.stream == "rgb"):
        check_streams([args.stream], pretrained, "--stream")
    return params


def _linear_probe(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.linear_probe import run_linear_probe
    from mgfm.eval.paths import dataset_dir, feature_table, modality_streams, model_dir

    params = _check(args, "eval_linear_probe")
    streams = modality_streams(args.modality, params["streams"])
    set_torch_threads(getattr(args, "threads", 0))
    feats = {s: (str(feature_table(args.features_dir, args.modality, s, "mg_train")),
                 str(feature_table(args.features_dir, args.modality, s, "mg_test"))) for s in streams}
    verify = None
    if args.models_dir and args.datasets_dir:
        verify = {s: (str(model_dir(args.models_dir, args.modality, s)),
                      str(dataset_dir(args.datasets_dir, args.modality, "mg_test"))) for s in streams}
    run_linear_probe(feats, args.taxonomy, params, args.out_dir, args.modality, args.seed, verify)
    return 0


def _retrieval(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.paths import feature_table, modality_streams
    from mgfm.eval.retrieval import run_retrieval

    params = _check(args, "eval_retrieval")
    set_torch_threads(getattr(args, "threads", 0))
    feats = {s: (str(feature_table(args.features_dir, args.modality, s, "mg_train")),
                 str(feature_table(args.features_dir, args.modality, s, "mg_test")))
             for s in modality_streams(args.modality, params["streams"])}
    run_retrieval(feats, args.taxonomy, params, args.out_dir, args.modality)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.finetune import run_finetune
    from mgfm.eval.paths import dataset_dir, model_dir

    params = _check(args, f"eval_{args.protocol}")
    set_torch_threads(getattr(args, "threads", 0))
    run_finetune(args.protocol, str(model_dir(args.models_dir, args.modality, args.stream)),
                 str(dataset_dir(args.datasets_dir, args.modality, "mg_train")),
                 str(dataset_dir(args.datasets_dir, args.modality, "mg_test")),
                 args.taxonomy, params, args.out_dir, args.seed, args.device, args.export_dir)
    return 0


def _emotion(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.emotion import run_emotion
    from mgfm.eval.paths import emotion_members, feature_table, member_name

    params = _check(args, "eval_emotion")
    set_torch_threads(getattr(args, "threads", 0))
    members = {member_name(m, s): str(feature_table(args.features_dir, m, s, "video_clips"))
               for m, s in emotion_members(params["modalities"], params["streams"],
                                           params["emotion"]["skeleton_streams"])}
    run_emotion(members, args.manifest, params, args.out_dir, args.seed)
    return 0


def _emotion_model(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.emotion import export_emotion_model

    params = _check(args, "eval_emotion_model")
    set_torch_threads(getattr(args, "threads", 0))
    pairs = {}
    for flag, given in (("--member", args.member), ("--encoder", args.encoder)):
        bad = [g for g in given if "=" not in g or not g.split("=", 1)[0] or not g.split("=", 1)[1]]
        if bad:
            raise ValueError(f"{flag} {bad[0]!r}: expected NAME=PATH")
        pairs[flag] = dict(g.split("=", 1) for g in given)
    export_emotion_model(pairs["--member"], pairs["--encoder"], args.manifest, params, args.out_dir, args.seed)
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from mgfm.eval.ensemble import run_ensemble
    from mgfm.eval.paths import member_name, modality_streams, protocol_metrics

    params = _check(args, "eval_ensemble")
    members = {member_name(m, s): str(protocol_metrics(args.eval_dir, "finetune", m, s))
               for m in params["modalities"] for s in modality_streams(m, params["streams"])}
    modality_of = {member_name(m, s): m for m in params["modalities"] for s in modality_streams(m, params["streams"])}
    run_ensemble(members, params, args.out_dir, modality_of)
    return 0


def _common(p: argparse.ArgumentParser, modality: bool = True,
            out_help: str = "results/eval/<protocol>/... folder for metrics.json") -> None:
    p.add_argument("--params", type=json_object, default={},
                   help=params_help("eval") + " (the whole section, or the slice of it this step reads)")
    p.add_argument("--pretrained-streams", default="",
                   help="comma-separated streams that were pretrained (config key pretrain.streams; default: all)")
    p.add_argument("--seed", type=int, default=default_seed(), help="global seed (config key 'seed')")
    p.add_argument("--out-dir", required=True, help=out_help)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    if modality:
        p.add_argument("--modality", default="skeleton", help="skeleton or rgb")


def register(subparsers) -> None:
    ev = subparsers.add_parser("eval", help="evaluation protocols (Tables VIII-XIII)")
    sub = ev.add_subparsers(dest="protocol_command", required=True)

    lp = sub.add_parser("linear-probe", help="linear classifier on frozen features, per stream + fusion")
    _common(lp)
    lp.add_argument("--features-dir", required=True, help="results/features")
    lp.add_argument("--taxonomy", required=True, help="taxonomy table (CSV or Parquet): one row per MG class")
    lp.add_argument("--models-dir", default="", help="results/models: re-encode a few clips to check the cache")
    lp.add_argument("--datasets-dir", default="", help="results/packs (with --models-dir)")
    lp.set_defaults(func=_linear_probe)

    rt = sub.add_parser("retrieval", help="training-free nearest-neighbour retrieval, per stream")
    _common(rt)
    rt.add_argument("--features-dir", required=True, help="frozen features (results/features)")
    rt.add_argument("--taxonomy", required=True, help="taxonomy table (CSV or Parquet): one row per MG class")
    rt.set_defaults(func=_retrieval)

    ft = sub.add_parser("finetune", help="fine-tune encoder + classifier (semi-supervised, full, from scratch)")
    _common(ft)
    ft.add_argument("--protocol", required=True, choices=("semi_supervised", "finetune", "scratch"),
                    help="semi_supervised: a fraction of the labels; finetune: all labels; "
                    "scratch: same encoder, random init")
    ft.add_argument("--stream", required=True, help="which pretrained stream's encoder to train (joint, bone, motion)")
    ft.add_argument("--models-dir", required=True, help="results/models")
    ft.add_argument("--datasets-dir", required=True, help="results/packs")
    ft.add_argument("--taxonomy", required=True, help="taxonomy table (CSV or Parquet): one row per MG class")
    ft.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ft.add_argument("--export-dir", default=None,
                    help="also save the first seed's trained classifier here, as inference loads it "
                    "(results/models/classifiers/<modality>/<stream>; the workflow exports the finetune protocol's)")
    ft.set_defaults(func=_finetune)

    em = sub.add_parser("emotion", help="win/lose per labeled video from its clips' frozen features")
    _common(em, modality=False)
    em.add_argument("--features-dir", required=True, help="frozen features of the video clips (results/features)")
    em.add_argument("--manifest", required=True, help="manifest table (CSV or Parquet): one row per video")
    em.set_defaults(func=_emotion)

    eo = sub.add_parser("emotion-model", help="train the win/lose aggregator inference applies (all labeled train "
                        "videos, the first seed) into the models folder")
    _common(eo, modality=False, out_help="the model's folder (results/models/emotion)")
    eo.add_argument("--member", action="append", required=True, help="NAME=video_clips feature table (repeatable)")
    eo.add_argument("--encoder", action="append", required=True,
                    help="NAME=pretrained encoder folder, relative to the models folder (repeatable)")
    eo.add_argument("--manifest", required=True, help="manifest table (outcome and split of each video)")
    eo.set_defaults(func=_emotion_model)

    en = sub.add_parser("ensemble", help="weighted score fusion of the fine-tuned streams")
    _common(en, modality=False)
    en.add_argument("--eval-dir", required=True, help="results/eval (reads finetune/<modality>/<stream>/)")
    en.set_defaults(func=_ensemble)

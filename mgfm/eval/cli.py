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


def _named(flag: str, given: list[str] | None) -> dict[str, str]:
    """``NAME=PATH`` options (repeatable) as a dict; a malformed or repeated name is an error naming ``flag``."""
    out: dict[str, str] = {}
    for g in given or []:
        name, sep, path = g.partition("=")
        if not (sep and name and path):
            raise ValueError(f"{flag} {g!r}: expected NAME=PATH")
        if name in out:
            raise ValueError(f"{flag} {name!r} is given twice")
        out[name] = path
    return out


def _expect(flag: str, given: dict, expected: list[str]) -> None:
    """The files given for ``flag`` must be exactly those of the members the config evaluates."""
    if sorted(given) != sorted(expected):
        raise ValueError(f"{flag} names {sorted(given)}, but the config evaluates {sorted(expected)} "
                         "(config keys eval.streams / eval.modalities)")


def _stream_features(args: argparse.Namespace, streams: list[str]) -> dict[str, tuple[str, str]]:
    """--train-features / --test-features as {stream: (train table, test table)}, checked against ``streams``."""
    train, test = _named("--train-features", args.train_features), _named("--test-features", args.test_features)
    _expect("--train-features", train, streams)
    _expect("--test-features", test, streams)
    return {s: (train[s], test[s]) for s in streams}


def _linear_probe(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.linear_probe import run_linear_probe
    from mgfm.eval.members import modality_streams

    params = _check(args, "eval_linear_probe")
    streams = modality_streams(args.modality, params["streams"])
    set_torch_threads(getattr(args, "threads", 0))
    feats = _stream_features(args, streams)
    verify = None
    encoders = _named("--encoder", args.encoder)
    if encoders or args.test_pack:
        if not (encoders and args.test_pack):
            raise ValueError("--encoder and --test-pack go together (the cache check re-encodes test clips)")
        _expect("--encoder", encoders, streams)
        verify = {s: (encoders[s], args.test_pack) for s in streams}
    run_linear_probe(feats, args.taxonomy, params, args.out_dir, args.modality, args.seed, verify)
    return 0


def _retrieval(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.members import modality_streams
    from mgfm.eval.retrieval import run_retrieval

    params = _check(args, "eval_retrieval")
    set_torch_threads(getattr(args, "threads", 0))
    feats = _stream_features(args, modality_streams(args.modality, params["streams"]))
    run_retrieval(feats, args.taxonomy, params, args.out_dir, args.modality)
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.finetune import run_finetune

    params = _check(args, f"eval_{args.protocol}")
    set_torch_threads(getattr(args, "threads", 0))
    run_finetune(args.protocol, args.model_dir, args.train, args.test, args.taxonomy, params, args.out_dir,
                 args.seed, args.device, args.export_dir)
    return 0


def _emotion(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.emotion import run_emotion
    from mgfm.eval.members import emotion_members, member_name

    params = _check(args, "eval_emotion")
    set_torch_threads(getattr(args, "threads", 0))
    members = _named("--member", args.member)
    expected = [member_name(m, s) for m, s in emotion_members(params["modalities"], params["streams"],
                                                                params["emotion"]["skeleton_streams"])]
    _expect("--member", members, expected)
    # the config's member order, whatever the command line's: the model concatenates the members' features
    run_emotion({name: members[name] for name in expected}, args.manifest, params, args.out_dir, args.seed)
    return 0


def _emotion_model(args: argparse.Namespace) -> int:
    from mgfm.common.accel import set_torch_threads
    from mgfm.eval.emotion import export_emotion_model

    params = _check(args, "eval_emotion_model")
    set_torch_threads(getattr(args, "threads", 0))
    export_emotion_model(_named("--member", args.member), _named("--encoder", args.encoder), args.manifest, params,
                         args.out_dir, args.seed)
    return 0


def _ensemble(args: argparse.Namespace) -> int:
    from mgfm.eval.ensemble import run_ensemble
    from mgfm.eval.members import member_name, modality_streams

    params = _check(args, "eval_ensemble")
    modality_of = {member_name(m, s): m for m in params["modalities"] for s in modality_streams(m, params["streams"])}
    members = _named("--member", args.member)
    _expect("--member", members, list(modality_of))
    run_ensemble({name: members[name] for name in modality_of}, params, args.out_dir, modality_of)
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


def _features(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-features", action="append", required=True,
                   help="STREAM=mg_train feature table (repeatable, one per evaluated stream)")
    p.add_argument("--test-features", action="append", required=True,
                   help="STREAM=mg_test feature table (repeatable, one per evaluated stream)")


def register(subparsers) -> None:
    ev = subparsers.add_parser("eval", help="evaluation protocols (Tables VIII-XIII)")
    sub = ev.add_subparsers(dest="protocol_command", required=True)

    lp = sub.add_parser("linear-probe", help="linear classifier on frozen features, per stream + fusion")
    _common(lp)
    _features(lp)
    lp.add_argument("--taxonomy", required=True, help="taxonomy table (CSV or Parquet): one row per MG class")
    lp.add_argument("--encoder", action="append", default=[],
                    help="STREAM=encoder folder (repeatable, with --test-pack): re-encode a few test clips to check "
                    "that the features are this encoder's")
    lp.add_argument("--test-pack", default="", help="the mg_test pack the test features were extracted from")
    lp.set_defaults(func=_linear_probe)

    rt = sub.add_parser("retrieval", help="training-free nearest-neighbour retrieval, per stream")
    _common(rt)
    _features(rt)
    rt.add_argument("--taxonomy", required=True, help="taxonomy table (CSV or Parquet): one row per MG class")
    rt.set_defaults(func=_retrieval)

    ft = sub.add_parser("finetune", help="fine-tune encoder + classifier (semi-supervised, full, from scratch)")
    _common(ft)
    ft.add_argument("--protocol", required=True, choices=("semi_supervised", "finetune", "scratch"),
                    help="semi_supervised: a fraction of the labels; finetune: all labels; "
                    "scratch: same encoder, random init")
    ft.add_argument("--stream", required=True, help="which pretrained stream's encoder to train (joint, bone, motion)")
    ft.add_argument("--model-dir", required=True, help="the pretrained encoder's folder (encoder.safetensors + card)")
    ft.add_argument("--train", required=True, help="the mg_train pack of the encoder's modality")
    ft.add_argument("--test", required=True, help="the mg_test pack of the encoder's modality")
    ft.add_argument("--taxonomy", required=True, help="taxonomy table (CSV or Parquet): one row per MG class")
    ft.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ft.add_argument("--export-dir", default=None,
                    help="also save the first seed's trained classifier here, as inference loads it "
                    "(results/models/classifiers/<modality>/<stream>; the workflow exports the finetune protocol's)")
    ft.set_defaults(func=_finetune)

    em = sub.add_parser("emotion", help="win/lose per labeled video from its clips' frozen features")
    _common(em, modality=False)
    em.add_argument("--member", action="append", required=True,
                    help="NAME=video_clips feature table of one member encoder (repeatable; names as eval.streams, "
                    "rgb for MG-FM-RGB)")
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
    en.add_argument("--member", action="append", required=True,
                    help="NAME=the finetune protocol's metrics.json of one member (repeatable; its scores.npz sits "
                    "beside it)")
    en.set_defaults(func=_ensemble)

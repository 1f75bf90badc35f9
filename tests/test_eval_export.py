"""The models the eval stage hands to inference: the finetune protocol's first-seed classifier, saved from the
model it trained (the same weights the former separate retraining produced, scoring the test clips exactly as the
protocol did once loaded by ``mgfm.infer.bundle``), and the emotion aggregator."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mgfm.eval.export import CLASSIFIER_NAME, HEAD_NAME, save_classifier, unwrap
from mgfm.eval.finetune import build_classifier, finetune_once, run_finetune

from tests.support.features import write_synthetic_encoders, write_synthetic_features

K = 4
GLOBAL_SEED = 11
# two seeds: only the first one's model is exported; checkpoints every epoch, removed after success (the default)
PARAMS = {"seeds": [0, 1], "validation": {"fraction": 0.25},
          "finetune": {"eval_every": 1, "eval_batch_size": 16, "label_smoothing": 0.1,
                       "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "warmup_epochs": 0,
                                 "schedule": "step", "milestones": [], "checkpoint_every": 1}}}
FILES = {"encoder.safetensors", "card.json", HEAD_NAME, CLASSIFIER_NAME}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    p = write_synthetic_encoders(root, streams=("joint",), num_classes=K, n_train=40, n_test=20, frames=8, hidden=8)
    args = dict(model_dir=str(p["models"] / "skeleton" / "joint"),
                train=str(p["packs"] / "skeleton" / "mg_train"), test=str(p["packs"] / "skeleton" / "mg_test"))
    out = root / "eval" / "finetune" / "skeleton" / "joint"
    export = root / "models" / "classifiers" / "skeleton" / "joint"
    result = run_finetune("finetune", args["model_dir"], args["train"], args["test"], str(p["taxonomy"]), PARAMS,
                          str(out), global_seed=GLOBAL_SEED, export_dir=export)
    return root, p, args, out, export, result


def _old_route_state(root, args) -> dict[str, torch.Tensor]:
    """What inference's separate retraining saved: the protocol's first seed trained once more (checkpoints kept),
    its last checkpoint loaded into a freshly built classifier."""
    from mgfm.config.steps import resolve_step
    from mgfm.models.artifact import read_card

    params = resolve_step("eval_finetune", PARAMS)
    params["finetune"]["keep_checkpoints"] = True
    run_dir = root / "old_route"
    finetune_once("finetune", args["model_dir"], args["train"], args["test"], K, params, run_dir, 0, GLOBAL_SEED)
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    card = read_card(args["model_dir"])
    model, _, _ = build_classifier("finetune", args["model_dir"], card, K, params["finetune"], load_weights=False)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    return model.state_dict()


def test_first_seed_is_exported_with_the_old_routes_weights(exported):
    root, _, args, out, export, result = exported
    assert {f.name for f in export.iterdir()} == FILES           # no run folder, no checkpoint beside it
    assert not list((out / "seed0").glob("checkpoints")) and not list((out / "seed1").glob("checkpoints"))
    info = json.loads((export / CLASSIFIER_NAME).read_text())
    assert (info["protocol"], info["seed"], info["num_classes"]) == ("finetune", 0, K)
    assert info["last_epoch"] == result["per_seed"][0]["last"]
    old = _old_route_state(root, args)
    encoder = load_file(str(export / "encoder.safetensors"))
    head = load_file(str(export / HEAD_NAME))
    assert set(encoder) == {k.removeprefix("encoder.") for k in old if k.startswith("encoder.")}
    for k, v in encoder.items():
        assert torch.equal(v, old[f"encoder.{k}"]), k
    assert torch.equal(head["weight"], old["head.weight"]) and torch.equal(head["bias"], old["head.bias"])


def test_loaded_classifier_reproduces_the_protocols_seed0_scores(exported):
    """Through the bundle loader, the exported classifier's test logits equal the protocol's saved last-epoch
    scores of seed 0 (bit for bit: the same model, the same batches) and differ from seed 1's."""
    from mgfm.infer.bundle import load_classifier
    from mgfm.train.encoder_inputs import open_clips, prepare_input

    _, _, args, out, export, _ = exported
    member = load_classifier(export, "joint", K)
    clips = open_clips(args["test"], member.card)
    bs = PARAMS["finetune"]["eval_batch_size"]
    with torch.inference_mode():
        logits = [member.model(prepare_input(b["x"], b["valid_len"], member.card)).float().numpy()
                  for b in (clips[np.arange(s, min(s + bs, len(clips)))] for s in range(0, len(clips), bs))]
    scores = np.load(out / "scores.npz")
    np.testing.assert_array_equal(np.concatenate(logits), scores["test_last_seed0"])
    assert not np.array_equal(scores["test_last_seed0"], scores["test_last_seed1"])


def test_validation_videos_are_the_held_out_subjects(exported):
    """Inference calibrates its threshold on the videos the protocol held out, never on ones it trained on."""
    from mgfm.common.seeding import derive_seed
    from mgfm.eval.splits import validation_rows
    from mgfm.models.artifact import read_card
    from mgfm.train.encoder_inputs import open_clips

    _, _, args, _, export, _ = exported
    info = json.loads((export / CLASSIFIER_NAME).read_text())
    meta = open_clips(args["train"], read_card(args["model_dir"])).meta
    val = validation_rows(meta, PARAMS["validation"]["fraction"], derive_seed(GLOBAL_SEED, "eval", 0))
    assert info["validation_videos"] == sorted(set(meta.loc[val, "video_id"].astype(str)))
    assert info["train_videos"] == sorted(set(meta.loc[~val, "video_id"].astype(str)))
    assert info["validation_videos"] and not set(info["validation_videos"]) & set(info["train_videos"])
    assert info["class_counts"] == np.bincount(meta.loc[~val, "label"].astype(int), minlength=K).tolist()


def test_no_export_without_a_folder_and_other_protocols_export_nothing(tmp_path):
    p = write_synthetic_encoders(tmp_path, streams=("joint",), num_classes=K, n_train=40, n_test=20, frames=8,
                                 hidden=8)
    params = {**PARAMS, "seeds": [0], "finetune": {**PARAMS["finetune"], "train": {**PARAMS["finetune"]["train"],
                                                                                   "epochs": 1}}}
    run_finetune("scratch", str(p["models"] / "skeleton" / "joint"), str(p["packs"] / "skeleton" / "mg_train"),
                 str(p["packs"] / "skeleton" / "mg_test"), str(p["taxonomy"]), params, str(tmp_path / "scratch"),
                 global_seed=GLOBAL_SEED)
    assert not (tmp_path / "models" / "classifiers").exists()
    assert not list(tmp_path.rglob(CLASSIFIER_NAME))


def test_a_ddp_wrapped_model_is_saved_as_its_module(exported, tmp_path):
    """Under torchrun the trained model may come wrapped: its files are the module's (no 'module.' keys)."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from mgfm.config.steps import resolve_step
    from mgfm.models.artifact import read_card

    _, _, args, _, _, _ = exported
    torch.manual_seed(0)
    ft = resolve_step("eval_finetune", PARAMS)["finetune"]
    model, _, _ = build_classifier("finetune", args["model_dir"], read_card(args["model_dir"]), K, ft)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        wrapped = DistributedDataParallel(model)
        assert unwrap(wrapped) is model and unwrap(model) is model
        save_classifier(tmp_path / "wrapped", wrapped, {"seed": 0})
    finally:
        dist.destroy_process_group()
    save_classifier(tmp_path / "plain", model, {"seed": 0})
    for name in FILES:
        assert (tmp_path / "wrapped" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes(), name
    assert not any(k.startswith("module.") for k in load_file(str(tmp_path / "wrapped" / "encoder.safetensors")))


def test_emotion_model_is_the_protocols_first_seed_when_members_match(tmp_path):
    """With the same (skeleton) members the exported aggregator is the emotion protocol's first-seed model: loaded
    as inference loads it, it scores the test videos as the protocol reported; its description passes the bundle's
    checks."""
    from mgfm.eval.emotion import (OUTCOME_LABEL, AttentionAggregator, binary_metrics, build_sequences, clip_table,
                                   export_emotion_model, run_emotion)
    from mgfm.ingest.contract import load_manifest
    from mgfm.infer.bundle import read_emotion_info

    p = write_synthetic_features(tmp_path, streams=("joint",))
    members = {"joint": str(p["features"] / "skeleton" / "joint" / "video_clips.parquet")}
    params = {"seeds": [3, 4], "emotion": {"epochs": 40, "aggregator": "attention"}}
    models = tmp_path / "models"
    info = export_emotion_model(members, {"joint": "skeleton/joint"}, str(p["manifest"]), params,
                                str(models / "emotion"), global_seed=1)
    assert info["seed"] == 3 and read_emotion_info(models)["members"] == ["joint"]
    protocol = run_emotion(members, str(p["manifest"]), params, str(tmp_path / "eval"), global_seed=1)

    state = load_file(str(models / "emotion" / "aggregator.safetensors"))
    mean, std = state.pop("feature_mean"), state.pop("feature_std")
    model = AttentionAggregator(info["dim"])
    model.load_state_dict(state, strict=True)
    meta, x = clip_table(members)
    seq = build_sequences(meta, x, info["config"]["max_clips"])
    te = seq.split == "test"
    xs = torch.where(torch.from_numpy(seq.mask[te])[..., None], (torch.from_numpy(seq.x[te]) - mean) / std, 0.0)
    with torch.inference_mode():
        pred = model.eval()(xs, torch.from_numpy(seq.mask[te])).argmax(1).numpy()
    man = load_manifest(p["manifest"]).set_index("video_id")
    y = np.array([OUTCOME_LABEL[man.loc[v, "outcome"]] for v in seq.video_id[te]])
    assert binary_metrics(pred, y) == pytest.approx(protocol["per_seed"][0])


def test_emotion_model_needs_an_encoder_per_member(tmp_path):
    from mgfm.eval.emotion import export_emotion_model

    p = write_synthetic_features(tmp_path, streams=("joint",))
    with pytest.raises(ValueError, match=r"members \['joint'\] have no encoder folder"):
        export_emotion_model({"joint": str(p["features"] / "skeleton" / "joint" / "video_clips.parquet")}, {},
                             str(p["manifest"]), {}, str(tmp_path / "emotion"))

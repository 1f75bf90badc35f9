"""Starting MG-FM-RGB from SMILE / VideoMAE checkpoints: SMILE-named .pth files (with SMILE's pickled arguments)
and transformers-named safetensors load into the student and the fine-tuning encoder; the sha256 pin, a missing,
unexpected or misshapen tensor and pickled code are refused with the config key named, before weights are copied."""

from __future__ import annotations

import argparse
import hashlib
import json

import pytest
import torch

pytest.importorskip("transformers")

from mgfm.models.rgb.convert import (CheckpointError, read_checkpoint, start_finetuning_from,  # noqa: E402
                                     start_pretraining_from, to_pretrain_state)
from mgfm.models.rgb.student import RGBEncoder, SmileModel  # noqa: E402
from tests.support.models import student_config  # noqa: E402

from tests.support.rgb import write_synthetic_rgb  # noqa: E402

MODEL = {"num_frames": 8, "image_size": 64, "patch_size": 16, "tubelet_size": 2, "hidden": 32, "depth": 2, "heads": 2,
         "mlp_ratio": 2.0, "decoder_hidden": 16, "decoder_depth": 1, "decoder_heads": 2}


def smile_block(ours: dict, prefix: str, out: str) -> dict:
    """Our layer tensors under ``prefix`` -> SMILE's block names under ``out`` (the converter's inverse)."""
    att = f"{prefix}.attention.attention"
    return {f"{out}.norm1.weight": ours[f"{prefix}.layernorm_before.weight"],
            f"{out}.norm1.bias": ours[f"{prefix}.layernorm_before.bias"],
            f"{out}.attn.qkv.weight": torch.cat([ours[f"{att}.{n}.weight"] for n in ("query", "key", "value")]),
            f"{out}.attn.q_bias": ours[f"{att}.query.bias"], f"{out}.attn.v_bias": ours[f"{att}.value.bias"],
            f"{out}.attn.proj.weight": ours[f"{prefix}.attention.output.dense.weight"],
            f"{out}.attn.proj.bias": ours[f"{prefix}.attention.output.dense.bias"],
            f"{out}.norm2.weight": ours[f"{prefix}.layernorm_after.weight"],
            f"{out}.norm2.bias": ours[f"{prefix}.layernorm_after.bias"],
            f"{out}.mlp.fc1.weight": ours[f"{prefix}.intermediate.dense.weight"],
            f"{out}.mlp.fc1.bias": ours[f"{prefix}.intermediate.dense.bias"],
            f"{out}.mlp.fc2.weight": ours[f"{prefix}.output.dense.weight"],
            f"{out}.mlp.fc2.bias": ours[f"{prefix}.output.dense.bias"]}


def smile_pretrain_state(model: SmileModel) -> dict:
    """A SmileModel's weights in SMILE's PretrainVisionTransformer names."""
    ours = {k: v.clone() for k, v in model.state_dict().items()}
    enc = "encoder.videomae"
    out = {"encoder.patch_embed.proj.weight": ours[f"{enc}.embeddings.patch_embeddings.projection.weight"],
           "encoder.patch_embed.proj.bias": ours[f"{enc}.embeddings.patch_embeddings.projection.bias"],
           "encoder.norm.weight": ours[f"{enc}.layernorm.weight"], "encoder.norm.bias": ours[f"{enc}.layernorm.bias"],
           "decoder.norm.weight": ours["decoder.norm.weight"], "decoder.norm.bias": ours["decoder.norm.bias"],
           "decoder.head.weight": ours["decoder.head.weight"], "decoder.head.bias": ours["decoder.head.bias"],
           "encoder_to_decoder.weight": ours["encoder_to_decoder.weight"], "mask_token": ours["mask_token"]}
    for i in range(model.cfg.depth):
        out.update(smile_block(ours, f"{enc}.encoder.layer.{i}", f"encoder.blocks.{i}"))
    for i in range(model.cfg.decoder_depth):
        out.update(smile_block(ours, f"decoder.decoder_layers.{i}", f"decoder.blocks.{i}"))
    return out


def save_smile(path, state: dict) -> str:
    """A .pth as SMILE's save_model writes it (model, epoch, args as an argparse.Namespace); returns its sha256."""
    torch.save({"model": state, "epoch": 799, "args": argparse.Namespace(model="pretrain_videomae", lr=1.5e-4)}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def reference(tmp_path):
    torch.manual_seed(1)
    ref = SmileModel(student_config(**MODEL), 24)
    path = tmp_path / "smile_k400.pth"
    return ref, path, save_smile(path, smile_pretrain_state(ref))


def test_a_smile_pretraining_file_starts_the_student(reference):
    ref, path, sha = reference
    torch.manual_seed(2)
    model = SmileModel(student_config(**MODEL), 24)
    desc = start_pretraining_from(model, {"checkpoint": str(path), "sha256": sha, "decoder": True})
    assert desc["fresh"] == []
    for k, v in ref.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    # encoder only: the decoder keeps its own initialisation
    torch.manual_seed(3)
    model = SmileModel(student_config(**MODEL), 24)
    before = model.decoder.head.weight.clone()
    desc = start_pretraining_from(model, {"checkpoint": str(path), "sha256": sha, "decoder": False})
    assert torch.equal(model.decoder.head.weight, before) and "decoder.head.weight" in desc["fresh"]
    assert torch.equal(model.encoder.videomae.layernorm.weight, ref.encoder.videomae.layernorm.weight)


def test_a_pinned_digest_missing_unexpected_and_misshapen_tensors_name_the_key(reference, tmp_path):
    ref, path, sha = reference
    key = "rgb_pretrain.init"
    model = SmileModel(student_config(**MODEL), 24)
    pinned = r"rgb_pretrain.init.checkpoint: .* sha256 .*\(rgb_pretrain.init.sha256\)"
    with pytest.raises(CheckpointError, match=pinned):
        start_pretraining_from(model, {"checkpoint": str(path), "sha256": "0" * 64, "decoder": True}, key)
    with pytest.raises(CheckpointError, match=r"rgb_pretrain.init.sha256"):
        start_pretraining_from(model, {"checkpoint": str(path), "sha256": "", "decoder": True}, key)
    state = smile_pretrain_state(ref)
    cases = {"lacks tensors.*encoder.videomae.encoder.layer.1.layernorm_before.bias":
             {k: v for k, v in state.items() if k != "encoder.blocks.1.norm1.bias"},
             "unexpected tensor encoder.cls_token|learned position": {**state, "encoder.cls_token": torch.zeros(1)},
             "other shapes.*decoder.head.weight.*decoder: false": {**state, "decoder.head.weight": torch.zeros(48, 16),
                                                                   "decoder.head.bias": torch.zeros(48)}}
    for i, (message, bad) in enumerate(cases.items()):
        p = tmp_path / f"bad{i}.pth"
        digest = save_smile(p, bad)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(CheckpointError, match=message):
            start_pretraining_from(model, {"checkpoint": str(p), "sha256": digest, "decoder": True}, key)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # nothing copied
    # a pickled object other than tensors, containers and argparse.Namespace is never run
    evil = tmp_path / "evil.pth"
    torch.save({"model": state, "hook": torch.nn.Identity()}, evil)
    with pytest.raises(CheckpointError, match="without running pickled code"):
        read_checkpoint(evil, hashlib.sha256(evil.read_bytes()).hexdigest(), "rgb_pretrain.init.checkpoint")


def test_a_pretraining_file_starts_fine_tuning_as_smile_does(reference, tmp_path):
    """The encoder's tensors come from the file; its final norm and the decoder are left out, fc_norm starts
    fresh; a transformers-named safetensors file of a fine-tuned model loads its fc_norm too."""
    from safetensors.torch import save_file

    ref, path, sha = reference
    enc = RGBEncoder(student_config(**MODEL), pooling="fc_norm", drop_path=0.1)
    desc = start_finetuning_from(enc, {"checkpoint": str(path), "sha256": sha})
    assert desc["fresh"] == ["fc_norm.bias", "fc_norm.weight"]
    assert torch.equal(enc.fc_norm.weight, torch.ones(MODEL["hidden"]))
    for k, v in ref.encoder.state_dict().items():
        if not k.startswith("videomae.layernorm."):
            assert torch.equal(enc.state_dict()[k], v), k
    tuned = RGBEncoder(student_config(**MODEL), pooling="fc_norm")
    torch.nn.init.normal_(tuned.fc_norm.weight)
    hf = {k: v.contiguous() for k, v in tuned.state_dict().items()}
    hf["classifier.weight"], hf["classifier.bias"] = torch.zeros(7, MODEL["hidden"]), torch.zeros(7)
    st = tmp_path / "videomae_finetuned.safetensors"
    save_file(hf, str(st))
    other = RGBEncoder(student_config(**MODEL), pooling="fc_norm")
    desc = start_finetuning_from(other, {"checkpoint": str(st), "sha256": hashlib.sha256(st.read_bytes()).hexdigest()})
    assert desc["fresh"] == [] and torch.equal(other.fc_norm.weight, tuned.fc_norm.weight)


def test_stage1_pretraining_starts_from_the_configured_checkpoint(reference, tmp_path):
    from safetensors.torch import load_file

    from mgfm.train.rgb.pretrain import pretrain_rgb

    ref, path, sha = reference
    data = tmp_path / "pretrain"
    write_synthetic_rgb(data, 16, seed=3)
    params = {"model": MODEL, "teacher": {"kind": "onnx_backbone", "input_size": [64, 64]},
              "init": {"checkpoint": str(path), "sha256": sha, "decoder": False},
              "stage1": {"epochs": 1, "batch_size": 16, "lr": 1e-12, "warmup_epochs": 0, "weight_decay": 0.0}}
    out = pretrain_rgb(data, 1, tmp_path / "stage1", params, seed=0)
    card = json.loads((out / "card.json").read_text())
    assert card["init"]["sha256"] == sha and card["init"]["decoder"] is False
    weights = load_file(str(out / "encoder.safetensors"))
    for k, v in ref.encoder.state_dict().items():
        torch.testing.assert_close(weights[k], v, rtol=0, atol=1e-6, msg=k)


def test_the_converter_reads_transformers_pretraining_names(reference):
    ref, _, _ = reference
    hf = {k.removeprefix("encoder."): v for k, v in ref.state_dict().items()}     # VideoMAEForPreTraining's naming
    assert set(to_pretrain_state(hf, "k")) == set(ref.state_dict())

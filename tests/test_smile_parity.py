"""MG-FM-RGB computes SMILE's function: SMILE's own state dicts (fixture made by running fmthoker/SMILE's modeling
code, see its JSON), converted by ``mgfm.models.rgb.convert``, give SMILE's decoder predictions, visible encoder
tokens and fine-tuning logits, and our target normalisation gives SMILE's normalised targets.

The fixture lives in ``shared/fixtures/smile`` beside the repository (or above it); the test fails rather than
skips whenever a ``shared`` folder is there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("transformers")

from mgfm.models.rgb.convert import load_into, to_classifier_state, to_pretrain_state  # noqa: E402
from mgfm.models.rgb.student import RGBEncoder, SmileModel, StudentConfig  # noqa: E402
from mgfm.models.rgb.targets import normalise_targets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((d / "shared" for d in (ROOT, *ROOT.parents) if (d / "shared").is_dir()), None)
TOL = 1e-5


@pytest.fixture(scope="module")
def fixture():
    if SHARED is None:
        pytest.skip("no shared/ folder beside or above the repository (SMILE parity fixture)")
    folder = SHARED / "fixtures" / "smile"
    tensors, meta = folder / "smile_small.safetensors", folder / "smile_small.json"
    assert tensors.is_file() and meta.is_file(), f"SMILE parity fixture missing under {SHARED}"
    return load_file(str(tensors)), json.loads(meta.read_text())


def _prefixed(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _report(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> float:
    diff = float((ours - theirs).abs().max())
    print(f"SMILE parity {name}: max |ours - SMILE| = {diff:.3g}")
    return diff


def student_config(a: dict) -> StudentConfig:
    return StudentConfig(num_frames=a["num_frames"], image_size=a["img_size"], patch_size=a["patch_size"],
                         tubelet_size=a["tubelet_size"], hidden=a["encoder_embed_dim"], depth=a["encoder_depth"],
                         heads=a["encoder_num_heads"], mlp_ratio=a["mlp_ratio"], decoder_hidden=a["decoder_embed_dim"],
                         decoder_depth=a["decoder_depth"], decoder_heads=a["decoder_num_heads"],
                         layer_norm_eps=a["layernorm_eps"])


def test_pretraining_model_matches_smile(fixture):
    tensors, meta = fixture
    a = meta["pretrain_args"]
    model = SmileModel(student_config(a), a["decoder_num_classes"]).eval()
    fresh = load_into(model, to_pretrain_state(_prefixed(tensors, "pretrain."), "test"), "test", "fixture")
    assert fresh == []                                      # every tensor of ours came from SMILE's state dict
    x = tensors["in.clip"].permute(0, 2, 1, 3, 4)          # SMILE (B, C, T, H, W) -> ours (B, T, C, H, W)
    mask = tensors["in.mask"].bool()
    with torch.no_grad():
        pred, visible = model(x, mask), model.encoder.tokens(x, mask)
    assert pred.shape == tensors["out.pred_masked"].shape
    assert _report("pred_masked", pred, tensors["out.pred_masked"]) < TOL
    assert _report("encoder_visible", visible, tensors["out.encoder_visible"]) < TOL


def test_normalised_targets_match_smile(fixture):
    tensors, _ = fixture
    ours = normalise_targets(tensors["in.teacher_features"])
    assert _report("normalised_targets", ours, tensors["out.normalised_targets"]) < TOL


def test_finetuning_model_matches_smile(fixture):
    from mgfm.eval.finetune import Classifier

    tensors, meta = fixture
    a = meta["finetune_args"]
    assert a["use_mean_pooling"]
    cfg = StudentConfig(num_frames=a["all_frames"], image_size=a["img_size"], patch_size=a["patch_size"],
                        tubelet_size=a["tubelet_size"], hidden=a["embed_dim"], depth=a["depth"], heads=a["num_heads"],
                        mlp_ratio=a["mlp_ratio"], decoder_hidden=8, decoder_depth=1, decoder_heads=1,
                        layer_norm_eps=a["layernorm_eps"])
    encoder = RGBEncoder(cfg, pooling="fc_norm", drop_path=0.1)   # drop-path: training only
    encoder.card = {"feature_dim": cfg.hidden}
    model = Classifier(encoder, a["num_classes"], 0.01).eval()
    assert load_into(model, to_classifier_state(_prefixed(tensors, "finetune."), "test"), "test", "fixture") == []
    with torch.no_grad():
        logits = model(tensors["in.clip"].permute(0, 2, 1, 3, 4))
    assert _report("finetune_logits", logits, tensors["out.finetune_logits"]) < TOL


def test_the_finetuning_encoder_starts_from_a_pretraining_checkpoint(fixture):
    """SMILE's fine-tuning script takes a pretraining file's encoder, drops its final norm and the decoder, and
    starts fc_norm and the head fresh: the converter does the same."""
    tensors, _ = fixture
    state = to_classifier_state(_prefixed(tensors, "pretrain."), "test")
    assert not any(k.startswith(("decoder", "mask_token", "encoder_to_decoder", "head")) for k in state)
    assert "encoder.videomae.layernorm.weight" in state                  # the pretrained final norm
    torch.testing.assert_close(state["encoder.videomae.encoder.layer.1.attention.attention.value.weight"],
                               tensors["pretrain.encoder.blocks.1.attn.qkv.weight"][128:])

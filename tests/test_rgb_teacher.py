"""MG-FM-RGB teachers: our CLIP loading equals transformers' own model on random weights (from OpenAI's TorchScript
layout and from a Hugging Face safetensors file), and the demo teacher equals onnxruntime on the same ONNX node."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mgfm.models.rgb.targets import normalise_targets, teacher_targets
from mgfm.models.rgb.teacher import DEMO_TEACHER_NODE, ClipTeacher, OnnxBackboneTeacher, build_teacher
from mgfm.pose.params import DEMO_MODEL

transformers = pytest.importorskip("transformers")
SIZES = dict(image_size=64, patch_size=16, hidden=32, depth=2, heads=2, mlp_dim=64)


def _library_clip(seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=16,
                  image_size=64, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    model = CLIPModel(CLIPConfig(vision_config=vision, text_config=dict(hidden_size=32, num_hidden_layers=1,
                                                                        num_attention_heads=2, intermediate_size=64)))
    for p in model.parameters():  # LayerNorms start at 1 / 0: randomise everything so no mapping error hides
        torch.nn.init.normal_(p, std=0.2)
    return model.eval()


def _reference_tokens(model, frames):
    from mgfm.models.rgb.teacher import CLIP_MEAN, CLIP_STD

    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        out = model.vision_model(pixel_values=(frames - mean) / std)
        return model.vision_model.post_layernorm(out.last_hidden_state)[:, 1:]


def _openai_layout(model) -> dict[str, torch.Tensor]:
    """The library model's vision tower written the way OpenAI's checkpoint names it (independent of our mapping)."""
    sd = {k[len("vision_model."):]: v for k, v in model.state_dict().items() if k.startswith("vision_model.")}
    out = {"visual.class_embedding": sd["embeddings.class_embedding"],
           "visual.conv1.weight": sd["embeddings.patch_embedding.weight"],
           "visual.positional_embedding": sd["embeddings.position_embedding.weight"],
           "visual.ln_pre.weight": sd["pre_layrnorm.weight"], "visual.ln_pre.bias": sd["pre_layrnorm.bias"],
           "visual.ln_post.weight": sd["post_layernorm.weight"], "visual.ln_post.bias": sd["post_layernorm.bias"],
           "visual.proj": torch.randn(32, 16)}
    for i in range(2):
        a, b = f"encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        out[b + "attn.in_proj_weight"] = torch.cat([sd[a + f"self_attn.{n}_proj.weight"] for n in "qkv"])
        out[b + "attn.in_proj_bias"] = torch.cat([sd[a + f"self_attn.{n}_proj.bias"] for n in "qkv"])
        for src, dst in {"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
                         "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}.items():
            for leaf in ("weight", "bias"):
                out[f"{b}{dst}.{leaf}"] = sd[f"{a}{src}.{leaf}"]
    return {k: v.contiguous() for k, v in out.items()}


def test_clip_teacher_from_hf_safetensors_equals_library(tmp_path):
    model = _library_clip()
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    teacher = ClipTeacher(path, (4, 4), **SIZES)
    frames = torch.rand(3, 3, 64, 64)
    ref = _reference_tokens(model, frames)
    assert ref.shape == (3, 16, 32)
    torch.testing.assert_close(teacher(frames), ref, rtol=1e-5, atol=1e-5)


def test_clip_teacher_from_openai_torchscript_equals_library(tmp_path):
    from mgfm.train.rgb.clip_fetch import convert_openai_clip

    model = _library_clip(seed=1)
    state = _openai_layout(model)
    root = torch.nn.Module()
    for key, value in state.items():          # a TorchScript archive with OpenAI's parameter names
        *path, leaf = key.split(".")
        mod = root
        for part in path:
            if not hasattr(mod, part):
                mod.add_module(part, torch.nn.Module())
            mod = getattr(mod, part)
        mod.register_parameter(leaf, torch.nn.Parameter(value.clone(), requires_grad=False))
    archive = tmp_path / "ViT-B-16.pt"
    torch.jit.save(torch.jit.script(root), str(archive))
    weights = convert_openai_clip(archive, tmp_path / "clip.safetensors")
    teacher = ClipTeacher(weights, (4, 4), **SIZES)
    frames = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(teacher(frames), _reference_tokens(model, frames), rtol=1e-5, atol=1e-5)
    # a smaller student grid gets the area average of the teacher's tokens
    pooled = ClipTeacher(weights, (2, 2), **SIZES)(frames)
    ref = _reference_tokens(model, frames).transpose(1, 2).reshape(2, 32, 4, 4)
    torch.testing.assert_close(pooled, torch.nn.functional.avg_pool2d(ref, 2).flatten(2).transpose(1, 2))


def test_missing_clip_weights_name_the_file_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors.*rgb_pretrain\.teacher\.weights"):
        ClipTeacher(tmp_path / "nope.safetensors", (4, 4), **SIZES)


def test_demo_teacher_equals_onnxruntime_on_its_node():
    import onnx
    import onnxruntime as ort

    teacher = build_teacher({"kind": "onnx_backbone", "onnx": "", "node": DEMO_TEACHER_NODE, "input_size": [128, 128],
                             "cache": False, "weights": "", "url": "", "sha256": "", "clip": {}}, (4, 4))
    assert isinstance(teacher, OnnxBackboneTeacher) and teacher.dim == 64
    assert not any(p.requires_grad for p in teacher.parameters())
    model = onnx.load(str(DEMO_MODEL))
    model.graph.output.append(onnx.helper.make_tensor_value_info(DEMO_TEACHER_NODE, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 3, 96, 128)).astype(np.float32)
    ref = sess.run([DEMO_TEACHER_NODE], {"input": x})[0]
    np.testing.assert_allclose(teacher._run(torch.from_numpy(x)).numpy(), ref, atol=1e-4, rtol=1e-4)
    assert teacher(torch.rand(2, 3, 64, 64)).shape == (2, 16, 64)


def test_targets_are_the_first_frame_of_each_tubelet_normalised():
    class Mean(torch.nn.Module):
        dim = 3

        def forward(self, frames):  # a per-frame 'teacher': 4 tokens of the frame's channel means
            return frames.mean(dim=(2, 3))[:, None].expand(-1, 4, -1) + torch.arange(4.0)[None, :, None]

    clips = torch.rand(2, 6, 3, 8, 8)
    out = teacher_targets(Mean(), clips, tubelet=2)
    raw = torch.stack([Mean()(clips[:, t]) for t in (0, 2, 4)], dim=1).reshape(2, 12, 3)
    torch.testing.assert_close(out, normalise_targets(raw))
    torch.testing.assert_close(out.mean(dim=1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(dim=1), torch.ones(2, 3), atol=1e-3, rtol=0)

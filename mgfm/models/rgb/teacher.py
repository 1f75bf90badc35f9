"""Frozen per-frame teachers of MG-FM-RGB: image encoders whose patch tokens, on the student's token grid, are
the distillation targets (SMILE's semantic reconstruction).

- ``ClipTeacher`` (paper scale): OpenAI CLIP ViT-B/16 as ``transformers``' ``CLIPVisionModel``, loaded from a local
  safetensors file (Hugging Face layout, ``vision_model.*`` keys of a full CLIP or the vision tower alone). Targets:
  every patch token after ``post_layernorm`` (OpenAI's ln_post), CLS dropped, no projection.
- ``OnnxBackboneTeacher`` (demo): the backbone of the shipped demo pose model (``demo_wholebody.onnx``), i.e. a
  network trained on the demo's rendered people. The ONNX graph (BatchNorm folded into its convolutions) is executed
  in torch up to one named node, ``/backbone/backbone.9/act/Relu_output_0`` by default: the 64-channel, stride-16
  output of the last residual block, the map the keypoint head reads. It is average-pooled to the student's grid.

Both map frames (N, 3, H, W) in [0, 1] to tokens (N, h' * w', D) on the student grid (row-major) and never train.
What a teacher is fed (``teacher.input_norm``): ``imagenet`` normalises the frames with ImageNet's mean and std, the
clip the student sees, as SMILE feeds its teacher; ``own`` with the teacher's own training statistics (CLIP's, or
the ONNX model's sidecar values).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mgfm.models.rgb.student import IMAGENET_MEAN, IMAGENET_STD

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT_NORMS = ("imagenet", "own")
DEMO_TEACHER_NODE = "/backbone/backbone.9/act/Relu_output_0"


def _to_grid(tokens: torch.Tensor, src: tuple[int, int], grid: tuple[int, int]) -> torch.Tensor:
    """(N, h*w, D) on ``src`` -> (N, gh*gw, D) on ``grid`` (area average; identity when equal)."""
    if tuple(src) == tuple(grid):
        return tokens
    n, _, d = tokens.shape
    maps = tokens.transpose(1, 2).reshape(n, d, *src)
    return F.adaptive_avg_pool2d(maps, grid).flatten(2).transpose(1, 2)


class ClipTeacher(nn.Module):
    """CLIP ViT patch tokens after ln_post, CLS dropped; frames resized to ``image_size`` and normalised with
    ``mean`` / ``std`` (CLIP's own by default) first."""

    def __init__(self, weights: str | os.PathLike | None, grid: tuple[int, int], image_size: int, patch_size: int,
                 hidden: int, depth: int, heads: int, mlp_dim: int, mean: tuple[float, ...] = CLIP_MEAN,
                 std: tuple[float, ...] = CLIP_STD) -> None:
        super().__init__()
        from transformers import CLIPVisionConfig, CLIPVisionModel

        cfg = CLIPVisionConfig(hidden_size=hidden, num_hidden_layers=depth, num_attention_heads=heads,
                               intermediate_size=mlp_dim, patch_size=patch_size, image_size=image_size,
                               hidden_act="quick_gelu", layer_norm_eps=1e-5)
        self.model = CLIPVisionModel(cfg)
        self.image_size, self.grid, self.dim = image_size, tuple(grid), hidden
        self.src_grid = (image_size // patch_size, image_size // patch_size)
        self.mean, self.std = tuple(mean), tuple(std)
        if weights is not None:
            self.model.load_state_dict(clip_vision_state(weights), strict=True)
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> ClipTeacher:  # always frozen
        return super().train(False)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.float()
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        hidden = self.model(pixel_values=(x - mean) / std).last_hidden_state
        tokens = self.model.post_layernorm(hidden[:, 1:])
        return _to_grid(tokens, self.src_grid, self.grid)


def clip_vision_state(weights: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The vision tower's tensors of a CLIP safetensors file, named as ``CLIPVisionModel``'s state dict."""
    from safetensors.torch import load_file

    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CLIP teacher weights missing (config key rgb_pretrain.teacher.weights; "
                                "the workflow's fetch_rgb_teacher rule downloads them)")
    state = load_file(str(path))
    if any(k.startswith("visual.") for k in state):
        return openai_clip_to_hf(state)
    vision = {k[len("vision_model."):]: v for k, v in state.items() if k.startswith("vision_model.")}
    if not vision:
        vision = {k: v for k, v in state.items() if k.split(".")[0] in ("embeddings", "pre_layrnorm", "encoder",
                                                                      "post_layernorm")}
    if not vision:
        raise ValueError(f"{path}: no CLIP vision tensors (expected keys 'vision_model.*')")
    return vision


def openai_clip_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI CLIP's image tower (``visual.*`` of its ViT-B-16.pt) renamed to ``CLIPVisionModel``'s state dict:
    the fused attention in-projection is split into q, k, v; the output projection ``visual.proj`` is dropped
    (the targets are patch tokens before it)."""
    v = {k[len("visual."):]: t for k, t in state.items() if k.startswith("visual.")}
    out = {"embeddings.class_embedding": v["class_embedding"], "embeddings.patch_embedding.weight": v["conv1.weight"],
           "embeddings.position_embedding.weight": v["positional_embedding"],
           "pre_layrnorm.weight": v["ln_pre.weight"], "pre_layrnorm.bias": v["ln_pre.bias"],
           "post_layernorm.weight": v["ln_post.weight"], "post_layernorm.bias": v["ln_post.bias"]}
    depth = 1 + max(int(k.split(".")[2]) for k in v if k.startswith("transformer.resblocks."))
    for i in range(depth):
        a, b = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        for name, t in zip("qkv", v[a + "attn.in_proj_weight"].chunk(3)):
            out[f"{b}self_attn.{name}_proj.weight"] = t
        for name, t in zip("qkv", v[a + "attn.in_proj_bias"].chunk(3)):
            out[f"{b}self_attn.{name}_proj.bias"] = t
        pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for src, dst in pairs.items():
            for leaf in ("weight", "bias"):
                out[f"{b}{dst}.{leaf}"] = v[f"{a}{src}.{leaf}"]
    return {k: t.contiguous() for k, t in out.items()}


class OnnxBackboneTeacher(nn.Module):
    """A prefix of an ONNX CNN graph (Conv / Relu / Add / Clip nodes) run in torch with the file's weights."""

    def __init__(self, onnx_path: str | os.PathLike, node: str, grid: tuple[int, int], input_size: tuple[int, int],
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: teacher ONNX model missing (config key rgb_pretrain.teacher.onnx)")
        graph = onnx.load(str(path)).graph
        inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.input_name = graph.input[0].name
        self.ops: list[tuple[str, list[str], str, dict]] = []
        self.params = nn.ParameterDict()
        produced = {self.input_name}
        for n in graph.node:
            if n.op_type not in ("Conv", "Relu", "Add"):
                raise ValueError(f"{path}: node {n.output[0]!r} ({n.op_type}) before {node!r} is not supported")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            ins = []
            for name in n.input:
                if name in inits:
                    key = f"p{len(self.params)}"
                    self.params[key] = nn.Parameter(torch.from_numpy(np.array(inits[name])), requires_grad=False)
                    ins.append("@" + key)
                else:
                    if name not in produced:
                        raise ValueError(f"{path}: node input {name!r} is not computed before {node!r}")
                    ins.append(name)
            self.ops.append((n.op_type, ins, n.output[0], attrs))
            produced.add(n.output[0])
            if n.output[0] == node:
                break
        else:
            raise ValueError(f"{path}: no node output named {node!r} (config key rgb_pretrain.teacher.node)")
        self.node, self.grid, self.input_size = node, tuple(grid), tuple(input_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.dim = int(next(v for op, ins, out, a in reversed(self.ops) if op == "Conv"
                            for v in [self.params[ins[1][1:]].shape[0]]))
        self.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> OnnxBackboneTeacher:  # always frozen
        return super().train(False)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: x}
        get = lambda name: self.params[name[1:]] if name.startswith("@") else values[name]  # noqa: E731
        for op, ins, out, a in self.ops:
            if op == "Conv":
                pads = a.get("pads", [0, 0, 0, 0])
                if pads[:2] != pads[2:]:
                    raise ValueError(f"asymmetric padding in {out!r} is not supported")
                values[out] = F.conv2d(get(ins[0]), get(ins[1]), get(ins[2]) if len(ins) > 2 else None,
                                       stride=tuple(a.get("strides", [1, 1])), padding=tuple(pads[:2]),
                                       dilation=tuple(a.get("dilations", [1, 1])), groups=int(a.get("group", 1)))
            elif op == "Relu":
                values[out] = F.relu(get(ins[0]))
            else:
                values[out] = get(ins[0]) + get(ins[1])
        return values[self.node]

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, gh*gw, C): resized to input_size (w, h), normalised like the pose model."""
        w, h = self.input_size
        x = F.interpolate(frames.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        fmap = self._run((x * 255.0 - self.mean) / self.std)
        return F.adaptive_avg_pool2d(fmap, self.grid).flatten(2).transpose(1, 2)


def build_teacher(p: dict, grid: tuple[int, int]) -> nn.Module:
    """The teacher of a resolved ``rgb_pretrain.teacher`` block for a student grid (h', w')."""
    norm = p.get("input_norm", "imagenet")
    if norm not in INPUT_NORMS:
        raise ValueError(f"config key rgb_pretrain.teacher.input_norm: {norm!r} is not one of {INPUT_NORMS}")
    imagenet = norm == "imagenet"
    if p["kind"] == "clip":
        c = p["clip"]
        if not p["weights"]:
            raise ValueError("config key rgb_pretrain.teacher.weights: a CLIP teacher needs its weights file")
        stats = (IMAGENET_MEAN, IMAGENET_STD) if imagenet else (CLIP_MEAN, CLIP_STD)
        return ClipTeacher(p["weights"], grid, c["image_size"], c["patch_size"], c["hidden"], c["depth"],
                           c["heads"], c["mlp_dim"], *stats)
    if p["kind"] == "onnx_backbone":
        import json

        from mgfm.pose.params import DEMO_MODEL

        onnx_path = Path(p["onnx"]) if p["onnx"] else DEMO_MODEL
        side_path = onnx_path.with_suffix(".json")
        side = json.loads(side_path.read_text()) if side_path.is_file() else {}
        size = tuple(p["input_size"]) if p["input_size"] else tuple(side.get("input_size", (128, 96)))
        if imagenet:    # the graph takes 0-255 pixels
            mean, std = tuple(255 * m for m in IMAGENET_MEAN), tuple(255 * s for s in IMAGENET_STD)
        else:
            mean = tuple(side.get("mean", (123.675, 116.28, 103.53)))
            std = tuple(side.get("std", (58.395, 57.12, 57.375)))
        return OnnxBackboneTeacher(onnx_path, p["node"], grid, size, mean, std)
    raise ValueError(f"config key rgb_pretrain.teacher.kind: unknown teacher {p['kind']!r}")

"""MG-FM-Skele is USDRL's DSTE: the reference's state dict, loaded through ``usdrl_to_mgfm``, gives the
reference's tokens, projector outputs and loss number for number (fixture made by running the reference code,
see its JSON for how each tensor was made)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mgfm.models import DSTE, DSTEConfig, PretrainModel
from mgfm.models.projectors import ProjectorConfig
from mgfm.models.losses import DecorrelationWeights, multi_grained_decorrelation_loss
from mgfm.models.usdrl import usdrl_to_mgfm
from mgfm.config import resolve

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "usdrl"
TENSORS, META = FIXTURE / "usdrl_small.safetensors", FIXTURE / "usdrl_small.json"
pytestmark = pytest.mark.skipif(not (TENSORS.is_file() and META.is_file()),
                                reason=f"USDRL parity fixture not found at {FIXTURE} (shared/ beside the repo)")
GRAINS = {"z_t": "temporal", "z_s": "spatial", "z_i": "instance"}


@pytest.fixture(scope="module")
def fixture():
    return load_file(str(TENSORS)), json.loads(META.read_text())


def build(meta: dict, x: torch.Tensor, drop_path: float) -> PretrainModel:
    """Our model at the fixture's sizes: lengths from the input shape, the rest from the reference constructor."""
    c = meta["constructor"]
    _, channels, frames, joints, persons = x.shape
    hidden = c["hidden_size"]
    model = resolve("pretrain", {"model": {
        "num_frames": frames, "num_joints": joints, "num_channels": channels, "num_persons": persons,
        "hidden": hidden, "heads": c["num_head"], "depth": c["num_layer"], "gap": c["gap"], "alpha": c["alpha"],
        "mlp_ratio": 2.0, "drop_path": drop_path,
        "projector_dims": [2 * hidden] * 3, "instance_projector_dims": [2 * hidden] * 2 + [4 * hidden]}})["model"]
    assert c["kernel_size"] == 1 and c["t_input_size"] == persons * joints * channels
    return PretrainModel(DSTE(DSTEConfig.from_section(model)), ProjectorConfig.from_section(model))


def loaded(fixture, drop_path: float) -> PretrainModel:
    tensors, meta = fixture
    model = build(meta, tensors["input.x"], drop_path)
    state = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    model.load_state_dict(usdrl_to_mgfm(state), strict=True)
    return model


def test_parameter_counts_match_the_reference(fixture):
    _, meta = fixture
    model = loaded(fixture, 0.1)
    assert sum(p.numel() for p in model.encoder.parameters()) == meta["backbone_params"]
    assert sum(p.numel() for p in model.parameters()) == meta["params"]


def test_token_layout_matches_the_reference(fixture):
    tensors, _ = fixture
    xt, xs = DSTE.stream_tokens(tensors["input.x"])
    assert torch.equal(xt, tensors["input.xt"]) and torch.equal(xs, tensors["input.xs"])


def test_eval_outputs_match_within_1e_5(fixture):
    tensors, _ = fixture
    model = loaded(fixture, 0.1).eval()
    with torch.no_grad():
        yt, ys = model.encoder.tokens(tensors["input.x"])
        z = model(tensors["input.x"].unsqueeze(0))
    torch.testing.assert_close(yt, tensors["out.y_t"], rtol=0, atol=1e-5)
    torch.testing.assert_close(ys, tensors["out.y_s"], rtol=0, atol=1e-5)
    for key, grain in GRAINS.items():
        torch.testing.assert_close(z[grain][0], tensors[f"out.{key}"], rtol=0, atol=1e-5)


def test_train_mode_views_match(fixture):
    """Four views in train mode (BatchNorm batch statistics per view, DropPath off) as the reference ran them."""
    tensors, _ = fixture
    model = loaded(fixture, 0.0).train()
    views = torch.stack([tensors[f"input.view{i}"] for i in range(4)])
    with torch.no_grad():
        z = model(views)
    for key, grain in GRAINS.items():
        for i in range(4):
            torch.testing.assert_close(z[grain][i], tensors[f"out.view{i}.{key}"], rtol=0, atol=1e-5)


def test_loss_matches_within_1e_5_relative(fixture):
    tensors, meta = fixture
    views = {grain: torch.stack([tensors[f"out.view{i}.{key}"] for i in range(4)]) for key, grain in GRAINS.items()}
    weights = DecorrelationWeights.from_section(resolve("pretrain", {})["loss"])
    total, terms = multi_grained_decorrelation_loss(views, weights)
    want = meta["loss"]
    for name in ("sim", "vac", "xcorr"):
        assert terms[name].item() == pytest.approx(want[name], rel=1e-5), name
    assert total.item() == pytest.approx(want["total"], rel=1e-5)

"""The analytic FLOP count matches torch's FLOP counter on the real forward pass."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from mgfm.models import DSTE, PretrainModel
from mgfm.models.dste import DSTEConfig
from mgfm.models.flops import encoder_forward_flops, pretrain_flops_per_clip
from mgfm.models.projectors import ProjectorConfig
from mgfm.config import resolve


def test_encoder_and_projector_flops_match_torch_counter():
    model_cfg = resolve("pretrain", {"model": {"num_frames": 12, "num_joints": 9, "hidden": 16, "depth": 2, "heads": 2,
                                            "drop_path": 0.0, "projector_dims": [24, 24],
                                            "instance_projector_dims": [24, 40]}})["model"]
    cfg = DSTEConfig.from_section(model_cfg)
    model = PretrainModel(DSTE(cfg), ProjectorConfig.from_section(model_cfg)).eval()
    x = torch.randn(5, 3, 12, 9)
    # the counter does not see the CPU attention kernel: QK^T and AV, 4 L^2 D per sequence, 3 sequences per layer
    unseen = 5 * cfg.depth * 3 * 4 * (12 ** 2 + 9 ** 2) * cfg.hidden
    with FlopCounterMode(display=False) as counter:
        model.encoder(x)
    assert counter.get_total_flops() + unseen == 5 * encoder_forward_flops(cfg)
    with FlopCounterMode(display=False) as counter:
        model(x.unsqueeze(0))
    want = 5 * pretrain_flops_per_clip(cfg, [24, 24], [24, 40], 1)["forward_per_view"]
    assert counter.get_total_flops() + unseen == want


def test_paper_step_flops_are_plausible():
    paper = resolve("pretrain", {})["model"]
    cfg = DSTEConfig.from_section(paper)
    f = pretrain_flops_per_clip(cfg, paper["projector_dims"], paper["instance_projector_dims"], 4)
    # per DST layer ~50 MFLOPs per token (1024 wide, attention and MLP used three times), 127 tokens, 2 layers
    assert 1e10 < f["encoder_forward_per_view"] < f["forward_per_view"] < 2e10
    assert f["train_step"] == 3 * (4 * f["forward_per_view"] + f["loss_forward"])

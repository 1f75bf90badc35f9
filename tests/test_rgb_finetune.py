"""The RGB fine-tuning recipe: layer-wise lr decay groups (applied by the shared loop), mixup and CutMix."""

from __future__ import annotations

import pytest
import torch

from mgfm.train.mix import mix_batch, smooth_onehot

pytest.importorskip("transformers")


def _classifier(decay):
    from mgfm.eval.finetune import Classifier
    from mgfm.models.rgb.student import RGBEncoder

    enc = RGBEncoder(num_frames=4, image_size=32, patch_size=16, tubelet_size=2, hidden=16, depth=3, heads=2,
                     mlp_ratio=2.0, decoder_hidden=8, decoder_depth=1, decoder_heads=2)
    enc.card = {"feature_dim": 16}
    return Classifier(enc, 5, 0.01, decay)


def test_layer_decay_groups():
    model = _classifier(0.5)
    groups = model.optimizer_groups(0.05)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())          # every parameter exactly once
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    enc = model.encoder.videomae
    assert scale[id(model.head.weight)] == 1.0
    assert scale[id(enc.embeddings.patch_embeddings.projection.weight)] == 0.5 ** 4
    assert scale[id(enc.encoder.layer[0].attention.attention.query.weight)] == 0.5 ** 3
    assert scale[id(enc.encoder.layer[2].output.dense.weight)] == 0.5
    assert wd[id(model.head.bias)] == 0.0 and wd[id(model.head.weight)] == 0.05
    assert len(_classifier(None).optimizer_groups(0.05)) == 1


def test_the_loop_applies_lr_scale(tmp_path):
    from mgfm.train.loop import TrainConfig, fit

    class Two(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.frozen_by_scale, self.free = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)

        def optimizer_groups(self, weight_decay):
            return [{"params": list(self.frozen_by_scale.parameters()), "lr_scale": 0.0},
                    {"params": list(self.free.parameters())}]

        def forward(self, x):
            return self.free(self.frozen_by_scale(x))

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, idx):
            return {"x": torch.randn(len(idx), 3)}

    model = Two()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=4, optimizer="sgd", lr=0.1, weight_decay=0.0, betas=(0.9, 0.999), eps=1e-8,
                      momentum=0.0, schedule="cosine", warmup_epochs=0, milestones=(), gamma=0.1, min_lr=0.0, amp=False,
                      grad_clip=0.0, checkpoint_every=1, log_every_steps=1, num_workers=0, seed=0)
    fit(model, Data(), lambda m, b, c: (m(b["x"]).pow(2).mean(), {}), cfg, tmp_path, "fp", device="cpu")
    after = model.state_dict()
    assert torch.equal(after["frozen_by_scale.weight"], before["frozen_by_scale.weight"])
    assert not torch.equal(after["free.weight"], before["free.weight"])


def test_mixup_and_cutmix():
    x = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1, 1).expand(4, 2, 3, 8, 8).contiguous()
    y = torch.tensor([0, 1, 2, 3])
    same, t = mix_batch(x, y, 4, 0.1, 0.0, 0.0, torch.Generator().manual_seed(0))
    assert same is x and torch.allclose(t, smooth_onehot(y, 4, 0.1))
    for mixup, cutmix in ((0.8, 0.0), (0.0, 1.0), (0.8, 1.0)):
        a, ta = mix_batch(x, y, 4, 0.1, mixup, cutmix, torch.Generator().manual_seed(3))
        b, tb = mix_batch(x, y, 4, 0.1, mixup, cutmix, torch.Generator().manual_seed(3))
        assert torch.equal(a, b) and torch.equal(ta, tb)                # one draw per generator state
        torch.testing.assert_close(ta.sum(1), torch.ones(4))
        # the soft target's weight on the clip's own class matches how much of the clip is left
        own = ta[torch.arange(4), y] - 0.1 / 4
        if cutmix > 0 and mixup == 0:
            kept = (a == x).float().mean(dim=(1, 2, 3, 4))
            torch.testing.assert_close(own / 0.9, kept, atol=1e-5, rtol=0)

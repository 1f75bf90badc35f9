"""The RGB fine-tuning recipe: layer-wise lr decay groups (applied by the shared loop), mixup and CutMix."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mgfm.config import resolve
from mgfm.train.mix import mix_batch, smooth_onehot
from tests.support.models import student_config

pytest.importorskip("transformers")


def _classifier(decay):
    from mgfm.eval.finetune import Classifier
    from mgfm.models.rgb.student import RGBEncoder

    enc = RGBEncoder(student_config(num_frames=4, image_size=32, patch_size=16, tubelet_size=2, hidden=16, depth=3,
                                    heads=2, mlp_ratio=2.0, decoder_hidden=8, decoder_depth=1, decoder_heads=2))
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


# ---------------------------------------------------------------------------------------------- SMILE's recipe
ARCH = {"num_frames": 4, "image_size": 32, "patch_size": 16, "tubelet_size": 2, "hidden": 16, "depth": 2, "heads": 2,
        "mlp_ratio": 2.0, "decoder_hidden": 8, "decoder_depth": 1, "decoder_heads": 2}


def test_drop_path_drops_whole_residual_branches_per_sample_and_keeps_the_checkpoint_names():
    from mgfm.models.rgb.student import RGBEncoder

    plain, dropped = RGBEncoder(student_config(**ARCH)), RGBEncoder(student_config(**ARCH), drop_path=0.6)
    assert list(plain.state_dict()) == list(dropped.state_dict())
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(6, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(dropped.eval()(x), plain.eval()(x), rtol=0, atol=0)   # eval: no drop-path
        # train mode: layer 0 has rate 0 (linear 0 .. 0.6), layer 1 rate 0.6 on both of its branches
        h = plain.videomae.embeddings(x, None)
        h = plain.videomae.encoder.layer[0](h)
        layer = plain.videomae.encoder.layer[1]
        torch.manual_seed(5)
        keep_attn = torch.empty(6, 1, 1).bernoulli_(0.4) / 0.4
        keep_mlp = torch.empty(6, 1, 1).bernoulli_(0.4) / 0.4
        h = h + keep_attn * layer.attention(layer.layernorm_before(h))
        h = h + keep_mlp * layer.output.dense(layer.intermediate(layer.layernorm_after(h)))
        expected = plain.videomae.layernorm(h).mean(1)
        dropped.train()
        torch.manual_seed(5)
        torch.testing.assert_close(dropped(x), expected)
    assert 0 < int((keep_attn == 0).sum()) < 6 or 0 < int((keep_mlp == 0).sum()) < 6


def test_fc_norm_pooling_is_a_layernorm_of_the_mean_of_the_last_layer():
    from mgfm.models.artifact import encoder_from_arch
    from mgfm.models.rgb.student import RGBEncoder

    enc = encoder_from_arch("videomae", {**ARCH, "pooling": "fc_norm"}).eval()
    assert enc.videomae.layernorm is None and "fc_norm.weight" in enc.state_dict()
    torch.nn.init.normal_(enc.fc_norm.weight)
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        tokens = enc.videomae.encoder(enc.videomae.embeddings(x, None)).last_hidden_state
        torch.testing.assert_close(enc(x), enc.fc_norm(tokens.mean(1)))
    assert enc.arch["pooling"] == "fc_norm"
    # every LayerNorm takes the arch's eps; a card written before the key existed keeps transformers' 1e-12
    assert enc.fc_norm.eps == enc.videomae.encoder.layer[0].layernorm_before.eps == 1e-12
    smile = RGBEncoder(student_config(**ARCH, layer_norm_eps=1e-6), pooling="fc_norm")
    assert smile.fc_norm.eps == smile.videomae.encoder.layer[1].layernorm_after.eps == 1e-6


def _frame(seed=0, size=48):
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.stack([(xx * 5) % 256, (yy * 3 + 20) % 256, ((xx + yy) * 2) % 256], -1) * 0.7
    return (img + rng.integers(0, 60, (size, size, 3))).clip(0, 255).astype(np.uint8)


def test_randaugment_ops_are_pils_as_smile_applies_them():
    """Each op against PIL's (SMILE's RandAugment calls PIL on every frame): colour ops within one grey level,
    geometric ops (bicubic, grey fill) within the difference of the two bicubic kernels."""
    import numpy as np
    from PIL import Image, ImageEnhance, ImageOps

    from mgfm.train.rgb.augment import OPS, apply_op

    img = _frame()
    pil = Image.fromarray(img)
    x = torch.from_numpy(img).permute(2, 0, 1).float().div(255)[None, None]
    lv, fill = 0.7, (128, 128, 128)
    affine = {"ShearX": (1, lv * 0.3, 0, 0, 1, 0), "ShearY": (1, 0, 0, lv * 0.3, 1, 0),
              "TranslateXRel": (1, 0, lv * 0.45 * 48, 0, 1, 0), "TranslateYRel": (1, 0, 0, 0, 1, lv * 0.45 * 48)}
    reference = {
        "AutoContrast": ImageOps.autocontrast(pil), "Equalize": ImageOps.equalize(pil), "Invert": ImageOps.invert(pil),
        "PosterizeIncreasing": ImageOps.posterize(pil, 4 - int(lv * 4)),
        "SolarizeIncreasing": ImageOps.solarize(pil, 256 - int(lv * 256)),
        "SolarizeAdd": pil.point([min(255, i + int(lv * 110)) if i < 128 else i for i in range(256)] * 3),
        "ColorIncreasing": ImageEnhance.Color(pil).enhance(1 + lv * 0.9),
        "ContrastIncreasing": ImageEnhance.Contrast(pil).enhance(1 - lv * 0.9),
        "BrightnessIncreasing": ImageEnhance.Brightness(pil).enhance(1 + lv * 0.9),
        "SharpnessIncreasing": ImageEnhance.Sharpness(pil).enhance(1 + lv * 0.9),
        "Rotate": pil.rotate(lv * 30, resample=Image.BICUBIC, fillcolor=fill),
        **{k: pil.transform(pil.size, Image.AFFINE, m, resample=Image.BICUBIC, fillcolor=fill)
           for k, m in affine.items()},
    }
    assert set(reference) == set(OPS)
    for name, ref in reference.items():
        sign = -1.0 if name == "ContrastIncreasing" else 1.0
        ours = apply_op(name, x, torch.tensor([lv]), torch.tensor([sign]))[0, 0].permute(1, 2, 0).numpy() * 255
        diff = np.abs(ours.round() - np.asarray(ref, np.float64))
        if name in affine or name == "Rotate":
            assert diff.mean() < 2.5 and np.mean(diff > 8) < 0.05, (name, diff.mean())
        else:
            assert diff.max() <= 1, (name, diff.max())


def test_clip_augmentation_is_one_draw_per_clip_for_all_its_frames():
    from mgfm.train.rgb.augment import ClipAugment, augment_clips

    frame = torch.from_numpy(_frame(1, 32)).permute(2, 0, 1).float().div(255)
    x = frame.expand(6, 4, 3, 32, 32).clone()                       # every frame of every clip the same image
    aug = dataclasses.replace(ClipAugment.from_section(resolve("eval", {})["finetune"]["rgb"]), erasing=0.0)
    a = augment_clips(x, 32, aug, torch.Generator().manual_seed(0))
    b = augment_clips(x, 32, aug, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (6, 4, 3, 32, 32)
    torch.testing.assert_close(a, a[:, :1].expand_as(a))             # the same transform on every frame of a clip
    assert len({round(float(c.sum()), 3) for c in a}) == 6          # clips drew their own transforms
    off = dataclasses.replace(aug, randaugment_ops=0, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip=0.0)
    from mgfm.models.rgb.student import normalise_clips

    torch.testing.assert_close(augment_clips(x, 32, off, torch.Generator()), normalise_clips(x), atol=1e-5, rtol=0)


def test_random_resized_crop_moves_over_a_larger_stored_frame_at_the_views_scale():
    from mgfm.train.rgb.augment import random_resized_crop

    x = torch.rand(5, 2, 3, 40, 40)
    out = random_resized_crop(x, 32, (1.0, 1.0), (1.0, 1.0), 0.0, torch.Generator().manual_seed(1))
    for clip, src in zip(out, x):                                    # a 32 x 32 window somewhere in the 40 x 40
        hits = [(t, l) for t in range(9) for l in range(9)
                if torch.allclose(clip, src[..., t:t + 32, l:l + 32], atol=1e-5)]
        assert len(hits) == 1
    flipped = random_resized_crop(x[..., :32, :32], 32, (1.0, 1.0), (1.0, 1.0), 1.0, torch.Generator())
    torch.testing.assert_close(flipped, x[..., :32, :32].flip(-1), atol=1e-5, rtol=0)


def test_random_erasing_fills_one_box_per_clip_on_every_frame():
    from mgfm.train.rgb.augment import random_erasing

    x = torch.full((8, 3, 3, 32, 32), 7.0)
    out = random_erasing(x, 1.0, torch.Generator().manual_seed(2))
    changed = out != 7.0
    for clip in changed:
        area = clip[0, 0].float().mean()
        assert 0.015 < area < 0.34 and torch.equal(clip, clip[:1, :1].expand_as(clip))   # same box everywhere
    assert not torch.equal(out[:, 0][changed[:, 0]], out[:, 1][changed[:, 1]])          # fresh noise per frame
    assert torch.equal(random_erasing(x, 0.0, torch.Generator()), x)


def test_views_read_more_frames_and_pixels_when_stored_and_one_view_today():
    from mgfm.train.rgb.finetune_views import clip_starts, crop_view, evaluation_views, random_window, view_starts

    assert view_starts(16, 16, 2) == [0] and view_starts(24, 16, 3) == [0, 4, 8] and view_starts(24, 16, 1) == [4]
    one = evaluation_views((10, 8, 64, 64, 3), 8, 64, 2, 3)                       # today: the stored clip
    t0, first = one.starts(torch.tensor([1, 1]))
    assert one.places == ((0, 0),) and t0.tolist() == [[0, 0], [0, 0]] and first.sum(1).tolist() == [1, 1]
    views = evaluation_views((10, 12, 80, 96, 3), 8, 64, 2, 3)
    assert views.places == ((8, 0), (8, 16), (8, 32))                             # along the longer side
    # temporal views at SMILE's positions over each clip's starts: 5 stored (12 frames), 3 (views layout), 1
    assert clip_starts(torch.tensor([5, 3, 1]), 2).tolist() == [[0, 4], [0, 2], [0, 0]]
    assert clip_starts(torch.tensor([5, 3, 1]), 3).tolist() == [[0, 2, 4], [0, 1, 2], [0, 0, 0]]
    assert clip_starts(torch.tensor([5, 4, 1]), 1).tolist() == [[2], [1], [0]]
    assert views.starts(torch.tensor([5, 1]))[1].tolist() == [[True, True], [True, False]]
    x = torch.arange(2 * 12 * 80 * 96 * 3, dtype=torch.int64).view(2, 12, 80, 96, 3)
    v = crop_view(x, torch.tensor([4, 4]), views.places[1], 8, 64)
    assert v.shape == (2, 8, 64, 64, 3) and torch.equal(v, x[:, 4:12, 8:72, 16:80])
    per_clip = crop_view(x, torch.tensor([4, 1]), views.places[1], 8, 64)
    assert torch.equal(per_clip[0], x[0, 4:12, 8:72, 16:80]) and torch.equal(per_clip[1], x[1, 1:9, 8:72, 16:80])
    w = random_window(x, 8, torch.Generator().manual_seed(0))
    starts = (w[:, 0, 0, 0, 0] // (80 * 96 * 3) % 12).tolist()
    assert all(torch.equal(w[i], x[i, s:s + 8]) for i, s in enumerate(starts))
    # a clip's own starts bound its window (the views layout's later slots repeat its last frame)
    seen = {tuple((random_window(x, 8, torch.Generator().manual_seed(k), torch.tensor([2, 1]))[:, 0, 0, 0, 0]
                   // (80 * 96 * 3) % 12).tolist()) for k in range(20)}
    assert {s for s, _ in seen} == {0, 1} and {s for _, s in seen} == {0}
    assert torch.equal(random_window(x, 8, torch.Generator(), torch.tensor([1, 1])), x[:, :8])
    with pytest.raises(ValueError, match="stores 12"):
        random_window(x, 8, torch.Generator(), torch.tensor([6, 1]))


def test_view_scores_average_the_softmax_over_each_clips_distinct_views():
    from mgfm.eval.rgb_finetune import view_scores
    from mgfm.train.rgb.features import prepare_rgb
    from mgfm.train.rgb.finetune_views import TestViews

    class Model(torch.nn.Module):
        card = {"num_frames": 2, "image_size": 4}

        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3, 4)), -x.mean((1, 2, 3, 4))], 1)

    def probs(clip, t, y, z):
        return torch.softmax(Model()(prepare_rgb(clip[None, t:t + 2, y:y + 4, z:z + 4].contiguous())), 1)[0]

    x = torch.randint(0, 255, (3, 4, 6, 6, 3), dtype=torch.uint8)
    views = TestViews(temporal=2, places=((0, 0), (1, 2)), num_frames=2, size=4)
    want = torch.stack([torch.stack([probs(c, t, y, z) for t in (0, 2) for y, z in views.places]).mean(0) for c in x])
    torch.testing.assert_close(torch.softmax(view_scores(Model(), x, views), 1), want)
    # per clip: 3 starts (two temporal views), 1 start (one: its duplicate counts once), 2 starts
    got = torch.softmax(view_scores(Model(), x, views, torch.tensor([3, 1, 2])), 1)
    for c, (clip, ts) in enumerate(zip(x, [(0, 2), (0,), (0, 1)])):
        ref = torch.stack([probs(clip, t, y, z) for t in ts for y, z in views.places]).mean(0)
        torch.testing.assert_close(got[c], ref)
    single = TestViews(temporal=1, places=((1, 1),), num_frames=2, size=4)           # one view: its logits
    torch.testing.assert_close(view_scores(Model(), x, single),
                               Model()(prepare_rgb(x[:, 1:3, 1:5, 1:5].contiguous())))


def test_the_fine_tuning_encoder_drops_the_final_norm_and_round_trips_as_an_artifact(tmp_path):
    from mgfm.eval.finetune import build_classifier
    from mgfm.models.artifact import load_encoder, save_encoder
    from mgfm.models.rgb.student import RGBEncoder

    pre = RGBEncoder(student_config(**ARCH))
    card = {"architecture": "videomae", "modality": "rgb", "arch": dict(pre.cfg.to_dict()), "stream": "rgb",
            "feature_dim": 16, "num_frames": 4, "image_size": 32}
    save_encoder(tmp_path / "pre", pre, card)
    ft = resolve("eval", {})["finetune"]
    model, weights, init = build_classifier("finetune", tmp_path / "pre", card, 5, ft)
    enc = model.encoder
    assert init is None and len(weights) == 64 and model.layer_decay == 0.75
    assert enc.card["arch"]["pooling"] == "fc_norm" and enc.card["arch"]["drop_path"] == 0.1
    for k, v in pre.state_dict().items():
        if not k.startswith("videomae.layernorm."):
            assert torch.equal(enc.state_dict()[k], v), k
    assert torch.equal(enc.fc_norm.weight, torch.ones(16))          # fresh, as SMILE's fine-tuning starts it
    save_encoder(tmp_path / "tuned", enc, enc.card)                 # what the spotting classifier saves
    again = load_encoder(tmp_path / "tuned")
    x = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), enc.eval()(x))
    scratch, w, _ = build_classifier("scratch", tmp_path / "pre", card, 5, ft)
    assert w is None and scratch.encoder.pooling == "fc_norm"

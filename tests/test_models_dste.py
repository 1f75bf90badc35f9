"""DSTE encoder, projectors and the safetensors + card artifact."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mgfm.models import DSTE, PretrainModel, load_encoder, read_card, save_encoder
from mgfm.models.dste import PROJECTOR_KEYS, DenseShiftAttention, DSTEConfig, sinusoidal_encoding
from mgfm.models.projectors import ProjectorConfig
from mgfm.models.losses import DecorrelationWeights, multi_grained_decorrelation_loss
from mgfm.core.layout import NUM_JOINTS, STREAMS, to_stream
from mgfm.config import resolve


def arch(**values) -> dict:
    """Encoder keys of the schema-resolved pretrain.model section with ``values`` set."""
    model = resolve("pretrain", {"model": values})["model"]
    return {k: v for k, v in model.items() if not k.endswith("projector_dims")}


SMALL = arch(num_frames=12, num_joints=NUM_JOINTS, hidden=16, depth=2, heads=2, gap=4, drop_path=0.0)
WEIGHTS = DecorrelationWeights.from_section(resolve("pretrain", {})["loss"])


def clips(b=3, t=12, v=NUM_JOINTS, c=3, seed=0):
    return torch.randn(b, c, t, v, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kwargs", [SMALL, {**SMALL, "alpha": 0.0}, {**SMALL, "alpha": 1.0, "depth": 1},
                                    {**SMALL, "gap": 3, "mlp_ratio": 4.0, "num_channels": 2}])
def test_feature_shape(kwargs):
    enc = DSTE(DSTEConfig.from_section(kwargs)).eval()
    x = clips(c=kwargs.get("num_channels", 3))
    assert enc(x).shape == (3, 2 * kwargs["hidden"]) == (3, enc.feature_dim)


def test_multi_person_input():
    enc = DSTE(DSTEConfig.from_section({**SMALL, "num_persons": 2})).eval()
    x = torch.randn(2, 3, 12, NUM_JOINTS, 2)
    assert enc(x).shape == (2, 32)


def test_wrong_input_shape_is_a_clear_error():
    enc = DSTE(DSTEConfig.from_section(SMALL))
    with pytest.raises(ValueError, match=r"\(B, 3, 12, 63\)"):
        enc(clips(t=10))


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        DSTE(DSTEConfig.from_section({**SMALL, "heads": 3}))
    with pytest.raises(ValueError, match="alpha"):
        DSTE(DSTEConfig.from_section({**SMALL, "alpha": 1.5}))


def test_dense_shift_keeps_every_gap_th_position():
    dsa = DenseShiftAttention(length=10, dim=5, gap=4, mlp_hidden=10, drop_path=0.0)
    torch.nn.init.normal_(dsa.wt1.weight)
    x = torch.randn(2, 10, 5)
    y = dsa.shift(x)
    kept = [0, 4, 8]
    assert torch.equal(y[:, kept], x[:, kept])
    moved = [i for i in range(10) if i not in kept]
    assert not torch.allclose(y[:, moved], x[:, moved])
    # F_h = wt2(relu(wt1(F))) + F over the token axis
    f = x.transpose(1, 2)
    want = (dsa.wt2(torch.relu(dsa.wt1(f))) + f).transpose(1, 2)
    assert torch.allclose(y[:, moved], want[:, moved])


def test_each_layer_shares_one_attention_between_ca_and_dsa():
    enc = DSTE(DSTEConfig.from_section(SMALL))
    names = [n for n, _ in enc.named_modules() if n.endswith("attn")]
    assert names == ["temporal.layers.0.attn", "temporal.layers.1.attn", "spatial.layers.0.attn",
                     "spatial.layers.1.attn"]
    # the shared attention is a parameter of the layer, used by both branches: its gradient has both parts
    layer = enc.temporal.layers[0]
    x = torch.randn(2, 12, 16)
    layer.ca.finish(x, torch.zeros_like(x)).sum().backward()   # CA alone without attention: no attn gradient
    assert layer.attn.in_proj_weight.grad is None


def test_reference_init():
    torch.manual_seed(0)
    enc = DSTE(DSTEConfig.from_section(arch(num_frames=12, num_joints=NUM_JOINTS, hidden=64, depth=2)))
    for name, module in enc.named_modules():
        if isinstance(module, torch.nn.Linear):
            assert 0.015 < module.weight.std() < 0.025, name           # trunc-normal(0.02), cut at +-2 absolute
            assert (module.bias == 0).all(), name
        if isinstance(module, torch.nn.LayerNorm):
            assert (module.weight == 1).all() and (module.bias == 0).all()


def test_positional_encodings_are_added_before_every_layer():
    pe = sinusoidal_encoding(6, 8)[0]
    assert torch.allclose(pe[:, 0], torch.sin(torch.arange(6.0)))
    assert torch.allclose(pe[:, 1], torch.cos(torch.arange(6.0)))
    enc = DSTE(DSTEConfig.from_section(SMALL)).eval()
    assert isinstance(enc.spatial.pos, torch.nn.Parameter)          # learned over joints
    assert not isinstance(enc.temporal.pos, torch.nn.Parameter)     # fixed over time
    assert "temporal.pos" not in enc.state_dict()                   # recomputed, not stored
    tokens = torch.randn(2, 12, NUM_JOINTS * 3)
    x = enc.temporal.embed(tokens)
    for layer in enc.temporal.layers:
        x = layer(x + enc.temporal.pos)
    assert torch.allclose(enc.temporal(tokens), x)


def test_token_lengths_come_from_the_config():
    enc = DSTE(DSTEConfig.from_section(arch(num_frames=20, num_joints=7, num_persons=2, hidden=8, heads=1)))
    assert enc.temporal.layers[0].dsa.wt1.weight.shape == (20, 20)
    assert enc.spatial.layers[1].dsa.wt1.weight.shape == (14, 14)
    assert enc(torch.randn(3, 3, 20, 7, 2)).shape == (3, 16)


def test_config_needs_every_key():
    with pytest.raises(ValueError, match=r"pretrain.model: missing keys \['gap'\]"):
        DSTEConfig.from_section({k: v for k, v in SMALL.items() if k != "gap"})
    with pytest.raises(ValueError, match=r"unknown keys \['width'\]"):
        DSTEConfig.from_section({**SMALL, "width": 3})
    # projector keys belong to the ProjectorConfig of the same section, not to the encoder's
    model = resolve("pretrain", {})["model"]
    assert DSTEConfig.from_section(model) == DSTEConfig.from_section(arch())
    assert ProjectorConfig.from_section(model).to_dict() == {k: model[k] for k in PROJECTOR_KEYS}
    with pytest.raises(ValueError, match=r"missing keys \['instance_projector_dims'\]"):
        ProjectorConfig.from_section({k: v for k, v in model.items() if k != "instance_projector_dims"})
    # the model takes the typed config only: no keyword sizes, no resolving of its own
    with pytest.raises(TypeError, match="DSTEConfig"):
        DSTE(SMALL)
    with pytest.raises(TypeError, match="ProjectorConfig"):
        PretrainModel(DSTE(DSTEConfig.from_section(SMALL)), {"projector_dims": [24, 24]})


def test_paper_size_parameter_counts():
    paper = resolve("pretrain", {})["model"]
    with torch.device("meta"):
        model = PretrainModel(DSTE(DSTEConfig.from_section(paper)), ProjectorConfig.from_section(paper))
    assert sum(p.numel() for p in model.encoder.parameters()) == 57_196_544
    assert sum(p.numel() for p in model.parameters()) == 94_990_336


def test_frame_order_matters():
    enc = DSTE(DSTEConfig.from_section(SMALL)).eval()
    x = clips()
    assert not torch.allclose(enc(x), enc(x.flip(2)), atol=1e-5)


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    enc = DSTE(DSTEConfig.from_section({**SMALL, "drop_path": 0.5}))
    x = clips()
    enc.eval()
    assert torch.equal(enc(x), enc(x))
    enc.train()
    outs = [enc(x) for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = PretrainModel(DSTE(DSTEConfig.from_section(SMALL)), ProjectorConfig((24, 24), (24, 40)))
    views = torch.randn(4, 5, 3, 12, NUM_JOINTS)
    out = model(views)
    assert out["temporal"].shape == (4, 5, 24) and out["instance"].shape == (4, 5, 40)
    loss, _ = multi_grained_decorrelation_loss(out, WEIGHTS)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_streams_give_different_inputs_features_and_losses():
    torch.manual_seed(0)
    model = PretrainModel(DSTE(DSTEConfig.from_section(SMALL)), ProjectorConfig((24, 24), (24, 24))).eval()
    x = torch.rand(4, 5, 3, 12, NUM_JOINTS)
    inputs = {s: to_stream(x, s) for s in STREAMS}
    feats = {s: model.encoder(v[0]) for s, v in inputs.items()}
    losses = {s: multi_grained_decorrelation_loss(model(v), WEIGHTS)[0].item() for s, v in inputs.items()}
    for a, b in [("joint", "bone"), ("joint", "motion"), ("bone", "motion")]:
        assert not torch.allclose(inputs[a], inputs[b])
        assert not torch.allclose(feats[a], feats[b])
        assert losses[a] != pytest.approx(losses[b], rel=1e-6)


def _card(enc, stream="bone"):
    c = enc.cfg
    return {"architecture": "dste", "arch": c.to_dict(), "stream": stream, "feature_dim": c.feature_dim,
            "num_frames": c.num_frames, "num_joints": c.num_joints}


def test_artifact_roundtrip_without_pickle(tmp_path):
    torch.manual_seed(1)
    enc = DSTE(DSTEConfig.from_section(SMALL)).eval()
    save_encoder(tmp_path, enc, _card(enc))
    # the weights file is plain safetensors and the card plain JSON
    assert set(load_file(str(tmp_path / "encoder.safetensors"))) == set(enc.state_dict())
    assert json.loads((tmp_path / "card.json").read_text())["stream"] == "bone"
    loaded = load_encoder(tmp_path)
    assert not loaded.training and loaded.card["stream"] == "bone"
    x = clips()
    assert torch.equal(loaded(x), enc(x))


def test_artifact_errors(tmp_path):
    enc = DSTE(DSTEConfig.from_section(SMALL))
    with pytest.raises(FileNotFoundError, match="card.json"):
        load_encoder(tmp_path)
    save_encoder(tmp_path, enc, _card(enc))
    card = json.loads((tmp_path / "card.json").read_text())
    (tmp_path / "card.json").write_text(json.dumps({**card, "arch": {**card["arch"], "hidden": 32, "heads": 1}}))
    with pytest.raises(ValueError, match="does not fit the encoder"):
        load_encoder(tmp_path)
    (tmp_path / "card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "stream"}))
    with pytest.raises(ValueError, match="stream"):
        read_card(tmp_path)
    (tmp_path / "card.json").write_text(json.dumps({**card, "format": "other"}))
    with pytest.raises(ValueError, match="format"):
        read_card(tmp_path)
    with pytest.raises(ValueError, match="architecture"):
        save_encoder(tmp_path, enc, {**_card(enc), "architecture": "gcn"})

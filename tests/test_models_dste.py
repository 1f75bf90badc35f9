"""DSTE encoder, projectors and the safetensors + card artifact."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from mgfm.models import DSTE, PretrainModel, load_encoder, read_card, save_encoder
from mgfm.models.dste import DenseShift, sinusoidal_encoding
from mgfm.models.losses import multi_grained_decorrelation_loss
from mgfm.core.layout import NUM_JOINTS, STREAMS, to_stream

SMALL = dict(num_frames=12, num_joints=NUM_JOINTS, hidden=16, depth=2, heads=2, gap=4, drop_path=0.0)


def clips(b=3, t=12, v=NUM_JOINTS, c=3, seed=0):
    return torch.randn(b, c, t, v, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kwargs", [SMALL, {**SMALL, "alpha": 0.0}, {**SMALL, "alpha": 1.0, "depth": 1},
                                    {**SMALL, "gap": 3, "mlp_ratio": 4.0, "num_channels": 2}])
def test_feature_shape(kwargs):
    enc = DSTE(**kwargs).eval()
    x = clips(c=kwargs.get("num_channels", 3))
    assert enc(x).shape == (3, 2 * kwargs["hidden"]) == (3, enc.feature_dim)


def test_multi_person_input():
    enc = DSTE(**{**SMALL, "num_persons": 2}).eval()
    x = torch.randn(2, 3, 12, NUM_JOINTS, 2)
    assert enc(x).shape == (2, 32)


def test_wrong_input_shape_is_a_clear_error():
    enc = DSTE(**SMALL)
    with pytest.raises(ValueError, match=r"\(B, 3, 12, 63\)"):
        enc(clips(t=10))


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        DSTE(**{**SMALL, "heads": 3})
    with pytest.raises(ValueError, match="alpha"):
        DSTE(**{**SMALL, "alpha": 1.5})


def test_dense_shift_keeps_every_gap_th_position():
    shift = DenseShift(length=10, gap=4)
    x = torch.randn(2, 10, 5)
    y = shift(x)
    kept = [0, 4, 8]
    assert torch.equal(y[:, kept], x[:, kept])
    moved = [i for i in range(10) if i not in kept]
    assert not torch.allclose(y[:, moved], x[:, moved])


def test_positional_encodings():
    pe = sinusoidal_encoding(6, 8)[0]
    assert torch.allclose(pe[:, 0], torch.sin(torch.arange(6.0)))
    assert torch.allclose(pe[:, 1], torch.cos(torch.arange(6.0)))
    enc = DSTE(**SMALL)
    assert isinstance(enc.spatial.pos, torch.nn.Parameter)          # learned over joints
    assert not isinstance(enc.temporal.pos, torch.nn.Parameter)     # fixed over time


def test_frame_order_matters():
    enc = DSTE(**SMALL).eval()
    x = clips()
    assert not torch.allclose(enc(x), enc(x.flip(2)), atol=1e-5)


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    enc = DSTE(**{**SMALL, "drop_path": 0.5})
    x = clips()
    enc.eval()
    assert torch.equal(enc(x), enc(x))
    enc.train()
    outs = [enc(x) for _ in range(4)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = PretrainModel(DSTE(**SMALL), [24, 24], [24, 40])
    views = torch.randn(4, 5, 3, 12, NUM_JOINTS)
    out = model(views)
    assert out["temporal"].shape == (4, 5, 24) and out["instance"].shape == (4, 5, 40)
    loss, _ = multi_grained_decorrelation_loss(out)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_streams_give_different_inputs_features_and_losses():
    torch.manual_seed(0)
    model = PretrainModel(DSTE(**SMALL), [24, 24], [24, 24]).eval()
    x = torch.rand(4, 5, 3, 12, NUM_JOINTS)
    inputs = {s: to_stream(x, s) for s in STREAMS}
    feats = {s: model.encoder(v[0]) for s, v in inputs.items()}
    losses = {s: multi_grained_decorrelation_loss(model(v))[0].item() for s, v in inputs.items()}
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
    enc = DSTE(**SMALL).eval()
    save_encoder(tmp_path, enc, _card(enc))
    # the weights file is plain safetensors and the card plain JSON
    assert set(load_file(str(tmp_path / "encoder.safetensors"))) == set(enc.state_dict())
    assert json.loads((tmp_path / "card.json").read_text())["stream"] == "bone"
    loaded = load_encoder(tmp_path)
    assert not loaded.training and loaded.card["stream"] == "bone"
    x = clips()
    assert torch.equal(loaded(x), enc(x))


def test_artifact_errors(tmp_path):
    enc = DSTE(**SMALL)
    with pytest.raises(FileNotFoundError, match="card.json"):
        load_encoder(tmp_path)
    save_encoder(tmp_path, enc, _card(enc))
    card = json.loads((tmp_path / "card.json").read_text())
    (tmp_path / "card.json").write_text(json.dumps({**card, "arch": {**card["arch"], "hidden": 32, "heads": 1}}))
    with pytest.raises(ValueError, match="do not match"):
        load_encoder(tmp_path)
    (tmp_path / "card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "stream"}))
    with pytest.raises(ValueError, match="stream"):
        read_card(tmp_path)
    (tmp_path / "card.json").write_text(json.dumps({**card, "format": "other"}))
    with pytest.raises(ValueError, match="format"):
        read_card(tmp_path)
    with pytest.raises(ValueError, match="architecture"):
        save_encoder(tmp_path, enc, {**_card(enc), "architecture": "gcn"})

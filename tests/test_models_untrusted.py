"""An encoder folder is untrusted data: a card's sizes are bounded and checked against the weights file's header
before anything is built, and every unreadable file is one ValueError naming it (never a SafetensorError,
KeyError or a model of the card's claimed size)."""

from __future__ import annotations

import json
import resource
import struct

import pytest
import torch

from mgfm.models.artifact import load_encoder, read_card, save_encoder
from mgfm.models.dste import DSTE, DSTEConfig
from mgfm.models.weights import load_weights, read_header
from tests.support.models import student_config
from tests.test_models_dste import SMALL, _card


@pytest.fixture
def folder(tmp_path):
    enc = DSTE(DSTEConfig.from_section(SMALL))
    save_encoder(tmp_path, enc, _card(enc))
    return tmp_path


def _edit_card(folder, **arch):
    card = json.loads((folder / "card.json").read_text())
    card["arch"].update(arch)
    (folder / "card.json").write_text(json.dumps(card))


def test_a_card_edited_to_a_huge_model_fails_before_allocating_it(folder):
    """hidden 4096, depth 64 is a 28 G-parameter model (112 GB): refused with the process's peak memory nowhere
    near it (the shapes are compared on the meta device), naming the weights file and the first shape differences.
    No wall-time bound: on a loaded 2-core machine building the meta model alone takes seconds."""
    _edit_card(folder, hidden=4096, depth=64, heads=64)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError) as info:
        load_encoder(folder)
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kb < 500_000, f"peak memory grew by {grown_kb} kB"
    text = str(info.value)
    assert str(folder / "encoder.safetensors") in text and "does not fit the encoder" in text and "[4096" in text


@pytest.mark.parametrize("arch, words", [
    ({"hidden": 10**6}, "arch.hidden = 1000000: must be an integer in [1, 8192]"),
    ({"depth": 2.0}, "arch.depth = 2.0: must be an integer"),
    ({"depth": True}, "arch.depth = True: must be an integer"),
    ({"alpha": "0.5"}, "arch.alpha = '0.5': must be a number"),
    ({"code": "os.system"}, "unknown keys ['code']"),
])
def test_card_sizes_are_bounded_and_typed(folder, arch, words):
    _edit_card(folder, **arch)
    with pytest.raises(ValueError, match="card.json: card arch") as info:
        read_card(folder)
    assert words in str(info.value)


def test_a_card_that_is_not_an_object_or_not_json_names_the_file(folder):
    (folder / "card.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"card.json: not a model card"):
        read_card(folder)
    (folder / "card.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=r"card.json: unreadable card"):
        read_card(folder)


def _corrupt(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) - 100])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "header_length":
        path.write_bytes(struct.pack("<Q", 10**12) + data[8:])
    elif how == "header_json":
        n = struct.unpack("<Q", data[:8])[0]
        path.write_bytes(data[:8] + b"\x00" * n + data[8 + n:])
    elif how == "pickle":
        torch.save({"x": torch.zeros(2)}, path)


@pytest.mark.parametrize("how, words", [
    ("truncated", "truncated or padded"),
    ("empty", "shorter than its header length"),
    ("header_length", "does not fit"),
    ("header_json", "header is not JSON"),
    ("pickle", "not a safetensors file"),
])
def test_a_corrupt_weights_file_is_one_error_naming_it(folder, how, words):
    weights = folder / "encoder.safetensors"
    _corrupt(weights, how)
    for call in (lambda: load_encoder(folder), lambda: read_header(weights), lambda: load_weights(weights)):
        with pytest.raises(ValueError) as info:
            call()
        assert str(weights) in str(info.value) and words in str(info.value), str(info.value)


def test_a_folder_in_place_of_the_weights_is_named_as_a_folder(tmp_path):
    (tmp_path / "w.safetensors").mkdir()
    with pytest.raises(ValueError, match="a folder, not a weights file"):
        load_weights(tmp_path / "w.safetensors")


def test_an_intact_folder_still_loads(folder):
    enc = load_encoder(folder)
    assert enc.card["stream"] == "bone" and not any(p.is_meta for p in enc.parameters())


def test_an_rgb_card_takes_its_optional_keys_within_bounds_and_refuses_other_poolings(tmp_path):
    """A fine-tuned RGB encoder's card records pooling and drop-path, a card from before layer_norm_eps lacks it:
    both load; a pooling outside the encoder's choices, or a drop-path of 2, is refused naming the key."""
    pytest.importorskip("transformers")
    from mgfm.models.rgb.student import POOLINGS, RGBEncoder
    from mgfm.models.artifact import ARCH_CHOICES

    assert tuple(ARCH_CHOICES["videomae"]["pooling"]) == POOLINGS
    enc = RGBEncoder(student_config(num_frames=4, image_size=32, patch_size=16, tubelet_size=2, hidden=16, depth=1,
                                    heads=2, mlp_ratio=2.0, decoder_hidden=8, decoder_depth=1, decoder_heads=2),
                     pooling="fc_norm", drop_path=0.1)
    card = {"architecture": "videomae", "modality": "rgb", "arch": enc.arch, "stream": "rgb", "feature_dim": 16,
            "num_frames": 4, "image_size": 32}
    save_encoder(tmp_path, enc, card)
    assert load_encoder(tmp_path).pooling == "fc_norm"
    legacy = {k: v for k, v in enc.arch.items() if k not in ("layer_norm_eps", "pooling", "drop_path")}
    stored = json.loads((tmp_path / "card.json").read_text())
    (tmp_path / "card.json").write_text(json.dumps({**stored, "arch": legacy}))
    with pytest.raises(ValueError, match="does not fit the encoder"):    # mean pooling: another set of weights
        load_encoder(tmp_path)
    assert read_card(tmp_path)["arch"] == legacy
    for arch, words in (({"pooling": "exec"}, "arch.pooling = 'exec': must be one of mean, fc_norm"),
                        ({"drop_path": 2.0}, "arch.drop_path = 2.0: must be a number in [0.0, 1.0]")):
        (tmp_path / "card.json").write_text(json.dumps({**stored, "arch": {**stored["arch"], **arch}}))
        with pytest.raises(ValueError, match="card.json: card arch") as info:
            read_card(tmp_path)
        assert words in str(info.value)

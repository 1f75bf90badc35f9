"""MG-FM-RGB pretraining at tiny sizes: masks, synthetic motion, the student, both SMILE stages through the shared
loop (artifacts, Stage 2 initialisation, resume identical after a kill, the teacher-target cache) and features."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mgfm.models.artifact import load_encoder
from mgfm.models.rgb.student import SmileModel, StudentConfig
from mgfm.train.rgb.masking import box_tokens, masked_count, trajectory_mask, tube_mask
from mgfm.train.rgb.motion import MotionConfig, draw, render, select

from tests.support.models import student_config
from tests.support.rgb import write_synthetic_rgb

pytest.importorskip("transformers")
MODEL = {"num_frames": 8, "image_size": 64, "patch_size": 16, "tubelet_size": 2, "hidden": 32, "depth": 1, "heads": 2,
         "mlp_ratio": 2.0, "decoder_hidden": 16, "decoder_depth": 1, "decoder_heads": 2}
TRAIN = {"epochs": 3, "batch_size": 16, "lr": 0.001, "warmup_epochs": 0, "checkpoint_every": 2, "log_every_steps": 1}


def _params(**teacher):
    """Tiny sizes; a Stage 2 with the target cache reads each clip's centre view (no per-epoch views)."""
    return {"model": MODEL, "teacher": {"kind": "onnx_backbone", "input_size": [64, 64], **teacher},
            "augment": {"stages": [1] if teacher.get("cache") else [1, 2]}, "stage1": TRAIN, "stage2": TRAIN}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    path = tmp_path_factory.mktemp("rgb") / "pretrain"
    write_synthetic_rgb(path, 32, seed=3)
    return path


def test_tube_mask_hides_the_same_positions_in_every_slice():
    g = torch.Generator().manual_seed(0)
    m = tube_mask(5, (4, 3, 3), 0.8, g)
    assert m.shape == (5, 36) and (m.sum(1) == masked_count((4, 3, 3), 0.8)).all() and masked_count((4, 3, 3), 0.8) == 28
    slices = m.view(5, 4, 9)
    assert (slices == slices[:, :1]).all()
    assert not (m[0] == m[1]).all()
    assert masked_count((8, 14, 14), 0.8) == 156 * 8                # SMILE's int(0.8 x 196), not round's 157
    with pytest.raises(ValueError, match="rgb_pretrain.masking.ratio"):
        tube_mask(1, (2, 2, 2), 0.2, g)


def test_trajectory_mask_hides_the_trajectory_but_a_fraction_and_balances_the_count():
    g = torch.Generator().manual_seed(1)
    traj = torch.zeros(200, 4, 4, 4, dtype=torch.bool)
    traj[:, :, 1, :3] = True                                     # 12 of 64 tokens on a trajectory
    mask, glimpses = trajectory_mask(traj, 0.75, 0.25, g)
    assert (mask.sum(1) == 48).all()
    flat = traj.reshape(200, -1)
    assert torch.equal(glimpses, flat & ~mask)
    # int(0.25 x 12) = 3 trajectory tokens stay visible; the tube's surplus is revealed off the trajectory
    assert (glimpses.sum(1) == 3).all()
    tube_part = (mask & ~flat).view(200, 4, 16)
    assert not (tube_part == tube_part[:, :1]).all(dim=2).all()    # the rest of the tube has random holes
    everything = torch.ones(3, 4, 4, 4, dtype=torch.bool)            # all on a trajectory: the balance reveals some
    mask, glimpses = trajectory_mask(everything, 0.75, 0.1, g)
    assert (mask.sum(1) == 48).all() and (glimpses.sum(1) == 16).all()
    little = torch.zeros(3, 4, 4, 4, dtype=torch.bool)
    little[:, 0, 0, 0] = True
    none, shown = trajectory_mask(little, 0.75, 0.0, g)
    assert none.view(3, 4, 4, 4)[:, 0, 0, 0].all() and not shown.any()   # visible fraction 0: all hidden


def test_box_tokens_are_smiles_box_plus_one_patch():
    boxes = torch.zeros(1, 1, 4, 4)
    boxes[0, 0, 0] = torch.tensor([20.0, 3.0, 40.0, 14.0])         # slice 0, frame 0
    boxes[0, 0, 1] = torch.tensor([26.0, 5.0, 47.0, 20.0])         # slice 0, frame 1: the union spans x 20-47
    boxes[0, 0, 2:] = torch.tensor([-30.0, 50.0, -2.0, 70.0])      # slice 1: left of the frame
    tokens = box_tokens(boxes, (2, 4, 4), 16)
    # x: floor(20 / 16) = 1 .. ceil(47 / 16) + 1 = 4 (exclusive); y: 0 .. ceil(20 / 16) + 1 = 3
    expected = torch.zeros(2, 4, 4, dtype=torch.bool)
    expected[0, 0:3, 1:4] = True
    expected[1, 3:4, 0:1] = True                                    # ceil(-2 / 16) + 1 = 1; y 3 .. min(6, 4)
    assert torch.equal(tokens[0], expected)


def test_masking_statistics_match_smiles_generator():
    """Our Stage I masks beside the figures of SMILE's generator at paper size (16 x 224 px, 8 x 14 x 14 tokens,
    2 objects, ratio 0.8, 0.1 of the trajectory left visible before balancing)."""
    from mgfm.config.steps import resolve_step

    p = resolve_step("pretrain_rgb_stage1", {})
    cfg = MotionConfig.from_section(p["motion"])
    g = torch.Generator().manual_seed(0)
    trajs, masks = [], []
    for _ in range(12):
        draws = draw(cfg, 128, 16, 224, g)
        traj = box_tokens(draws["box"], (8, 14, 14), 16)
        mask, _ = trajectory_mask(traj, 0.8, 0.1, g)
        trajs.append(traj)
        masks.append(mask.view(-1, 8, 14, 14))
    traj, mask = torch.cat(trajs), torch.cat(masks)
    visible = ~mask
    away = ~traj.any(dim=1)                                         # positions no trajectory crosses in any slice
    ours = {
        "trajectory tokens (share of all)": traj.float().mean().item(),
        "visible tokens on a trajectory (share of visible)": (visible & traj).sum().item() / visible.sum().item(),
        "rest of the mask a tube (hidden positions off the trajectories hidden in every slice)":
            (away & mask.all(dim=1)).sum().item() / (away & mask.any(dim=1)).sum().item(),
        "tokens masked per slice": mask.sum(dim=(2, 3)).float().mean().item(),
    }
    smile = dict(zip(ours, (0.38, 0.186, 0.61, 156)))
    for name, value in ours.items():
        print(f"{name}: ours {value:.3f}, SMILE {smile[name]}")
    assert ours["tokens masked per slice"] == 156 and (mask.sum(dim=(1, 2, 3)) == 156 * 8).all()
    for name in list(ours)[:3]:
        assert abs(ours[name] - smile[name]) <= 0.03, (name, ours[name], smile[name])


def test_synthetic_motion_pastes_moving_objects_reproducibly():
    from mgfm.config.steps import resolve_step

    cfg = MotionConfig.from_section(resolve_step("pretrain_rgb_stage1", {})["motion"])
    clips = torch.zeros(3, 8, 3, 64, 64)
    d1 = draw(cfg, 6, 8, 64, torch.Generator().manual_seed(5))
    d2 = draw(cfg, 6, 8, 64, torch.Generator().manual_seed(5))
    assert all(torch.equal(d1[k], d2[k]) for k in d1)
    part = select(d1, slice(0, None, 2))                         # rank 0 of 2 processes takes rows 0, 2, 4
    out = render(clips, part)
    assert out.shape == clips.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert (out.flatten(2).amax(2) > 0.3).all()                  # every frame shows an object
    box = part["box"]
    assert torch.equal(box, box.round()) and box.shape == (3, 2, 8, 4)
    centre = (box[..., :2] + box[..., 2:]) / 2
    assert (centre >= -1).all() and (centre <= 65).all()         # paths stay in the frame
    assert not torch.equal(centre[..., 0, :], centre[..., -1, :])  # and move
    wh = box[..., 2:] - box[..., :2]
    px = 64 / 224
    assert float(wh.min()) >= 32 * px * 0.7 * 0.8 - 1 and float(wh.max()) <= 128 * px * 1.42 * 1.2 + 1
    area = wh.mean(dim=2).prod(dim=-1)
    assert (area[:, 0] >= area[:, 1]).all()                      # the larger object is pasted first
    assert (part["angle"] == part["angle"].trunc()).all() and (part["angle"][..., 0] == 0).all()


def test_objects_from_a_folder_of_rgba_crops(tmp_path, clips):
    import cv2

    from mgfm.train.rgb.objects import bank_key, build_bank, object_files, open_bank, read_rgba
    from mgfm.train.rgb.pretrain import OBJECT_BANK, pretrain_rgb

    folder = tmp_path / "objects"
    for i, cat in enumerate(("cup", "cup", "ball")):
        (folder / cat).mkdir(parents=True, exist_ok=True)
        img = np.zeros((20 + 4 * i, 30, 4), np.uint8)
        img[..., 2] = 255                                           # red in BGRA
        img[4:-4, 5:-5, 3] = 255                                    # opaque inside, transparent border
        cv2.imwrite(str(folder / cat / f"o{i}.png"), img)
    files = object_files(folder)
    assert [f.parent.name for f in files] == ["ball", "cup", "cup"]
    rgba = read_rgba(files[0], 16)
    assert rgba.shape == (16, 16, 4) and rgba[8, 8, 0] == 255 and rgba[8, 8, 3] == 255 and rgba[0, 0, 3] == 0
    key = bank_key(folder, files, 16)
    bank = build_bank(files, 16, tmp_path / "bank.npy", key)
    assert bank.shape == (3, 16, 16, 4) and open_bank(tmp_path / "bank.npy", key) is not None
    original = (folder / "cup" / "o1.png").read_bytes()
    cv2.imwrite(str(folder / "cup" / "o1.png"), np.full((8, 8, 4), 255, np.uint8))
    assert bank_key(folder, object_files(folder), 16) != key          # a changed image repacks the bank
    (folder / "cup" / "o1.png").write_bytes(original)
    assert bank_key(folder, object_files(folder), 16) == key
    cv2.imwrite(str(folder / "ball" / "flat.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"flat.png: has no alpha channel"):
        read_rgba(folder / "ball" / "flat.png", 16)
    (folder / "ball" / "flat.png").unlink()
    with pytest.raises(FileNotFoundError, match="rgb_pretrain.motion.objects_dir"):
        object_files(tmp_path / "none")

    params = {**_params(), "motion": {"objects_dir": str(folder), "object_size": 16}}
    out = pretrain_rgb(clips, 1, tmp_path / "s1", {**params, "stage1": {**TRAIN, "epochs": 1}}, seed=0)
    card = json.loads((out / "card.json").read_text())
    assert card["objects"] == bank_key(folder, object_files(folder), 16) and (out / OBJECT_BANK).is_file()
    x = torch.zeros(1, 8, 3, 64, 64)
    cfg = MotionConfig.from_section({**resolve_motion(), "objects_dir": str(folder)})
    drawn = draw(cfg, 1, 8, 64, torch.Generator().manual_seed(0), bank_size=3)
    pasted = render(x, drawn, np.load(out / OBJECT_BANK))
    assert pasted[:, :, 0].max() > 0.9 and pasted[:, :, 1:].max() == 0  # the red crops, through their own alpha


def resolve_motion() -> dict:
    from mgfm.config.steps import resolve_step

    return resolve_step("pretrain_rgb_stage1", {})["motion"]


def test_student_predicts_the_masked_tokens_only():
    cfg = student_config(**MODEL)
    model = SmileModel(cfg, target_dim=24)
    mask = tube_mask(2, cfg.grid, 0.75, torch.Generator().manual_seed(0))
    pred = model(torch.randn(2, 8, 3, 64, 64), mask)
    assert pred.shape == (2, 48, 24)
    assert model.encoder(torch.randn(2, 8, 3, 64, 64)).shape == (2, 32)
    bad = mask.clone()
    bad[0, mask[0].nonzero()[0]] = False
    with pytest.raises(ValueError, match="same, non-zero number"):
        model(torch.randn(2, 8, 3, 64, 64), bad)


def test_two_stages_artifacts_init_and_features(clips, tmp_path, monkeypatch):
    from mgfm.core.feature_store import read_features
    from mgfm.train.rgb import pretrain as rgb_pretrain
    from mgfm.train.features import extract_features

    s1 = rgb_pretrain.pretrain_rgb(clips, 1, tmp_path / "stage1", _params(), seed=0)
    card = json.loads((s1 / "card.json").read_text())
    assert card["architecture"] == "videomae" and card["modality"] == "rgb" and card["stage"] == 1
    assert card["teacher"]["kind"] == "onnx_backbone" and card["teacher"]["dim"] == 64
    log = (s1 / "train_log.csv").read_text().splitlines()
    assert len(log) == 4 and "trajectory_tokens" in log[0] and "trajectory_visible" in log[0]

    seen = {}
    real_fit = rgb_pretrain.fit

    def spy(model, *a, **k):
        seen["init"] = {n: t.detach().clone() for n, t in model.state_dict().items()}
        return real_fit(model, *a, **k)

    monkeypatch.setattr(rgb_pretrain, "fit", spy)
    s2 = rgb_pretrain.pretrain_rgb(clips, 2, tmp_path / "stage2", _params(), seed=0, init=s1)
    stage1 = load_file(str(s1 / rgb_pretrain.FULL_MODEL))
    assert set(stage1) == set(seen["init"]) and all(torch.equal(stage1[n], seen["init"][n]) for n in stage1)
    enc = load_encoder(s2)
    assert enc.card["stage"] == 2 and enc.feature_dim == 32
    out = extract_features(s2, clips, tmp_path / "f.parquet", params={})
    meta, feats = read_features(out)
    assert feats.shape == (32, 32) and np.isfinite(feats).all() and len(meta) == 32
    with pytest.raises(ValueError, match="Stage 1 model folder"):
        rgb_pretrain.pretrain_rgb(clips, 2, tmp_path / "x", _params(), seed=0)


def test_resume_after_kill_is_identical(clips, tmp_path):
    from mgfm.train.rgb.pretrain import pretrain_rgb

    class Killed(Exception):
        pass

    def kill_after_3(epoch, row):
        if epoch == 3:
            raise Killed

    params = _params()
    params["stage1"] = {**TRAIN, "epochs": 4}
    ref = pretrain_rgb(clips, 1, tmp_path / "ref", params, seed=0)
    with pytest.raises(Killed):
        pretrain_rgb(clips, 1, tmp_path / "run", params, seed=0, on_epoch_end=kill_after_3)
    resumed = pretrain_rgb(clips, 1, tmp_path / "run", params, seed=0)
    a, b = load_file(str(ref / "smile_model.safetensors")), load_file(str(resumed / "smile_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_target_cache_matches_on_the_fly_targets(clips, tmp_path):
    from mgfm.models.rgb.targets import teacher_targets
    from mgfm.models.rgb.teacher import build_teacher
    from mgfm.config.steps import resolve_step
    from mgfm.train.rgb.clips import PackedRGBClips, to_unit
    from mgfm.train.rgb.pretrain import cache_targets

    p = resolve_step("pretrain_rgb_stage2", _params())
    cfg = StudentConfig.from_section(p["model"])
    teacher = build_teacher(p["teacher"], cfg.grid[1:])
    data = PackedRGBClips(clips, 8, 64)
    cache = cache_targets(teacher, data, cfg, tmp_path / "t.npy", "k1", 8, torch.device("cpu"))
    direct = teacher_targets(teacher, to_unit(data[np.arange(32)]["x"]), 2).numpy()
    assert cache.shape == direct.shape == (32, 64, 64)
    np.testing.assert_allclose(np.asarray(cache, np.float32), direct, atol=2e-2, rtol=1e-2)
    stamp = (tmp_path / "t.npy").stat().st_mtime_ns
    cache_targets(teacher, data, cfg, tmp_path / "t.npy", "k1", 8, torch.device("cpu"))
    assert (tmp_path / "t.npy").stat().st_mtime_ns == stamp                 # reused while the key matches
    s2 = tmp_path / "cached"
    (tmp_path / "s1").mkdir()
    from mgfm.train.rgb.pretrain import pretrain_rgb

    s1 = pretrain_rgb(clips, 1, tmp_path / "s1", _params(), seed=0)
    pretrain_rgb(clips, 2, s2, _params(cache=True), seed=0, init=s1)
    assert (s2 / "teacher_targets.npy").is_file()
    on_fly = pretrain_rgb(clips, 2, tmp_path / "fly", {**_params(), "augment": {"stages": [1]}}, seed=0, init=s1)
    l_cache = json.loads((s2 / "card.json").read_text())["final_loss"]
    l_fly = json.loads((on_fly / "card.json").read_text())["final_loss"]
    assert l_cache == pytest.approx(l_fly, rel=1e-2)


def test_dataset_mismatch_names_the_config_key(clips, tmp_path):
    from mgfm.train.rgb.pretrain import pretrain_rgb

    params = _params()
    params["model"] = {**MODEL, "num_frames": 16}
    with pytest.raises(ValueError, match=r"8 frames, the model expects 16 \(rgb_pretrain.model.num_frames\)"):
        pretrain_rgb(clips, 1, tmp_path / "m", params, seed=0)


@pytest.mark.slow  # two torchrun launches
def test_two_gloo_processes_match_one(clips, tmp_path):
    import os
    import subprocess
    import sys

    from mgfm.train.checkpoint import CHECKPOINT_DIR, LAST

    params = {**_params(), "stage1": {**TRAIN, "epochs": 2, "optimizer": "sgd", "momentum": 0.9, "lr": 0.05}}

    def run(out, nproc):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m"] \
            if nproc > 1 else [sys.executable, "-m"]
        res = subprocess.run([*launcher, "mgfm", "pretrain", "rgb", "--stage", "1", "--dataset", str(clips),
                              "--out", str(out), "--params", json.dumps(params), "--seed", "3", "--threads", "1",
                              "--device", "cpu"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        return torch.load(out / CHECKPOINT_DIR / LAST, weights_only=True)

    one, two = run(tmp_path / "one", 1), run(tmp_path / "two", 2)
    assert json.loads((tmp_path / "two" / "card.json").read_text())["world_size"] == 2
    worst = max((one["model"][k].float() - two["model"][k].float()).abs().max().item() for k in one["model"])
    assert worst < 1e-4, f"largest weight difference {worst}"


def test_rebuilt_rgb_dataset_at_the_same_path_is_not_resumed(tmp_path, caplog):
    """The SMILE fingerprint holds the clips' content: after a killed run, a dataset rebuilt in place (same path,
    count and shape, other pixels) sets the checkpoint aside and trains exactly as a clean run on the new data."""
    import logging

    from mgfm.train.rgb.pretrain import pretrain_rgb

    class Killed(Exception):
        pass

    def kill_after_2(epoch, row):
        if epoch == 2:
            raise Killed

    ds = tmp_path / "pretrain"
    write_synthetic_rgb(ds, 32, seed=3)
    params = _params()
    with pytest.raises(Killed):
        pretrain_rgb(ds, 1, tmp_path / "m", params, seed=0, on_epoch_end=kill_after_2)
    write_synthetic_rgb(ds, 32, seed=4)
    with caplog.at_level(logging.WARNING, logger="mgfm.train.checkpoint"):
        again = pretrain_rgb(ds, 1, tmp_path / "m", params, seed=0)
    assert "other parameters, stream or data" in caplog.text
    fresh = pretrain_rgb(ds, 1, tmp_path / "fresh", params, seed=0)
    a, b = load_file(str(again / "smile_model.safetensors")), load_file(str(fresh / "smile_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_targets_from_cache_are_the_rows_of_the_batch(clips):
    from mgfm.train.rgb.clips import PackedRGBClips, TargetsFromCache

    data = PackedRGBClips(clips, 8, 64)
    cache = np.arange(32 * 3 * 2, dtype=np.float16).reshape(32, 3, 2)
    batch = TargetsFromCache(data, cache)[[7, 2, 30]]
    assert batch["index"].tolist() == [7, 2, 30] and batch["target"].dtype == torch.float16
    assert torch.equal(batch["target"], torch.from_numpy(cache[[7, 2, 30]]))
    assert torch.equal(batch["x"], data[[7, 2, 30]]["x"])
    with pytest.raises(ValueError, match="target cache holds 5"):
        TargetsFromCache(data, cache[:5])


@pytest.mark.slow  # three torchrun-style launches
def test_target_cache_under_two_gloo_processes(clips, tmp_path):
    """Stage 2 with the target cache under torchrun: rank 0 builds the cache once, after the process group
    started; the other rank waits, then both train from the Dataset's targets; the weights match one process."""
    import os
    import subprocess
    import sys

    from mgfm.train.checkpoint import CHECKPOINT_DIR, LAST
    from mgfm.train.rgb.pretrain import TARGET_CACHE, pretrain_rgb

    s2 = {**TRAIN, "epochs": 2, "optimizer": "sgd", "momentum": 0.9, "lr": 0.05}
    params = {**_params(cache=True), "stage2": s2}
    s1 = pretrain_rgb(clips, 1, tmp_path / "s1", {**_params(), "stage1": {**TRAIN, "epochs": 1}}, seed=0)

    def run(out, nproc):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m"] \
            if nproc > 1 else [sys.executable, "-m"]
        res = subprocess.run([*launcher, "mgfm", "pretrain", "rgb", "--stage", "2", "--dataset", str(clips),
                              "--init", str(s1), "--out", str(out), "--params", json.dumps(params), "--seed", "3",
                              "--threads", "1", "--device", "cpu"], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        return res.stdout + res.stderr, torch.load(out / CHECKPOINT_DIR / LAST, weights_only=True)

    log_one, one = run(tmp_path / "one", 1)
    log_two, two = run(tmp_path / "two", 2)
    assert json.loads((tmp_path / "two" / "card.json").read_text())["world_size"] == 2
    assert log_two.count("teacher targets ready") == 2  # each rank has its targets ...
    finals = [line for line in log_two.splitlines() if re.search(r"teacher targets: 32 clip in ", line)]
    assert len(finals) == 1, log_two[-3000:]              # ... and one process ran the teacher over every clip
    cache_one = np.load(tmp_path / "one" / TARGET_CACHE)
    cache_two = np.load(tmp_path / "two" / TARGET_CACHE)
    assert np.array_equal(cache_one, cache_two)
    leftovers = [p.name for p in (tmp_path / "two").iterdir() if p.name.startswith(".") or ".tmp" in p.name]
    assert not leftovers, leftovers
    worst = max((one["model"][k].float() - two["model"][k].float()).abs().max().item() for k in one["model"])
    assert worst < 1e-4, f"largest weight difference {worst}"

"""The paper config is the paper.

- ``PAPER_SETTINGS``: every setting that the paper or the reference facts (shared/reference-facts.md: the public
  code the paper builds on) fix, with its source, compared with the config a paper run resolves. A change of
  paper.yaml or of a schema default that drifts from them fails here.
- A dry run of Snakemake itself with paper.yaml on iMiGUE-shaped tables gives the rules exactly paper.yaml and the
  schema defaults (none of the demo's values), plans the paper's emotion model, and writes nothing.
- Every number in the schemas names its source (mgfm/config/schemas/config.schema.yaml states the convention).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mgfm.config import SECTIONS, load_schema, resolve_config
from mgfm.config.run import run_config
from mgfm.config.steps import step_params

from tests.support.workflow import REPO, output, snakemake

PAPER = REPO / "workflow" / "configs" / "paper.yaml"
DEMO = REPO / "config.yaml"
SOURCES = ("paper", "reference facts", "USDRL", "SMILE", "VideoMAE", "CLIP", "BlockGCN")


@dataclass(frozen=True)
class Holds:
    """A setting fixed as a property rather than one value (what it must satisfy, in words, and the check)."""

    what: str
    check: Callable[[object, dict], bool]       # (value, whole resolved config) -> ok


def _crop_shortens_64_frame_clips(crop: dict, _cfg: dict) -> bool:
    return min(64, max(crop["min_frames"], math.ceil(crop["min_fraction"] * 64))) < 64


def _lr_per_256(base: float, batch_key: str) -> Holds:
    def check(lr, cfg):
        section, *path = batch_key.split(".")
        batch = cfg[section]
        for key in path:
            batch = batch[key]
        return lr == pytest.approx(base * batch / 256)
    return Holds(f"{base:g} x {batch_key} / 256", check)


def _lr_per_sample(base: float, stage: str) -> Holds:
    """SMILE scales its lr by the samples of a step: 256 = 128 clips x 2 masks with multiple sampling."""
    def check(lr, cfg):
        p = cfg["rgb_pretrain"]
        samples = p[stage]["batch_size"] * (2 if p["masking"]["multiple_sampling"] else 1)
        return samples == 256 and lr == pytest.approx(base * samples / 256)
    return Holds(f"{base:g} x (clip, mask) samples per step / 256, at SMILE's 256 samples", check)


USDRL = "USDRL (reference facts, MG-FM-Skele)"
SMILE = "SMILE (reference facts, MG-FM-RGB)"
SMILE_FT = "SMILE's fine-tuning (reference facts, MG-FM-RGB)"
PROBE = "USDRL's linear probe (reference facts, Evaluation protocols)"

#: (config key, value or Holds, source)
PAPER_SETTINGS: list[tuple[str, object, str]] = [
    # data, pose, clip sampling
    ("download.fps", 25, "reference facts, Data: the videos and annotation frames are at 25 fps"),
    ("pose.preset", "rtmw-x", "paper Sec. 3.3: RTMPose whole-body; reference facts: RTMW-x 384x288, pinned (the "
                              "preset's checkpoints, run as mmpose or as their ONNX export, which gives mmpose's "
                              "keypoints)"),
    ("pose.mmpose.config", Holds("RTMW-x 384x288, not the 'wholebody' alias", lambda v, _: "rtmw-x" in v
                                 and "384x288" in v), "reference facts, Data: pin rtmw-x 384x288"),
    ("pose.mmpose.checkpoint", Holds("the RTMW-x 384x288 weights", lambda v, _: "rtmw-x" in v and "384x288" in v),
     "reference facts, Data: pin the checkpoint with the config"),
    ("clips.prior", "train_split", "paper Sec. 4.2, Eq. 4: durations of the labeled training MGs"),
    ("clips.quota", 50, "paper Sec. 4.2: at most 50 clips per video"),
    ("clips.tau", 0.3, "paper Tables VI-VII: Table VI's threshold (its quota-80 row is Table VII's tau-0.3 row)"),
    ("clips.iod_quotas", [50, 80, 100], "paper Table VI"),
    ("clips.iod_taus", [0.1, 0.3, 0.5, 0.75], "paper Table VII"),
    ("clips.iod_tau_table_quota", 80, "paper Tables VI-VII: 6,159 clips at quota 80 and at tau 0.3"),
    # skeleton preprocessing (paper Sec. 4.2)
    ("skeleton.num_frames", 64, "reference facts (USDRL): T = 64"),
    ("skeleton.long_clips", "truncate", "paper Sec. 4.2: 'padded or truncated to a fixed temporal length'"),
    ("skeleton.scale", "image", "paper Sec. 4.2: 'normalized to a canonical image scale and centered with "
                                "respect to the shoulder reference'"),
    # MG-FM-Skele
    ("pretrain.streams", ["joint", "bone", "motion"], "paper Sec. 5: joint, bone and motion streams"),
    ("pretrain.model.num_frames", 64, USDRL),
    ("pretrain.model.num_persons", 1, "reference facts: M = 1 person"),
    ("pretrain.model.hidden", 1024, USDRL),
    ("pretrain.model.depth", 2, USDRL),
    ("pretrain.model.heads", 1, USDRL),
    ("pretrain.model.gap", 4, USDRL),
    ("pretrain.model.alpha", 0.5, USDRL),
    ("pretrain.model.mlp_ratio", 2.0, USDRL),
    ("pretrain.model.drop_path", 0.1, USDRL),
    ("pretrain.model.projector_dims", [2048, 2048, 2048], USDRL),
    ("pretrain.model.instance_projector_dims", [2048, 2048, 4096], USDRL),
    ("pretrain.loss.sim_weight", 5.0, USDRL),
    ("pretrain.loss.vac_weight", 1.0, USDRL),
    ("pretrain.loss.xcorr_weight", 0.001, USDRL),
    ("pretrain.loss.instance_weight", 1.0, USDRL),
    ("pretrain.loss.temporal_weight", 0.5, USDRL),
    ("pretrain.loss.spatial_weight", 0.5, USDRL),
    ("pretrain.loss.std_weight", 5.0, USDRL),
    ("pretrain.loss.var_eps", 0.0001, USDRL),
    ("pretrain.loss.barlow_lambda", 0.005, USDRL),
    ("pretrain.augment.num_views", 4, "paper Sec. 4.3.1: four augmented views"),
    ("pretrain.augment.crop.ratio", [0.1, 1.0], USDRL),
    ("pretrain.augment.crop", Holds("the crop-resize shortens a 64-frame clip", _crop_shortens_64_frame_clips),
     "paper Sec. 4.3.1: USDRL's crop-resize is kept (on iMiGUE-3K's clips of at most 64 frames)"),
    ("pretrain.augment.joint_corruption.p", 0.5, USDRL),
    ("pretrain.augment.joint_corruption.rate", 0.6, USDRL),
    ("pretrain.augment.joint_corruption.zero_p", 0.5, USDRL),
    ("pretrain.augment.joint_corruption.confidence_aware", True, "paper Sec. 4.3.1: confidence-aware corruption"),
    ("pretrain.augment.shear.magnitude", 1.0, USDRL),
    ("pretrain.augment.speed.p", Holds("on", lambda v, _: v > 0), "paper Sec. 4.3.1: speed jitter"),
    ("pretrain.augment.frame_drop.p", Holds("on", lambda v, _: v > 0), "paper Sec. 4.3.1: frame dropping"),
    ("pretrain.augment.rigid.p", Holds("on", lambda v, _: v > 0), "paper Sec. 4.3.1: random 2-D rigid transforms"),
    ("pretrain.train.epochs", 451, USDRL),
    ("pretrain.train.batch_size", 356, USDRL),
    ("pretrain.train.optimizer", "adam", USDRL),
    ("pretrain.train.lr", 0.0005, USDRL),
    ("pretrain.train.weight_decay", 0.00001, USDRL),
    ("pretrain.train.schedule", "step", USDRL),
    ("pretrain.train.milestones", [351], USDRL),
    ("pretrain.train.gamma", 0.1, USDRL),
    ("pretrain.train.warmup_epochs", 0, USDRL),
    ("pretrain.train.amp", True, USDRL),
    # MG-FM-RGB
    ("rgb.num_frames", 16, SMILE),
    ("rgb.size", 224, SMILE),
    ("rgb_pretrain.model.num_frames", 16, SMILE),
    ("rgb_pretrain.model.image_size", 224, SMILE),
    ("rgb_pretrain.model.patch_size", 16, SMILE),
    ("rgb_pretrain.model.tubelet_size", 2, SMILE),
    ("rgb_pretrain.model.hidden", 768, "VideoMAE ViT-B/16 (reference facts, MG-FM-RGB)"),
    ("rgb_pretrain.model.depth", 12, "VideoMAE ViT-B/16 (reference facts, MG-FM-RGB)"),
    ("rgb_pretrain.model.heads", 12, "VideoMAE ViT-B/16"),
    ("rgb_pretrain.model.decoder_hidden", 384, SMILE),
    ("rgb_pretrain.model.decoder_depth", 4, SMILE),
    ("rgb_pretrain.model.decoder_heads", 6, SMILE),
    ("rgb_pretrain.model.layer_norm_eps", 1e-6, "SMILE: every LayerNorm's eps (decoder's last norm included)"),
    ("rgb_pretrain.teacher.kind", "clip", "reference facts: per-frame CLIP ViT-B/16 patch tokens ('ViCLIP')"),
    ("rgb_pretrain.teacher.clip.hidden", 768, "CLIP ViT-B/16 (reference facts: targets of dimension 768)"),
    ("rgb_pretrain.teacher.clip.patch_size", 16, "CLIP ViT-B/16"),
    ("rgb_pretrain.teacher.input_norm", "imagenet", "SMILE (reference facts: the teacher is fed the "
                                                    "ImageNet-normalised clip)"),
    ("rgb_pretrain.decay_exempt", True, "SMILE (reference facts: no weight decay on biases, norms, mask token)"),
    ("rgb_pretrain.masking.ratio", 0.8, SMILE),
    ("rgb_pretrain.masking.trajectory_visible", 0.1, "reference facts: 0.1 is what SMILE's code runs"),
    ("rgb_pretrain.masking.multiple_sampling", True, "SMILE (reference facts: multiple sampling in both stages)"),
    ("rgb_pretrain.motion.objects", 2, SMILE),
    ("rgb_pretrain.motion.scales", [32, 48, 56, 64, 96, 128], "SMILE: its --scales default"),
    ("rgb_pretrain.motion.ratios", [0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0], "SMILE: its region sampler"),
    ("rgb_pretrain.motion.scale_jitter", 0.18, "SMILE: its region sampler"),
    ("rgb_pretrain.motion.path_points", 48, "SMILE: its gaussian motion (smoothed random paths)"),
    ("rgb_pretrain.motion.path_sigma", 8, "SMILE: its gaussian motion (smoothed random paths)"),
    ("rgb_pretrain.motion.path_extent", [40, 180], "SMILE: its gaussian motion (smoothed random paths)"),
    ("rgb_pretrain.motion.rotation_velocity", 6, SMILE),
    ("rgb_pretrain.motion.size_velocity", 0.025, SMILE),
    ("rgb_pretrain.motion.key_frame_probs", [0.5, 0.3, 0.2], "SMILE: its PatchMask settings"),
    ("rgb_pretrain.motion.alpha", [0.8, 1.0], SMILE),
    ("rgb_pretrain.augment.stages", [1, 2], "SMILE (reference facts: random start and multi-scale crop every epoch)"),
    ("rgb_pretrain.augment.temporal", True, "SMILE (reference facts: a random start every epoch)"),
    ("rgb_pretrain.augment.scales", [1.0, 0.875, 0.75, 0.66], "VideoMAE's GroupMultiScaleCrop, as SMILE"),
    ("rgb_pretrain.augment.max_distort", 1, "VideoMAE's GroupMultiScaleCrop, as SMILE"),
    ("rgb.views.stride", 4, SMILE + ": 16 frames at a fixed stride of 4"),
    *[(f"rgb_pretrain.{stage}.{key}", value, SMILE) for stage in ("stage1", "stage2") for key, value in (
        ("optimizer", "adamw"), ("betas", [0.9, 0.95]), ("weight_decay", 0.05), ("schedule", "cosine"),
        ("warmup_epochs", 40), ("min_lr", 0.00001))],
    # SMILE's released K400 scripts size the schedule for 801 epochs and stop each stage after 150 (their
    # 600-epoch setting), so the learning rate never anneals
    *[(f"rgb_pretrain.{stage}.{key}", value, SMILE + ": the released scripts stop each stage at epoch 150 of a "
       "schedule sized for 801") for stage in ("stage1", "stage2") for key, value in (("epochs", 150),
                                                                                    ("schedule_epochs", 801))],
    *[(f"rgb_pretrain.{stage}.lr", _lr_per_sample(1.5e-4, stage), SMILE + ": 1.5e-4 x (clip, mask) samples per "
       "step / 256") for stage in ("stage1", "stage2")],
    # protocols
    ("eval.modalities", ["skeleton", "rgb"], "paper Sec. 4: a skeleton and an RGB branch, evaluated both"),
    ("eval.streams", ["joint", "bone", "motion"], "paper Sec. 5"),
    ("eval.validation.fraction", 0.0, "reference facts: the public reference has no validation split"),
    ("eval.linear_probe.epochs", 160, PROBE),
    ("eval.linear_probe.batch_size", 512, PROBE),
    ("eval.linear_probe.lr", 0.006, PROBE),
    ("eval.linear_probe.momentum", 0.9, PROBE),
    ("eval.linear_probe.weight_decay", 0.0, PROBE),
    ("eval.linear_probe.milestones", [120, 140], PROBE),
    ("eval.linear_probe.init_std", 0.01, PROBE),
    ("eval.linear_probe.eval_every", 5, PROBE + ": the best test Top-1 seen every 5 epochs"),
    ("eval.semi_supervised.fraction", 0.1, "paper Sec. 6: 10% of the labeled training samples"),
    ("eval.finetune.label_smoothing", 0.1, SMILE_FT),
    ("eval.finetune.rgb.layer_decay", 0.75, SMILE_FT),
    ("eval.finetune.rgb.mixup", 0.8, SMILE_FT),
    ("eval.finetune.rgb.cutmix", 1.0, SMILE_FT),
    ("eval.finetune.train.epochs", 100, SMILE_FT),
    ("eval.finetune.train.warmup_epochs", 5, SMILE_FT),
    ("eval.finetune.train.weight_decay", 0.05, SMILE_FT),
    ("eval.finetune.train.grad_clip", 0.0, SMILE_FT + ": no gradient clipping"),
    ("eval.finetune.train.lr", _lr_per_256(1e-3, "eval.finetune.train.batch_size"), SMILE_FT),
    ("eval.retrieval.ks", [1, 5], "paper Table XII: Top-1 and Top-5"),
    ("eval.emotion.skeleton_streams", ["joint"], "paper Sec. 9: two frozen foundation models (MG-FM-Skele read "
                                                 "as its joint encoder, with MG-FM-RGB)"),
    ("eval.emotion.aggregator", "mean", "paper Sec. 9: 'a single linear aggregator' (masked mean, then linear)"),
    ("eval.ensemble.select", "config", "reference facts: BlockGCN's fixed weights"),
    ("eval.ensemble.weights", Holds("BlockGCN's NTU weights for joint, bone, motion", lambda v, _: (
        v["joint"], v["bone"], v["motion"]) == (0.6, 0.7, 0.35)), "BlockGCN (reference facts, Ensemble)"),
]


def _get(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def _as_planned(cfg: dict) -> dict:
    """``cfg`` with its pose section as the workflow runs it: a preset's pinned models filled in
    (mgfm.pose.presets.plan_pose, which workflow/rules/pose.smk applies)."""
    from mgfm.pose.presets import plan_pose

    return {**cfg, "pose": plan_pose(cfg["pose"], f"{cfg['results']}/models/pose").section}


@pytest.fixture(scope="module")
def paper_run() -> dict:
    """The config a paper run resolves (mgfm.config.run.run_config, which the Snakefile calls), its pose section
    as planned."""
    return _as_planned(run_config([PAPER], None, DEMO))


@pytest.mark.parametrize("key, expected, source", PAPER_SETTINGS, ids=[k for k, _, _ in PAPER_SETTINGS])
def test_paper_run_keeps_every_fixed_setting(paper_run, key, expected, source):
    assert source.startswith(SOURCES), f"{key}: source {source!r} names none of {SOURCES}"
    value = _get(paper_run, key)
    if isinstance(expected, Holds):
        assert expected.check(value, paper_run), f"{key} = {value!r} breaks '{expected.what}' ({source})"
    else:
        assert value == expected, f"{key} = {value!r}, but {source} fixes {expected!r}"


def test_the_table_covers_each_key_once():
    keys = [k for k, _, _ in PAPER_SETTINGS]
    assert len(keys) == len(set(keys))
    assert {k.split(".")[0] for k in keys} <= set(SECTIONS)


# ---- the schemas say where each number comes from ----------------------------------------------------------------
SOURCE_NOTE = re.compile(r"\((?:[^()]*?; )?(paper|USDRL|SMILE|VideoMAE|CLIP|BlockGCN|reference facts|ours|RTMDet|"
                         r"RTMPose|mmpose|COCO)\b")
SECTION_NOTE = "Numbers are ours unless a description names their source"
KEYWORD = re.compile(r"\$?[A-Za-z]+")       # a schema keyword; text cut off by a ", " in a flow mapping is not


def _numeric(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                          for v in value)


@pytest.mark.parametrize("section", ("config", *SECTIONS))
def test_every_schema_number_names_its_source(section):
    missing = []

    def walk(schema: dict, where: str, covered: bool) -> None:
        stray = [k for k in schema if not KEYWORD.fullmatch(str(k))]
        assert not stray, f"{where}: not schema keywords {stray} (an unquoted ', ' in a flow mapping?)"
        covered = covered or SECTION_NOTE in str(schema.get("description", ""))
        for key, sub in schema.get("properties", {}).items():
            if "properties" in sub:
                walk(sub, f"{where}.{key}", covered)
                continue
            stray = [k for k in sub if not KEYWORD.fullmatch(str(k))]
            assert not stray, f"{where}.{key}: not schema keywords {stray} (an unquoted ', ' in a flow mapping?)"
            if _numeric(sub.get("default")) and not covered and not SOURCE_NOTE.search(str(sub.get("description"))):
                missing.append(f"{where}.{key}")

    walk(load_schema(section), section, False)
    assert not missing, f"numbers without a source: {missing}"


def test_no_number_is_credited_to_the_paper_that_its_text_lacks():
    """'the paper's 64 / 16 / 224' were such claims: T = 64, 16 frames and 224 px come from USDRL and SMILE."""
    for path in sorted((REPO / "mgfm" / "config" / "schemas").glob("*.yaml")) + [PAPER, DEMO]:
        text = path.read_text()
        for number in ("64", "16", "224"):
            assert f"paper's {number}" not in text and f"paper: {number}" not in text, (path.name, number)


# ---- Snakemake itself, with the paper config -------------------------------------------------------------------
def write_imigue_shaped_tables(folder: Path, n_train: int = 6, n_test: int = 4, n_unlabeled: int = 6) -> list[str]:
    """The three tables of an iMiGUE-3K-like release (32 classes in the paper's groups, subject-disjoint train /
    test, unlabeled videos, web sources) at a size a dry run plans in seconds; returns the video ids."""
    folder.mkdir(parents=True)
    groups = ["Head", "Body", "Hand", "Body-Hand", "Head-Hand"]
    pd.DataFrame({"class_id": range(32), "name": [f"mg{c:02d}" for c in range(31)] + ["illustrative"],
                  "group": [groups[c % 5] for c in range(31)] + ["non-MG"]}).to_csv(folder / "taxonomy.csv", index=False)
    rows = []
    for split, n, prefix in (("train", n_train, "tr"), ("test", n_test, "te")):
        rows += [{"video_id": f"{split}{i:03d}", "subject_id": f"{prefix}{i // 2}", "outcome": ("win", "lose")[i % 2],
                  "subset": "labeled", "split": split} for i in range(n)]
    rows += [{"video_id": f"unl{i:04d}", "subject_id": f"u{i}", "outcome": "win", "subset": "unlabeled", "split": ""}
             for i in range(n_unlabeled)]
    manifest = pd.DataFrame(rows)
    manifest.insert(1, "url", "https://example.org/interviews/" + manifest["video_id"] + ".mp4")
    manifest.insert(2, "sha256", "")
    manifest.to_csv(folder / "manifest.csv", index=False)
    labeled = manifest[manifest["subset"] == "labeled"]["video_id"]
    pd.DataFrame([{"video_id": v, "class_id": (k * 7) % 32, "start_frame": 100 * k, "end_frame": 100 * k + 40 + k}
                  for v in labeled for k in range(5)]).to_csv(folder / "annotations.csv", index=False)
    return manifest["video_id"].tolist()


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if ".snakemake" not in p.relative_to(root).parts}


#: step (mgfm.config.steps) -> the command whose --params it fills
COMMANDS = {
    "sample_clips": "mgfm clips sample", "pack_skeleton": "mgfm packs skeleton",
    "pack_rgb": "mgfm packs rgb", "pretrain_skeleton": "mgfm pretrain skeleton",
    "pretrain_rgb_stage1": "mgfm pretrain rgb --stage 1", "pretrain_rgb_stage2": "mgfm pretrain rgb --stage 2",
    "eval_linear_probe": "mgfm eval linear-probe", "eval_semi_supervised": "mgfm eval finetune --protocol semi_supervised",
    "eval_finetune": "mgfm eval finetune --protocol finetune", "eval_emotion": "mgfm eval emotion",
    "eval_ensemble": "mgfm eval ensemble", "download_video": "mgfm ingest download", "pose": "mgfm pose extract",
}


@pytest.mark.pipeline
def test_snakemake_runs_the_paper_config_and_nothing_else(tmp_path):
    """`snakemake -n -p --configfile workflow/configs/paper.yaml` on iMiGUE-shaped tables: every rule's params are
    paper.yaml plus the schema defaults (the demo's semi-supervised epochs, warm-up and teacher are gone; the pose
    preset's pinned models filled in), the emotion model reads two foundation models, and the dry run leaves every
    file as it was."""
    work = tmp_path / "work"
    ids = write_imigue_shaped_tables(work / "data" / "imigue3k")
    before = _files(work)
    proc = snakemake(work, "-n", "-p", "--quiet=host", configfiles=[PAPER], cores=1, timeout=300)
    text = output(proc)
    assert _files(work) == before, "a dry run wrote or changed files"
    # paper.yaml + schema defaults, nothing else (the pose section as its preset plans it)
    expected = _as_planned(resolve_config(yaml.safe_load(PAPER.read_text())))
    for step, command in COMMANDS.items():
        found = re.findall(re.escape(command) + r" .*?--params '(\{.*?\})'", text)
        assert found, f"no {command!r} job planned"
        want = step_params(step, expected)
        for params in found:
            assert json.loads(params) == want, step
    semi = json.loads(re.search(r"--protocol semi_supervised .*?--params '(\{.*?\})'", text).group(1))
    assert semi["semi_supervised"]["epochs"] is None                   # the demo's 150 used to reach it
    pre = json.loads(re.search(r"mgfm pretrain skeleton .*?--params '(\{.*?\})'", text).group(1))
    assert pre["train"]["warmup_epochs"] == 0 and pre["augment"]["crop"]["min_fraction"] == 0.5
    rgb = json.loads(re.search(r"mgfm pretrain rgb --stage 1 .*?--params '(\{.*?\})'", text).group(1))
    assert rgb["teacher"]["kind"] == "clip" and rgb["teacher"]["input_size"] == []
    emotion = re.search(r"^rule eval_emotion:\n\s+input: (.+)$", text, re.M).group(1).split(", ")
    assert [p for p in emotion if p.endswith("video_clips.parquet")] == [
        "results/features/skeleton/joint/video_clips.parquet", "results/features/rgb/rgb/video_clips.parquet"]
    # one record job per video, each download reading its content-named record (written by that job, not here)
    records = re.findall(r"mgfm ingest download --record (results/ingest/videos/(\S+)\.([0-9a-f]{16})\.json)", text)
    assert sorted(vid for _, vid, _ in records) == sorted(ids)
    assert len(re.findall(r"^(?:local)?rule video_record:", text, re.M)) == len(ids)

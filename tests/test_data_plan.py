"""The data-size plan (mgfm.eval.plan): which protocols a dataset can run, why the others cannot, and which batch
sizes exceed their stage's clips, from the tables alone; the counts are the protocols' own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgfm.config.run import run_config
from mgfm.eval.plan import PlanError, plan_run
from tests.support.workflow import REPO

DEMO = run_config([], {}, str(REPO / "config.yaml"))


def tables(train_subjects: int, per_video: int, n_unlabeled: int = 2, test_videos: int = 1):
    """A manifest of one labeled train video per subject, ``test_videos`` test videos and ``n_unlabeled``
    unlabeled ones; ``per_video`` instances of classes 0, 1, 2, ... in each labeled video."""
    rows, ann = [], []
    for i in range(train_subjects):
        rows.append((f"tr{i}", f"s{i}", "labeled", "train"))
    for i in range(test_videos):
        rows.append((f"te{i}", f"t{i}", "labeled", "test"))
    for i in range(n_unlabeled):
        rows.append((f"un{i}", f"u{i}", "unlabeled", ""))
    manifest = pd.DataFrame(rows, columns=["video_id", "subject_id", "subset", "split"])
    for vid in manifest.loc[manifest["subset"] == "labeled", "video_id"]:
        ann += [(vid, k % 4, 10 * k, 10 * k + 5) for k in range(per_video)]
    return manifest, pd.DataFrame(ann, columns=["video_id", "class_id", "start_frame", "end_frame"])


def config(**eval_changes) -> dict:
    cfg = run_config([], {}, str(REPO / "config.yaml"))
    for key, value in eval_changes.items():
        cfg["eval"][key] = {**cfg["eval"][key], **value} if isinstance(value, dict) else value
    return cfg


def test_the_demo_runs_every_protocol():
    from mgfm.demo.planned import planned_tables

    plan = plan_run(*planned_tables(DEMO["dataset"]["demo"]), DEMO)
    assert plan.skipped == {}
    # the demo's 10 % subset is smaller than its fine-tuning batch: said once, naming the key
    assert [w.split(" is more")[0] for w in plan.warnings] == ["eval.finetune.train.batch_size 32"]


def test_no_validation_video_skips_spotting_and_a_validation_chosen_ensemble():
    plan = plan_run(*tables(6, 8), config(validation={"fraction": 0.0}))
    assert set(plan.skipped) == {"ensemble", "spotting"}
    assert plan.skipped["spotting"].startswith("its threshold is chosen on validation videos and "
                                               "eval.validation.fraction is 0, so there is no validation video")
    assert "eval.ensemble.select is 'validation'" in plan.skipped["ensemble"]
    plan = plan_run(*tables(6, 8), config(validation={"fraction": 0.0}, ensemble={"select": "config",
                                                                                   "weights": {}}))
    assert set(plan.skipped) == {"spotting"}


def test_one_training_subject_holds_out_no_validation_and_says_so():
    plan = plan_run(*tables(1, 8), config())
    assert plan.warnings[0] == ("eval.validation.fraction 0.25 needs at least 2 labeled train subjects with "
                                "annotated instances, the tables have 1: no validation subject is held out")
    assert "needs at least 2 labeled train subjects" in plan.skipped["spotting"]
    assert {"finetune", "scratch", "linear_probe"}.isdisjoint(plan.skipped)     # they train on all 8 clips


def test_too_few_clips_for_the_semi_supervised_fraction_skips_it_with_the_numbers():
    plan = plan_run(*tables(4, 4), config())
    why = plan.skipped["semi_supervised"]
    assert why.startswith("eval.semi_supervised.fraction 0.1 keeps 1 of the 12 training clips (seed ")
    assert "fine-tuning needs at least 2: raise the fraction to 0.167 or more" in why
    assert set(plan.skipped) == {"semi_supervised"}
    plan = plan_run(*tables(4, 4), config(semi_supervised={"fraction": 0.2}))
    assert "semi_supervised" not in plan.skipped
    assert any(w.startswith("eval.semi_supervised.fraction 0.2 keeps 2 training clips") and "for the 4 classes" in w
               for w in plan.warnings)


def test_the_plan_counts_what_fine_tuning_trains_on():
    """The pool the plan counts per seed is the one the fine-tuning protocol draws (same code, same seeds)."""
    from mgfm.common.seeding import derive_seed
    from mgfm.packs.catalog import dataset_clips
    from mgfm.eval.finetune import _training_rows
    from mgfm.eval.plan import _sizes

    manifest, ann = tables(7, 5)
    cfg = config(seeds=[0, 1, 2], validation={"fraction": 0.3}, semi_supervised={"fraction": 0.3})
    sizes = _sizes(manifest, ann, cfg["eval"], cfg["seed"])
    meta = dataset_clips("mg_train", manifest, ann)
    for seed in (0, 1, 2):
        split_seed = derive_seed(cfg["seed"], "eval", seed)
        pool, val = _training_rows("finetune", meta, cfg["eval"], split_seed)
        semi, _ = _training_rows("semi_supervised", meta, cfg["eval"], split_seed)
        assert (sizes.pool[seed], sizes.semi[seed]) == (len(pool), len(semi)) and len(val) > 0


def test_batch_sizes_above_the_clips_are_named_by_their_keys():
    cfg = config(modalities=["skeleton", "rgb"])
    cfg["pretrain"]["train"]["batch_size"] = 128
    cfg["rgb_pretrain"]["stage1"]["batch_size"] = 32
    cfg["clips"]["quota"] = 10
    plan = plan_run(*tables(6, 30, n_unlabeled=2), cfg)
    said = {w.split(" ")[0]: w for w in plan.warnings}
    assert said["pretrain.train.batch_size"] == (
        "pretrain.train.batch_size 128 is more than the 20 clips the sampler can draw from the 2 unlabeled video(s) "
        "at most (clips.quota 10 each): that stage trains with batch size 20 (the clip count)")
    assert "rgb_pretrain.stage1.batch_size" in said and "rgb_pretrain.stage2.batch_size" in said
    # 32 fits the 150 clips of fine-tuning, not the 10 % subset
    assert [w for w in plan.warnings if w.startswith("eval.finetune")] == [
        "eval.finetune.train.batch_size 32 is more than the 12 clips of the semi-supervised subset (seed 0): that "
        "stage trains with batch size 12 (the clip count)"]


def test_protocols_and_spotting_switched_off_by_config():
    cfg = config(protocols=["linear_probe", "finetune"])
    cfg["infer"]["spotting"] = False
    plan = plan_run(*tables(6, 8), cfg)
    assert plan.skipped == {p: "left out of config key eval.protocols" for p in
                            ("retrieval", "semi_supervised", "scratch", "ensemble", "emotion")} | {
        "spotting": "config key infer.spotting is false"}
    cfg = config(protocols=["linear_probe"])
    plan = plan_run(*tables(6, 8), cfg)
    assert plan.skipped["ensemble"] == "left out of config key eval.protocols"
    assert plan.runs("spotting") and plan.console_lines()[-1].startswith("skipped: emotion: ")


def test_no_unlabeled_video_or_no_instances():
    with pytest.raises(PlanError, match="no unlabeled video: pretraining reads the sampled clips"):
        plan_run(*tables(4, 4, n_unlabeled=0), config())
    manifest, ann = tables(4, 4)
    plan = plan_run(manifest, ann[~ann["video_id"].str.startswith("te")], config())
    assert plan.skipped["retrieval"] == "the labeled test videos have no annotated instance"
    assert plan.runs("emotion")


def test_schema_rejects_unknown_protocols():
    from mgfm.config import ConfigError, resolve

    with pytest.raises(ConfigError, match="eval.protocols"):
        resolve("eval", {"protocols": ["linear_probe", "spotting"]})
    assert resolve("infer", {})["spotting"] is True
    assert np.array_equal(resolve("eval", {})["protocols"], list(DEMO["eval"]["protocols"]))

"""The RGB rules through Snakemake on tiny synthetic packed RGB datasets: Stage 1 -> Stage 2 -> features, and a
Stage 2 setting reruns Stage 2 (and what reads it) but never Stage 1."""

from __future__ import annotations

import re

import pytest

from tests.support.rgb import write_synthetic_rgb
from tests.support.workflow import TINY_DEMO, output, repo_config, snakemake, write_config

pytest.importorskip("transformers")
RULES = ["pretrain_rgb_stage1", "pretrain_rgb_stage2", "extract_rgb_features"]
TINY = {"model": {"hidden": 32, "depth": 1, "heads": 2, "decoder_hidden": 16, "decoder_depth": 1,
                  "decoder_heads": 2},
        "teacher": {"input_size": [64, 64]},
        "stage1": {"epochs": 1, "batch_size": 16, "log_every_steps": 1},
        "stage2": {"epochs": 1, "batch_size": 16, "log_every_steps": 1}}


@pytest.mark.slow
@pytest.mark.pipeline
def test_rgb_rules_end_to_end_and_stage_granularity(tmp_path):
    for i, name in enumerate(("pretrain", "mg_train", "mg_test", "video_clips")):
        write_synthetic_rgb(tmp_path / "results" / "packs" / "rgb" / name, 32, seed=i)
    cfg = repo_config({**TINY_DEMO, "rgb_pretrain": TINY})
    write_config(tmp_path / "config.yaml", cfg)
    targets = ["results/models/rgb/rgb/encoder.safetensors",
               *(f"results/features/rgb/rgb/{n}.parquet" for n in ("mg_train", "mg_test", "video_clips"))]
    snakemake(tmp_path, "--allowed-rules", *RULES, "--", *targets, timeout=900)
    for t in targets:
        assert (tmp_path / t).is_file(), t
    for stage in ("stage1", "rgb"):
        assert (tmp_path / "results" / "models" / "rgb" / stage / "train_log.csv").is_file()
        log = (tmp_path / "logs" / "pretrain" / f"rgb_{'stage1' if stage == 'stage1' else 'stage2'}.log").read_text()
        assert "ETA" in log or "step in" in log
    dry = snakemake(tmp_path, "-n", "--allowed-rules", *RULES, "--", *targets)
    assert "Nothing to be done" in output(dry)

    cfg["rgb_pretrain"]["stage2"]["epochs"] = 2
    write_config(tmp_path / "config.yaml", cfg)
    dry = output(snakemake(tmp_path, "-n", "--allowed-rules", *RULES, "--", *targets))
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", dry, re.M))          # the job stats table
    assert planned.get("pretrain_rgb_stage2") == "1" and planned.get("extract_rgb_features") == "3", dry[-2000:]
    assert "pretrain_rgb_stage1" not in planned


@pytest.mark.slow
@pytest.mark.pipeline
def test_rgb_branch_on_the_tiny_demo_corpus(tmp_path):
    """The real upstream (rendered corpus, pose, clips, packed RGB clips) into both SMILE stages and features."""
    import json

    from mgfm.core.feature_store import read_features

    cfg = repo_config({**TINY_DEMO, "rgb_pretrain": {**TINY, "stage1": {"epochs": 1, "batch_size": 4},
                                                      "stage2": {"epochs": 1, "batch_size": 4}}})
    write_config(tmp_path / "config.yaml", cfg)
    targets = [f"results/features/rgb/rgb/{n}.parquet" for n in ("mg_train", "mg_test")]
    snakemake(tmp_path, *targets, timeout=1200)
    meta, feats = read_features(tmp_path / targets[1])
    assert len(meta) == len(feats) > 0 and feats.shape[1] == 32
    card = json.loads((tmp_path / "results" / "models" / "rgb" / "rgb" / "card.json").read_text())
    assert card["data"]["num_clips"] >= 4 and card["teacher"]["kind"] == "onnx_backbone"

"""The results layout (mgfm.core.results): one place names every folder, and the rules declare exactly its paths."""

from __future__ import annotations

import re
from pathlib import Path

from mgfm.core.results import Results, feature_file, metrics_file, model_folder, pack_folder

REPO = Path(__file__).resolve().parents[1]


def test_paths_sit_under_the_configured_folder_and_keep_wildcards():
    res = Results("out dir/")
    assert res.root == "out dir"
    assert res.pose("{video_id}") == "out dir/pose/{video_id}.parquet"
    assert res.video("v1") == "out dir/videos/v1.mp4" and res.video_meta("v1") == "out dir/videos/v1.json"
    assert res.pack("rgb", "{name}") == "out dir/packs/rgb/{name}"
    assert res.encoder("skeleton", "joint") == "out dir/models/skeleton/joint/encoder.safetensors"
    assert res.smile_model("stage1") == "out dir/models/rgb/stage1/smile_model.safetensors"
    assert res.features("rgb", "rgb", "mg_test") == "out dir/features/rgb/rgb/mg_test.parquet"
    assert res.protocol_metrics("finetune", "skeleton", "bone") == "out dir/eval/finetune/skeleton/bone/metrics.json"
    assert res.protocol_metrics("ensemble") == "out dir/eval/ensemble/metrics.json"
    assert res.validated == "out dir/ingest/validated.json" and res.report == "out dir/report.html"


def test_the_folder_helpers_and_the_layout_agree():
    """Stage functions that are given a folder (features, models, packs, eval) find the same files the rules write."""
    res = Results("r")
    assert feature_file(res.features_dir, "skeleton", "joint", "mg_train") == res.features("skeleton", "joint", "mg_train")
    assert model_folder(res.models_dir, "rgb", "rgb") == res.model_dir("rgb", "rgb")
    assert pack_folder(res.packs_dir, "skeleton", "pretrain") == res.pack("skeleton", "pretrain")
    assert metrics_file(res.eval_dir, "linear_probe", "rgb") == res.protocol_metrics("linear_probe", "rgb")


def test_no_rule_file_spells_a_results_path_itself():
    """Rules ask mgfm.core.results for paths: no rule file writes a literal '{RESULTS}/<folder>' path."""
    literal = re.compile(r"\{RESULTS\}/")
    bad = [f"{p.name}:{i}: {line.strip()}" for p in sorted((REPO / "workflow" / "rules").glob("*.smk"))
           for i, line in enumerate(p.read_text().splitlines(), 1) if literal.search(line)]
    assert not bad, "\n".join(bad)


def test_a_results_folder_of_the_previous_layout_is_named_with_the_moves_that_migrate_it(tmp_path):
    from mgfm.core.results import migration_message, migration_moves

    res = tmp_path / "my results"
    assert migration_message(res) is None                          # nothing there: nothing to move
    for old in ("dataset/videos", "datasets/skeleton", "content/datasets", "benchmarks/datasets", "pose"):
        (res / old).mkdir(parents=True)
    assert [(a.relative_to(res).as_posix(), b.relative_to(res).as_posix()) for a, b in migration_moves(res)] == [
        ("dataset", "ingest"), ("datasets", "packs"), ("content/datasets", "content/packs"),
        ("benchmarks/datasets", "benchmarks/packs")]
    message = migration_message(res)
    assert f"mv '{res}/dataset' '{res}/ingest'" in message and "snakemake --touch" in message
    for a, b in migration_moves(res):
        a.rename(b)
    assert migration_message(res) is None and migration_moves(res) == []


def test_the_workflow_stops_on_a_results_folder_of_the_previous_layout_before_any_job(tmp_path):
    from tests.support.workflow import TINY_DEMO, output, repo_config, snakemake, write_config

    write_config(tmp_path / "config.yaml", repo_config(TINY_DEMO))
    (tmp_path / "results" / "datasets" / "skeleton").mkdir(parents=True)
    proc = snakemake(tmp_path, "--dry-run", check=False, timeout=300)
    text = output(proc)
    assert proc.returncode != 0 and "previous layout" in text and "mv results/datasets results/packs" in text, text
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["datasets"]

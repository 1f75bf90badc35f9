"""The whole demo pipeline, end to end: `snakemake --cores 2` with the default config.yaml in a fresh working
directory, then what must hold on the demo, and that a second run has nothing to do.

This is the slowest test (about 10 minutes on 2 cores); every stage runs with the real code on the embedded
demo corpus.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mgfm.core.feature_store import read_features
from mgfm.core.packed import open_packed

from tests.support.workflow import REPO, snakemake

STREAMS = ("joint", "bone", "motion")
pytestmark = pytest.mark.pipeline


def _snakemake(work: Path, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return snakemake(work, *args, check=False, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    # MGFM_E2E_WORKDIR reuses (and completes) a working directory of an earlier run, for quick iteration
    work = Path(os.environ.get("MGFM_E2E_WORKDIR") or tmp_path_factory.mktemp("demo"))
    if not (work / "config.yaml").exists():
        shutil.copy(REPO / "config.yaml", work / "config.yaml")
    proc = _snakemake(work)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" not in text or not (work / "snakemake.log").exists():
        (work / "snakemake.log").write_text(text)  # a reused, complete workdir keeps the log of its real run
    assert proc.returncode == 0, proc.stderr[-6000:]
    return work


def _metrics(demo: Path, *parts: str) -> dict:
    return json.loads((demo / "results" / "eval" / Path(*parts) / "metrics.json").read_text())


@pytest.mark.slow
def test_second_run_has_nothing_to_do(demo):
    proc = _snakemake(demo, "--dry-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_every_stage_left_its_artifacts(demo):
    res = demo / "results"
    ids = pd.read_csv(res / "demo" / "manifest.csv")["video_id"]
    for vid in ids:
        assert (res / "videos" / f"{vid}.mp4").is_file() and (res / "pose" / f"{vid}.parquet").is_file()
    for name in ("pretrain", "mg_train", "mg_test", "video_clips"):
        skel, skel_meta = open_packed(res / "packs" / "skeleton" / name)
        assert len(skel) > 0 and skel.dtype == np.float32 and skel_meta["clip_id"].is_unique
        assert np.isfinite(np.asarray(skel)).all()
    # the demo evaluates both modalities, so MG-FM-RGB reads packed RGB clips with the skeleton clips' rows
    for name in ("pretrain", "mg_train", "mg_test", "video_clips"):
        rgb, rgb_meta = open_packed(res / "packs" / "rgb" / name)
        skel_ids = open_packed(res / "packs" / "skeleton" / name)[1]["clip_id"]
        assert rgb.dtype == np.uint8 and rgb_meta["clip_id"].tolist() == skel_ids.tolist()
    for stream in STREAMS:
        assert (res / "models" / "skeleton" / stream / "encoder.safetensors").is_file()
    for stage in ("stage1", "rgb"):                     # SMILE Stage 1, and Stage 2 = the evaluated RGB encoder
        assert (res / "models" / "rgb" / stage / "encoder.safetensors").is_file()
    for name in ("mg_train", "mg_test", "video_clips"):
        assert (res / "features" / "rgb" / "rgb" / f"{name}.parquet").is_file()
    assert (res / "figures" / "pretrain_curves_rgb.png").is_file()
    assert (res / "report.html").stat().st_size > 10_000
    report = (res / "report.html").read_text()
    assert "<title>mgfm benchmark report: the synthetic demo corpus (seed 7), not iMiGUE-3K</title>" in report
    assert "iMiGUE-3K benchmark report" not in report and "what pretraining buys" not in report


@pytest.mark.slow
def test_console_is_quiet_and_ends_with_the_report(demo):
    res = demo / "results"
    text = (demo / "snakemake.log").read_text()
    assert "--params" not in text and "Shell command" not in text
    assert len(text.encode()) < 40_000 and len(text.splitlines()) < 900
    assert "Done. Open results/report.html" in text and "Linear probe Top-1:" in text
    # one line per job, and the closing lines (the report, one line per protocol) right after the final progress
    lines = text.splitlines()
    final = max(i for i, line in enumerate(lines) if re.match(r"\d+ of \d+ steps \(100%\) done", line))
    total = int(lines[final].split()[0])
    assert len([line for line in lines if re.match(r"\[ *\d+/\d+ +\d+%\] \w+", line)]) == total
    assert lines[final + 1].startswith("Done. Open results/report.html")
    assert lines[final + 2:] and all(line.startswith("  ") for line in lines[final + 2:]), lines[final:]
    assert (res / "figures" / "fig4_durations.png").is_file()
    assert not list(res.rglob("*.part*")), "a temporary file was left behind"


@pytest.mark.slow
def test_no_sampled_clip_crosses_a_cut_in(demo):
    clips = pd.read_parquet(demo / "results" / "clips" / "clips.parquet")
    assert len(clips) > 100
    for vid, rows in clips.groupby("video_id"):
        cut_in = np.load(demo / "results" / "demo" / "keypoints" / f"{vid}.npz")["cut_in"]
        for start, end in zip(rows.start_frame, rows.end_frame):
            assert not cut_in[start:end + 1].any(), f"{vid}: clip {start}..{end} crosses a cut-in"


@pytest.mark.slow
def test_linear_probe_beats_chance_and_fusion_beats_the_mean_stream(demo):
    m = _metrics(demo, "linear_probe", "skeleton")
    chance = m["chance_top1"]
    last = {k: m["results"][k]["last"]["top1"]["mean"] for k in (*STREAMS, "3-stream")}
    for stream in STREAMS:
        assert last[stream] >= 2 * chance, f"{stream}: Top-1 {last[stream]:.1f} vs chance {chance:.1f}"
    assert last["3-stream"] >= np.mean([last[s] for s in STREAMS]), last


def _last_top1(demo: Path, protocol: str, stream: str) -> float:
    return _metrics(demo, protocol, "skeleton", stream)["results"]["last"]["top1"]["mean"]


def _seeds_noise(n_test: int, *results: dict) -> float:
    """What two demo numbers may differ by without meaning anything: two test instances, or the largest spread
    over the evaluation seeds of the numbers compared, whichever is larger."""
    return max(2 * 100 / n_test, *(r["std"] for r in results))


@pytest.mark.slow
def test_finetuning_keeps_up_with_scratch_and_few_label_models_beat_the_majority(demo):
    """Fine-tuning from MG-FM-Skele is not worse than the same encoder trained from scratch on the same budget
    beyond the seeds' noise (mean of the three streams, last epoch), and every stream's 10 % semi-supervised model
    beats the majority class of the training split.

    That fine-tuning *beats* scratch is not asserted: on the demo it depends on the pretraining seed (config
    ``seed``: 45.3 against 38.3 at the default seed, 34.8 against 37.7 at seed 1), so a strict comparison would
    pass or fail with the seed rather than with the code. A fine-tuning run that loses its pretrained start or
    stops learning still fails here: it falls well below the scratch model."""
    majority = _metrics(demo, "linear_probe", "skeleton")["majority_top1"]
    finetuned = {s: _metrics(demo, "finetune", "skeleton", s) for s in STREAMS}
    scratch = {s: _metrics(demo, "scratch", "skeleton", s) for s in STREAMS}
    top1 = {name: {s: m["results"]["last"]["top1"] for s, m in runs.items()}
            for name, runs in (("finetuned", finetuned), ("scratch", scratch))}
    noise = _seeds_noise(finetuned["joint"]["n_test"], *top1["finetuned"].values(), *top1["scratch"].values())
    ft_mean = np.mean([r["mean"] for r in top1["finetuned"].values()])
    scratch_mean = np.mean([r["mean"] for r in top1["scratch"].values()])
    assert ft_mean >= scratch_mean - noise, (top1, noise)
    for stream in STREAMS:
        semi = _last_top1(demo, "semi_supervised", stream)
        assert semi > majority, f"{stream}: semi-supervised Top-1 {semi:.1f} vs majority class {majority:.1f}"


@pytest.mark.slow
def test_retrieval_top5_not_below_top1(demo):
    m = _metrics(demo, "retrieval", "skeleton")
    for stream in STREAMS:
        r = m["results"][stream]
        assert 0 < r["top1"] <= r["top5"] <= 100


@pytest.mark.slow
def test_tables_hold_numbers_computed_in_this_run(demo):
    probe = _metrics(demo, "linear_probe", "skeleton")
    rgb_probe = _metrics(demo, "linear_probe", "rgb")
    tables = sorted((demo / "results" / "tables").glob("table*.csv"))
    names = {p.stem.split("_")[0] for p in tables}
    assert {"table6", "table7", "table8", "table9", "table10", "table11", "table12", "table13"} <= names
    table8 = pd.read_csv(next(p for p in tables if p.stem.startswith("table8")))
    computed = table8[(table8["status"] == "computed") & (table8["source"] != "baseline")]
    assert len(computed) >= 4
    # every computed cell is one of this run's probe numbers, and none is a copy of the paper's number
    results = [*probe["results"].values(), *rgb_probe["results"].values()]
    ours = {round(v["top1"]["mean"], 2) for res in results for v in res.values() if v} | \
           {round(v["top5"]["mean"], 2) for res in results for v in res.values() if v}
    for _, row in computed.iterrows():
        assert round(row["ours_mean"], 2) in ours, row.to_dict()
        assert pd.isna(row["paper"]) or abs(row["ours_mean"] - row["paper"]) > 1e-6, row.to_dict()
    cited = table8[table8["status"].str.startswith("cited")]
    assert cited["ours_mean"].isna().all()


@pytest.mark.slow
def test_spotting_beats_the_class_prior_baseline(demo):
    """Spotting on the held-out test videos: F1 at tIoU 0.3 clearly above the class-prior baseline of this run,
    thresholds chosen on validation videos only, and every test video has its outputs."""
    m = _metrics(demo, "spotting")
    ours, base = m["ours"]["tiou"]["0.3"]["f1"], m["class_prior_baseline"]["tiou"]["0.3"]["f1"]
    assert ours >= base + 5.0, (ours, base)
    assert m["ours"]["map_mean"] > m["class_prior_baseline"]["map_mean"]
    man = pd.read_csv(demo / "results" / "demo" / "manifest.csv")
    test = man.loc[man["split"] == "test", "video_id"]
    assert not set(test) & set(m["validation_videos"])
    for vid in test:
        out = demo / "results" / "infer" / "test" / vid
        inst = pd.read_csv(out / "instances.csv")
        meta = json.loads((out / "instances.json").read_text())
        assert len(meta["instances"]) == len(inst) and meta["config_hash"]
        assert "<svg" in (out / "report.html").read_text()
    assert (demo / "results" / "tables" / "table_spotting.md").read_text().count("cited, not reproduced") == 1


@pytest.mark.slow
def test_rgb_pretraining_learns_and_its_features_are_sound(demo):
    """What the demo's MG-FM-RGB shows on any machine: both SMILE stages reduce their distillation loss well below
    where they started, Stage 2 starts from Stage 1, and the frozen features are finite and not collapsed. Its
    linear probe is not asserted: on the demo it sits between chance and twice chance and moves by several points
    with the pretraining seed or the machine's floating point (docs/pretrain.md, "MG-FM-RGB on the demo")."""
    res = demo / "results"
    for stage, most in (("stage1", 0.85), ("rgb", 0.5)):
        curve = pd.read_csv(res / "models" / "rgb" / stage / "train_log.csv")
        first, last = curve["loss"].iloc[0], curve["loss"].iloc[-1]
        assert np.isfinite(curve["loss"]).all() and last <= most * first, (stage, first, last)
    card = json.loads((res / "models" / "rgb" / "rgb" / "card.json").read_text())
    assert card["stage"] == 2 and card["init"]["path"].endswith("stage1/smile_model.safetensors")
    _, x = read_features(res / "features" / "rgb" / "rgb" / "mg_test.parquet")
    assert np.isfinite(x).all() and (x.std(axis=0) > 1e-6).mean() > 0.9, "RGB features collapsed"
    m = _metrics(demo, "linear_probe", "rgb")
    assert 0 <= m["results"]["rgb"]["last"]["top1"]["mean"] <= 100 and m["chance_top1"] == pytest.approx(100 / 11)


@pytest.mark.slow
def test_skele_rgb_fusion_is_at_least_the_better_modality_minus_noise(demo):
    ens = _metrics(demo, "ensemble")
    res = ens["results"]
    fused = res["multimodal_weighted"]["top1"]
    skeleton, rgb = res["weighted"]["top1"], res["rgb"]["top1"]
    better = max(skeleton["mean"], rgb["mean"])
    noise = _seeds_noise(_metrics(demo, "finetune", "rgb", "rgb")["n_test"], fused, skeleton, rgb)
    assert fused["mean"] >= better - noise, (fused, skeleton, rgb, noise)
    assert ens["weights_multimodal"] and set(ens["weights_multimodal"][0]) == {*STREAMS, "rgb"}
    table11 = pd.read_csv(next((demo / "results" / "tables").glob("table11*.csv")))
    ours = table11[table11["method"] == "MG-FM (Ours)"]
    assert (ours["status"] == "computed").all() and len(ours)

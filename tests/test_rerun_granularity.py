"""A config change reruns exactly the steps that read the changed key: never a sibling, never anything upstream.

Snakemake reruns a job when its params change; every rule's only config-derived param is its ``--params`` slice
(mgfm.config.steps) and the global seed. So it is enough to show (1) that each planned job of a dry run is given
exactly its step's slice, (2) which steps' slices a change of one key alters (pure Python, every step at once),
and (3) end to end, that a dry run after changing a key of one eval protocol or of the figure changes the
command of that rule's jobs and of no other job. Dry runs only, on a 4-video demo config in a temp dir.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mgfm.config import resolve_config
from mgfm.config.steps import STEPS, step_params

ROOT = Path(__file__).resolve().parents[1]
# the smallest demo (at its default lengths) on which every protocol runs (mgfm.eval.plan skips none), so every
# step is planned
TINY = {"dataset": {"source": "demo", "demo": {"seed": 7, "n_videos": 7, "n_labeled": 5, "n_subjects": 5}}}
PARAMS = re.compile(r"--params '(\{.*?\})'")


def _config(change: dict | None = None) -> dict:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section, values in TINY.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    for dotted, value in (change or {}).items():
        *path, last = dotted.split(".")
        node = cfg
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return cfg


def planned_commands(workdir: Path, change: dict | None = None) -> dict[tuple[str, str], str]:
    """(rule, first output) -> shell command of every job a dry run plans from nothing."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfgfile = workdir / "config.yaml"
    cfgfile.write_text(yaml.safe_dump(_config(change)))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                           "--directory", str(workdir), "--configfile", str(cfgfile), "--cores", "1", "-n", "-p",
                           "--quiet=host"],
                          cwd=workdir, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        output = re.search(r"^\s+output: ([^,\n]+)", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        if rule and output and shell and shell.group(1) != "None":
            jobs[(rule.group(1), output.group(1))] = shell.group(1)
    return jobs


def step_of(rule: str, command: str) -> str:
    if rule in ("eval_finetune", "eval_finetune_variant"):
        return "eval_" + re.search(r"--protocol (\w+)", command).group(1)
    return rule


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return planned_commands(tmp_path_factory.mktemp("base"))


def test_every_job_is_given_exactly_its_steps_keys(baseline):
    config = resolve_config(_config())
    checked = set()
    for (rule, _), command in baseline.items():
        given = PARAMS.search(command)
        if rule == "demo_corpus":
            assert json.loads(given.group(1)) == config["dataset"]["demo"]
            continue
        if given is None:
            assert rule in ("validate_dataset", "check_annotations", "iod_tables", "infer_table", "label_free_views"), \
                f"{rule} reads no config: add it to STEPS"
            continue
        step = step_of(rule, command)
        assert json.loads(given.group(1)) == step_params(step, config), rule
        checked.add(step)
    # the RGB steps are planned only when eval.modalities lists rgb (nothing reads their outputs otherwise)
    rgb_steps = {s for s in STEPS if s.startswith(("rgb_", "pretrain_rgb", "extract_rgb"))}
    expected = set(STEPS) if "rgb" in config["eval"]["modalities"] else set(STEPS) - rgb_steps
    assert checked == expected, f"steps without a planned job: {expected - checked}"


# one key -> the steps whose params it changes (and so rerun, with what follows them through their outputs)
CHANGES = {
    "clips.figure_max_s": {"duration_figure"},
    "clips.tau": {"sample_clips", "iod"},
    "clips.quota": {"sample_clips"},
    "clips.iod_taus": {"iod"},
    "clips.prior": {"sample_clips", "iod", "duration_figure"},
    "pretrain.train.epochs": {"pretrain_skeleton"},
    "pretrain.features.batch_size": {"extract_features"},
    "pretrain.streams": set(),
    "eval.linear_probe.epochs": {"eval_linear_probe"},
    "eval.retrieval.chunk": {"eval_retrieval"},
    "eval.semi_supervised.fraction": {"eval_semi_supervised"},
    "eval.finetune.label_smoothing": {"eval_semi_supervised", "eval_finetune", "eval_scratch"},
    "eval.ensemble.grid_step": {"eval_ensemble"},
    "eval.emotion.epochs": {"eval_emotion", "eval_emotion_model"},
    "eval.report.max_points": {"eval_report"},
    "eval.seeds": {"eval_linear_probe", "eval_semi_supervised", "eval_finetune", "eval_scratch", "eval_ensemble",
                   "eval_emotion", "eval_emotion_model"},
    "infer.merge.nms_iou": {"infer_calibrate"},
    "infer.batch_size": {"infer_calibrate", "infer_spot"},
    "download.crf": {"download_video"},
    "pose.batch_size": {"pose"},
    "skeleton.num_frames": {"pack_skeleton"},
    "rgb.size": {"pack_rgb"},
    "rgb_pretrain.stage1.epochs": {"pretrain_rgb_stage1"},
    "rgb_pretrain.stage2.epochs": {"pretrain_rgb_stage2"},
    "rgb_pretrain.motion.objects": {"pretrain_rgb_stage1"},
    "rgb_pretrain.masking.ratio": {"pretrain_rgb_stage1", "pretrain_rgb_stage2"},
    "rgb_pretrain.augment.temporal": {"pretrain_rgb_stage1", "pretrain_rgb_stage2"},
    "rgb_pretrain.decay_exempt": {"pretrain_rgb_stage1", "pretrain_rgb_stage2"},
    "rgb_pretrain.stage2.schedule_epochs": {"pretrain_rgb_stage2"},
    "rgb.views.stride": {"pack_rgb"},
    "rgb_pretrain.features.batch_size": {"extract_rgb_features"},
}
NEW_VALUES = {"clips.prior": "prior.csv", "clips.iod_taus": [0.2], "pretrain.streams": ["joint"],
              "eval.seeds": [7], "infer.merge.nms_iou": 0.3, "rgb_pretrain.augment.temporal": False,
              "rgb_pretrain.decay_exempt": False, "rgb_pretrain.stage2.schedule_epochs": 60}


@pytest.mark.parametrize("key", sorted(CHANGES))
def test_a_key_changes_the_params_of_exactly_its_readers(key):
    before = resolve_config(_config())
    section, *path = key.split(".")
    node = before[section]
    for part in path[:-1]:
        node = node[part]
    value = NEW_VALUES.get(key)
    if value is None:
        old = node[path[-1]]
        value = old * 2 if not isinstance(old, float) or old < 0.5 else old / 2
    after = copy.deepcopy(before)
    target = after[section]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    changed = {step for step in STEPS if step_params(step, before) != step_params(step, after)}
    assert changed == CHANGES[key]


@pytest.mark.parametrize(("change", "rules"), [
    ({"eval.emotion.epochs": 3}, {"eval_emotion", "eval_emotion_model"}),
    ({"clips.figure_max_s": 12.0}, {"duration_figure"}),
])
def test_dry_run_after_a_change_alters_only_its_rule(tmp_path, baseline, change, rules):
    after = planned_commands(tmp_path / "changed", change)
    assert set(after) == set(baseline)
    differ = {job for job in baseline if baseline[job] != after[job]}
    # the report names the digest of the whole resolved config, so it (seconds of work) follows every change;
    # its --params slice is still exactly its step's keys (checked above)
    assert differ and {rule for rule, _ in differ} == rules | {"eval_report"}
    report = next(job for job in differ if job[0] == "eval_report")
    assert PARAMS.search(baseline[report]).group(1) == PARAMS.search(after[report]).group(1)

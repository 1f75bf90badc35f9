"""Workflow-level behaviour: a second run has nothing to do, changing a parameter of one stage reruns
that stage and what follows it and nothing upstream, and `snakemake --lint` is clean.

A tiny demo (4 videos) runs its cheap stages for real (corpus generation, validation, download and
normalisation, annotation check) in a scratch working directory; every other question is answered by dry runs
of the default target against those real outputs, so no slow stage runs here.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from mgfm.pose.params import DEMO_MODEL

from tests.support.workflow import REPO as ROOT, TINY_DEMO as TINY, merged, output, repo_config, snakemake, write_config

pytestmark = pytest.mark.pipeline

# what runs for real: everything the annotation check needs (demo corpus, validation, download + normalise),
# and once the demo pose model is in the package, pose extraction and clip sampling too
REAL_TARGETS = ["results/ingest/annotations_checked.json"]
REAL_TARGET = REAL_TARGETS[0]
# stages in workflow order, with their rules that run for real
STAGE_RULES = {
    "dataset": ("demo_corpus", "validate_dataset"),
    "download": ("download_video", "check_annotations"),
}
POSE_MODEL = DEMO_MODEL
if POSE_MODEL.is_file():
    REAL_TARGETS.append("results/clips/clips.parquet")
    STAGE_RULES["pose"] = ("pose",)
    STAGE_RULES["clips"] = ("sample_clips",)
CHEAP_RULES = tuple(rule for rules in STAGE_RULES.values() for rule in rules)


def run_tiny(workdir: Path, *args: str, config: dict | None = None) -> subprocess.CompletedProcess:
    """Run the workflow in `workdir` with a config file written there: the repository's config.yaml with the
    tiny demo (and the test's change) merged in."""
    write_config(workdir / "config.yaml", repo_config(config or TINY))
    return snakemake(workdir, *args)


def planned(workdir: Path, *args: str, config: dict | None = None) -> Counter:
    """Jobs per rule that a dry run would execute (parsed from snakemake's 'Job stats' table)."""
    out = output(run_tiny(workdir, "-n", *args, config=config))
    if "Nothing to be done" in out:
        return Counter()
    counts: Counter = Counter()
    table = out.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def tiny_with(section: str, key_path: list[str], value) -> dict:
    """The tiny config with one key of one section changed."""
    change: dict = {key_path[-1]: value}
    for key in reversed(key_path[:-1]):
        change = {key: change}
    return merged(TINY, {section: change})


# one harmless change per later stage (a valid value that only that stage reads)
LATER_STAGE_CHANGES = {
    "pose": (["detector", "score_threshold"], 0.55),
    "clips": (["tau"], 0.35),
    "skeleton": (["joint_min_score"], 0.06),
    "rgb": (["margin"], 1.3),
    "pretrain": (["train", "lr"], 0.002),
    "eval": (["linear_probe", "lr"], 0.007),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A scratch working directory where the cheap stages of the tiny demo ran for real."""
    workdir = tmp_path_factory.mktemp("rerun")
    run_tiny(workdir, *REAL_TARGETS)
    return workdir


def test_lint_is_clean():
    proc = snakemake(ROOT, "--lint", "--workflow-profile", "none", configfiles=(), cores=None, check=False,
                     timeout=300)
    assert proc.returncode == 0, f"snakemake --lint:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"


@pytest.mark.slow
def test_real_run_built_the_cheap_stages(built):
    assert sorted(p.name for p in (built / "results" / "videos").glob("*.json")) == [
        f"demo{i:03d}.json" for i in range(4)]
    assert (built / REAL_TARGET).is_file()


@pytest.mark.slow
def test_plain_run_uses_the_default_profile(built):
    """`snakemake --cores all` picks up profiles/default: snakemake looks for profiles/default beside the
    Snakefile (here the top level; workflow/profiles/ is found only beside a workflow/Snakefile)."""
    out = output(run_tiny(built, "-n", *REAL_TARGETS))
    assert re.search(r"Using workflow specific profile \S*profiles/default", out), out[:2000]
    assert (ROOT / "Snakefile").is_file() and not (ROOT / "profiles").is_symlink()
    assert not (ROOT / "workflow" / "profiles").exists(), "one profiles folder: the top-level profiles/"


@pytest.mark.slow
def test_second_run_has_nothing_to_do(built):
    assert planned(built, *REAL_TARGETS) == Counter()
    assert "Nothing to be done" in output(run_tiny(built, "-n", *REAL_TARGETS))


@pytest.mark.slow
def test_download_param_change_reruns_download_and_after_not_before(built):
    cfg = tiny_with("download", ["crf"], 30)
    jobs = planned(built, REAL_TARGET, config=cfg)
    assert jobs == Counter({"download_video": 4, "check_annotations": 1}), jobs
    # and it is the params trigger alone that does it (not mtime or code)
    assert planned(built, REAL_TARGET, "--rerun-triggers", "params", config=cfg) == jobs


@pytest.mark.slow
def test_demo_param_change_reruns_everything_from_the_corpus(built):
    cfg = tiny_with("dataset", ["demo", "seed"], 8)
    jobs = planned(built, REAL_TARGET, config=cfg)
    assert jobs["demo_corpus"] == 1 and jobs["download_video"] == 4 and jobs["check_annotations"] == 1, jobs


@pytest.mark.slow
@pytest.mark.parametrize("section", sorted(LATER_STAGE_CHANGES))
def test_later_stage_param_change_reruns_nothing_upstream(built, section):
    """Against the real outputs of the cheap stages, a change of a later stage's params leaves them alone.

    Dry runs of the default target (everything downstream is planned anyway: it was never built here)."""
    key_path, value = LATER_STAGE_CHANGES[section]
    cfg = tiny_with(section, key_path, value)
    stages = list(STAGE_RULES)
    before = stages[:stages.index(section)] if section in stages else stages
    upstream_rules = [rule for stage in before for rule in STAGE_RULES[stage]]
    after = planned(built, config=cfg)
    assert after, "the default target plans nothing"
    upstream = {rule: after[rule] for rule in upstream_rules if after[rule]}
    assert not upstream, f"changing {section}.{'.'.join(key_path)} reruns upstream jobs: {upstream}"
    # the params trigger alone: nothing upstream, and the stage's own built rules rerun
    only_params = planned(built, "--rerun-triggers", "params", config=cfg)
    assert not {rule for rule in upstream_rules if only_params[rule]}, only_params
    for rule in STAGE_RULES.get(section, ()):
        assert only_params[rule], f"changing {section}.{'.'.join(key_path)} does not rerun {rule}: {only_params}"


@pytest.mark.slow
def test_pose_model_change_with_earlier_pose_files_present(built, tmp_path):
    """Pose files of an earlier run (the demo model) are present. Another pose model file reruns every pose job
    and what follows; a pose model that does not exist stops the run before any job, naming the key (Snakemake
    alone would drop the pose jobs whose input is missing and keep the earlier files)."""
    if "pose" not in STAGE_RULES:
        pytest.skip("no demo pose model in the package")
    other = tmp_path / "other.onnx"
    other.write_bytes(POSE_MODEL.read_bytes())
    jobs = planned(built, "results/clips/clips.parquet", config=tiny_with("pose", ["model"], str(other)))
    assert jobs["pose"] == 4 and jobs["sample_clips"] == 1, jobs
    missing = tmp_path / "absent.onnx"
    write_config(built / "config.yaml", repo_config(tiny_with("pose", ["model"], str(missing))))
    proc = snakemake(built, "-n", "results/clips/clips.parquet", check=False)
    assert proc.returncode != 0 and f"config key pose.model: file not found: {missing}" in output(proc)
    write_config(built / "config.yaml", repo_config(TINY))  # the fixture's config again, for the other tests

"""What a user of the workflow sees: the results folder is a config key, a config file replaces the demo (whose
values reach a run only when it lists the repository's config.yaml), stages nobody reads are not planned (RGB
datasets), a missing required key stops the run, and the console stays quiet (no job's JSON params, a bounded
number of lines per job). Dry runs of a 4-video demo; one real two-job run for the console of an actual run."""

from __future__ import annotations

import json
import re

import pytest

from tests.support.workflow import REPO, TINY_DEMO, merged, output, snakemake, write_config

pytestmark = pytest.mark.pipeline


DEMO = REPO / "config.yaml"


def _dry(workdir, config: dict, *args: str, base: bool = True) -> str:
    """A dry run that prints each job's rule block and command (overriding the quiet default profile); ``base``:
    the repository's config.yaml (the demo) first, then ``config`` on top."""
    write_config(workdir / "own.yaml", config)
    files = [DEMO, workdir / "own.yaml"] if base else [workdir / "own.yaml"]
    proc = snakemake(workdir, "-n", "-p", "--quiet=host", *args, configfiles=files)
    return output(proc)


def _pretrain_params(text: str) -> list[dict]:
    return [json.loads(m) for m in re.findall(r"mgfm pretrain skeleton .*?--params '(\{.*?\})'", text)]


def _outputs(text: str) -> list[str]:
    return [o.strip() for line in re.findall(r"^\s+output: (.+)$", text, re.M) for o in line.split(",")]


def test_results_folder_is_configurable_and_a_config_file_replaces_the_demo(tmp_path):
    text = _dry(tmp_path, merged(TINY_DEMO, {"results": "out/own"}), base=False)
    outs = _outputs(text)
    assert outs and all(o.startswith("out/own/") for o in outs), [o for o in outs if not o.startswith("out/own/")]
    # own.yaml sets no pretraining key and the demo is not listed: the schema's paper-scale default, never the
    # demo's 20 epochs
    params = _pretrain_params(text)
    assert params and all(p["train"]["epochs"] == 451 for p in params)
    # listed first, the demo is the base and own.yaml goes on top
    params = _pretrain_params(_dry(tmp_path, merged(TINY_DEMO, {"results": "out/own"})))
    assert params and all(p["train"]["epochs"] == 20 for p in params)
    # no config file at all: the repository's config.yaml, wherever --directory points
    params = _pretrain_params(output(snakemake(tmp_path, "-n", "-p", "--quiet=host", configfiles=())))
    assert params and all(p["train"]["epochs"] == 20 for p in params)


def test_rgb_datasets_are_planned_only_for_an_rgb_consumer(tmp_path):
    skeleton_only = merged(TINY_DEMO, {"eval": {"modalities": ["skeleton"]}})
    text = _dry(tmp_path, skeleton_only)
    assert "rule pack_skeleton:" in text
    assert "rule pack_rgb:" not in text and "packs/rgb/" not in text
    # still buildable on request
    text = _dry(tmp_path, skeleton_only, "results/packs/rgb/mg_test")
    assert "rule pack_rgb:" in text
    # and planned, with the RGB pretraining that reads them, when RGB is evaluated
    text = _dry(tmp_path, merged(TINY_DEMO, {"eval": {"modalities": ["skeleton", "rgb"]}}))
    assert "rule pack_rgb:" in text and "rule pretrain_rgb_stage1:" in text


def test_a_missing_required_key_is_an_error(tmp_path):
    write_config(tmp_path / "own.yaml", {"dataset": {"source": "files"}})
    proc = snakemake(tmp_path, "-n", configfiles=[tmp_path / "own.yaml"], check=False)
    assert proc.returncode != 0
    assert "dataset.manifest is required" in output(proc)


def test_tables_and_report_name_the_dataset(tmp_path):
    text = _dry(tmp_path, TINY_DEMO)
    for command in ("mgfm tables iod", "mgfm tables render", "mgfm tables report"):
        line = next(ln for ln in text.splitlines() if command in ln)
        assert "--dataset 'the synthetic demo corpus (seed 7), not iMiGUE-3K'" in line, command


def test_dry_run_console_is_quiet(tmp_path):
    """With the default profile: no command, no params, no rule blocks; the job table and a few lines."""
    write_config(tmp_path / "own.yaml", TINY_DEMO)
    text = output(snakemake(tmp_path, "-n", configfiles=[DEMO, tmp_path / "own.yaml"]))
    assert "--params" not in text and "Shell command" not in text and "input:" not in text
    jobs = int(re.search(r"^total\s+(\d+)$", text, re.M).group(1))
    assert jobs > 30
    assert len(text.splitlines()) < 140, text[-3000:]


def test_run_console_has_one_line_per_job(tmp_path):
    write_config(tmp_path / "own.yaml", TINY_DEMO)
    proc = snakemake(tmp_path, "results/ingest/validated.json", configfiles=[DEMO, tmp_path / "own.yaml"])
    text = output(proc)
    assert "--params" not in text and "mgfm demo generate" not in text
    lines = text.splitlines()
    jobs = re.findall(r"^\[\d/2 +\d+%\] (\w+)  \d", text, re.M)
    assert jobs == ["demo_corpus", "validate_dataset"], text
    # the profile's line, what the data-size plan says of this tiny corpus (each line a config key's warning or a
    # skipped protocol), Snakemake's note on conda, the plan, a line per job, the final progress line and the
    # closing line: nothing else
    conda = lines.index("Conda environments: ignored")
    said = lines[1:conda]
    assert said and all(re.match(r"(skipped: \w+: |[a-z_]+(\.[a-z_0-9]+)+ )", line) for line in said), text
    assert lines[conda + 1] == "2 jobs to run (2 rules; `snakemake -n` lists them)" and len(lines) == conda + 6, text
    assert lines[-2].startswith("2 of 2 steps (100%) done in ")
    # the run did not build the report: the closing line says where the results are instead, last
    assert lines[-1].startswith("Done. Results are under results/"), text


def test_demo_pose_model_on_a_files_dataset_warns(tmp_path):
    (tmp_path / "m.csv").write_text("video_id,url,sha256,subject_id,outcome,subset,split\n"
                                    "a,a.mp4,,s1,win,labeled,train\nb,b.mp4,,s2,lose,labeled,test\n")
    (tmp_path / "a.csv").write_text("video_id,class_id,start_frame,end_frame\na,0,0,10\nb,0,5,20\n")
    (tmp_path / "t.csv").write_text("class_id,name,group\n0,nodding,Head\n")
    files = {"dataset": {"source": "files", "manifest": str(tmp_path / "m.csv"),
                         "annotations": str(tmp_path / "a.csv"), "taxonomy": str(tmp_path / "t.csv")}}
    write_config(tmp_path / "own.yaml", files)
    text = output(snakemake(tmp_path, "-n", configfiles=[tmp_path / "own.yaml"], check=False))
    assert "the demo pose model is used: it was trained on the synthetic demo renders only" in text
    write_config(tmp_path / "own.yaml", merged(files, {"pose": {"model": str(tmp_path / "real.onnx")}}))
    text = output(snakemake(tmp_path, "-n", configfiles=[tmp_path / "own.yaml"], check=False))
    assert "demo pose model" not in text

"""Config validation at parse time: a wrong type, an unknown key or a missing file stops Snakemake before any
job starts, with one message naming the key; defaults are filled in from the schemas."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.workflow import REPO, snakemake

pytestmark = pytest.mark.pipeline


def _dry_run(tmp_path: Path, cfg: dict) -> subprocess.CompletedProcess:
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    return snakemake(tmp_path, "--dry-run", cores=1, check=False, timeout=300)


def _demo_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["clips"].update(tua=0.3), ["clips.tua: unknown key", "did you mean 'tau'"]),
    (lambda c: c["clips"].update(tau="high"), ["clips.tau: expected number, got 'high'"]),
    (lambda c: c["pretrain"]["train"].update(epochs=-3), ["pretrain.train.epochs: -3 is not allowed"]),
    (lambda c: c["pretrain"]["train"].update(epochs=5.0), ["pretrain.train.epochs: expected integer, got 5.0"]),
    (lambda c: c.update(sead=1), ["config.sead: unknown key"]),
    (lambda c: c["dataset"].update(source="files", manifest="nowhere/manifest.csv"),
     ["dataset.manifest", "nowhere/manifest.csv"]),
    (lambda c: c["dataset"].update(source="files"), ["dataset.manifest", "required"]),
])
def test_bad_config_stops_before_any_job_naming_the_key(tmp_path, edit, words):
    cfg = _demo_config()
    edit(cfg)
    proc = _dry_run(tmp_path, cfg)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for word in words:
        assert word in out, out[-3000:]
    assert not (tmp_path / "results").exists() and "Job stats" not in out
    assert "additionalProperties" not in out and len(out.splitlines()) < 20, out  # the key, not a schema dump


def test_defaults_come_from_the_schemas(tmp_path):
    """A config with only the dataset section plans the whole pipeline: every other key takes its default."""
    proc = _dry_run(tmp_path, {"dataset": {"source": "demo", "demo": {"n_videos": 4, "n_subjects": 4,
                                                                      "n_labeled": 3}}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pretrain_skeleton" in proc.stdout and "eval_report" in proc.stdout

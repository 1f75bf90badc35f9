"""Bad config fails before any work, naming the config key (module, CLI and Snakemake parse time)."""

import pytest

from mgfm.cli import main
from mgfm.eval.checks import check_eval_config, check_modality, check_streams

from tests.support.workflow import output, snakemake


def test_stream_not_pretrained():
    with pytest.raises(ValueError, match=r"eval.streams.*'motion' was not pretrained.*pretrain.streams"):
        check_streams(["joint", "motion"], ["joint", "bone"])
    with pytest.raises(ValueError, match="unknown stream 'hand'"):
        check_streams(["hand"], ["joint"])


def test_modalities():
    check_modality("skeleton")
    check_modality("rgb")
    with pytest.raises(ValueError, match=r"eval.modalities.*'audio' does not exist"):
        check_modality("audio")


def test_ensemble_needs_validation():
    with pytest.raises(ValueError, match="eval.ensemble.select.*eval.validation.fraction"):
        check_eval_config({"ensemble": {"select": "validation"}, "validation": {"fraction": 0.0}}, ["joint", "bone", "motion"])
    with pytest.raises(ValueError, match="eval.ensemble.weights"):
        check_eval_config({"streams": ["joint"], "ensemble": {"weights": {"bone": 1.0}}}, ["joint", "bone"])


def test_cli_fails_before_reading(tmp_path, capsys):
    # paths do not exist: the config error must come first
    none = tmp_path / "none.parquet"
    rc = main(["eval", "linear-probe", "--train-features", f"joint={none}", "--test-features", f"joint={none}",
               "--taxonomy", "missing.csv",
               "--out-dir", str(tmp_path / "out"), "--params", '{"streams": ["joint", "motion"]}',
               "--pretrained-streams", "joint,bone"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "pretrain.streams" in err and "'motion'" in err
    assert not (tmp_path / "out").exists()
    rc = main(["eval", "retrieval", "--modality", "audio", "--train-features", "joint=x", "--test-features", "joint=x",
               "--taxonomy", "x",
               "--out-dir", str(tmp_path / "out")])
    assert rc == 1 and "--modality: modality 'audio' does not exist" in capsys.readouterr().err


@pytest.mark.pipeline
def test_snakemake_parse_time_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("pretrain:\n  streams: [joint]\neval:\n  streams: [joint, bone]\n")
    (tmp_path / "wd").mkdir()
    proc = snakemake(tmp_path / "wd", "-n", configfiles=[cfg], cores=1, check=False, timeout=120)
    text = output(proc)
    assert proc.returncode != 0
    assert "eval.streams" in text and "'bone' was not pretrained" in text


def test_explicit_files_must_name_exactly_the_evaluated_streams(tmp_path, capsys):
    """A feature table for a stream the config does not evaluate, one missing, or a malformed NAME=PATH is an
    error naming the option, before any file is read."""
    base = ["eval", "retrieval", "--taxonomy", "t.csv", "--out-dir", str(tmp_path / "out"),
            "--params", '{"streams": ["joint"]}', "--pretrained-streams", "joint"]
    assert main([*base, "--train-features", "bone=a.parquet", "--test-features", "joint=b.parquet"]) == 1
    assert "--train-features names ['bone'], but the config evaluates ['joint']" in capsys.readouterr().err
    assert main([*base, "--train-features", "joint", "--test-features", "joint=b.parquet"]) == 1
    assert "--train-features 'joint': expected NAME=PATH" in capsys.readouterr().err
    assert main(["eval", "linear-probe", *base[2:], "--train-features", "joint=a.parquet",
                 "--test-features", "joint=b.parquet", "--encoder", "joint=models/joint"]) == 1
    assert "--encoder and --test-pack go together" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

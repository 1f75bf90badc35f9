"""Partition and account of SLURM submissions (mgfm.common.slurm), with a fake ``scontrol`` on the PATH that
prints a chosen cluster's answer and counts its calls; and the SLURM profile's resource values, evaluated as
Snakemake evaluates them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from mgfm.common import slurm

REPO = Path(__file__).resolve().parents[1]
PARTITIONS_WITH_DEFAULT = ("PartitionName=cpu AllowGroups=ALL Default=YES State=UP\n"
                           "PartitionName=gpu AllowGroups=ALL Default=NO State=UP\n")
PARTITIONS_WITHOUT_DEFAULT = "PartitionName=gpu AllowGroups=ALL Default=NO State=UP\n"
CONFIG_ENFORCING = ("AccountingStorageBackupHost = (null)\nAccountingStorageEnforce = associations,limits,qos\n"
                    "AccountingStorageHost   = db01\n")
CONFIG_NOT_ENFORCING = "AccountingStorageEnforce = none\nAccountingStorageHost   = db01\n"
CONFIG_WITHOUT_THE_KEY = "ClusterName             = test\nAccountingStorageHost   = associations\n"


@pytest.fixture()
def cluster(tmp_path, monkeypatch):
    """``set(partitions=..., config=...)``: what the fake scontrol prints; ``calls()``: its argument lines."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    script = bin_dir / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{calls}"\n'
                      f'case "$2" in partition) cat "{tmp_path}/partition" ;; config) cat "{tmp_path}/config" ;; esac\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key in [k for k in os.environ if k.startswith("MGFM_SLURM_")]:
        monkeypatch.delenv(key)

    class Cluster:
        @staticmethod
        def set(partitions: str = PARTITIONS_WITH_DEFAULT, config: str = CONFIG_NOT_ENFORCING) -> None:
            (tmp_path / "partition").write_text(partitions)
            (tmp_path / "config").write_text(config)

        @staticmethod
        def calls() -> list[str]:
            return calls.read_text().splitlines() if calls.exists() else []

    Cluster.set()
    return Cluster


def test_a_set_variable_is_used_without_asking_scontrol(cluster, monkeypatch):
    cluster.set(PARTITIONS_WITHOUT_DEFAULT, CONFIG_ENFORCING)
    monkeypatch.setenv("MGFM_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("MGFM_SLURM_ACCOUNT", "proj")
    assert (slurm.default_partition(), slurm.default_account()) == ("gpu", "proj")
    assert cluster.calls() == []


def test_unset_and_not_needed_gives_empty_values_and_caches_the_answer(cluster):
    cluster.set(PARTITIONS_WITH_DEFAULT, CONFIG_NOT_ENFORCING)
    assert (slurm.default_partition(), slurm.default_account()) == ("", "")
    assert cluster.calls() == ["show partition", "show config"]
    assert os.environ["MGFM_SLURM_PARTITION_NEEDED"] == "no" and os.environ["MGFM_SLURM_ACCOUNT_NEEDED"] == "no"
    # asked once: a changed cluster answer is not seen by the same process tree
    cluster.set(PARTITIONS_WITHOUT_DEFAULT, CONFIG_ENFORCING)
    assert (slurm.default_partition(), slurm.default_account()) == ("", "")
    assert len(cluster.calls()) == 2


def test_no_default_partition_names_the_variable_to_set(cluster):
    cluster.set(PARTITIONS_WITHOUT_DEFAULT)
    with pytest.raises(slurm.SlurmSettingError, match=r"no default partition: set MGFM_SLURM_PARTITION \(sinfo -s"):
        slurm.default_partition()
    assert os.environ["MGFM_SLURM_PARTITION_NEEDED"] == "yes"
    with pytest.raises(slurm.SlurmSettingError, match="set MGFM_SLURM_PARTITION"):
        slurm.default_partition()                       # the cached answer: no second scontrol call
    assert cluster.calls() == ["show partition"]
    assert slurm.default_account() == ""                # the account is a separate question


def test_enforced_associations_need_an_account(cluster):
    cluster.set(PARTITIONS_WITH_DEFAULT, CONFIG_ENFORCING)
    with pytest.raises(slurm.SlurmSettingError, match=r"requires an account for every job: set MGFM_SLURM_ACCOUNT "
                                                      r"\(sacctmgr show associations user=<you>"):
        slurm.default_account()
    assert slurm.default_partition() == ""


@pytest.mark.parametrize("enforce, needed", [("associations", True), ("limits", True), ("safe", True),
                                             ("0", False), ("none", False), ("nojobs,nosteps", False)])
def test_which_enforce_values_need_an_account(cluster, enforce, needed):
    cluster.set(config=f"AccountingStorageEnforce = {enforce}\n")
    assert slurm.account_needed() is needed


def test_only_the_enforce_line_counts(cluster):
    """'associations' elsewhere in the config (here a host name) does not make the account required."""
    cluster.set(config=CONFIG_WITHOUT_THE_KEY)
    assert slurm.default_account() == ""


def test_without_scontrol_nothing_is_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    for key in [k for k in os.environ if k.startswith("MGFM_SLURM_")]:
        monkeypatch.delenv(key)
    assert (slurm.default_partition(), slurm.default_account()) == ("", "")
    assert os.environ["MGFM_SLURM_PARTITION_NEEDED"] == "no"


def test_a_bad_cached_value_is_named(cluster, monkeypatch):
    monkeypatch.setenv("MGFM_SLURM_PARTITION_NEEDED", "maybe")
    with pytest.raises(slurm.SlurmSettingError, match="MGFM_SLURM_PARTITION_NEEDED='maybe'"):
        slurm.default_partition()
    assert cluster.calls() == []


@pytest.mark.parametrize("key, function", [("slurm_partition", "default_partition"),
                                           ("slurm_account", "default_account")])
def test_the_profile_values_call_the_function_through_snakemakes_evaluator(cluster, monkeypatch, key, function):
    """The profile's strings, evaluated by Snakemake's own resource evaluator: a value, or the error message."""
    from snakemake.exceptions import WorkflowError
    from snakemake.resources import Resource

    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    expr = profile["default-resources"][key]
    assert function in expr

    def evaluate():
        return Resource.cli_evaluator(key, expr, wildcards=None, input=None, attempt=1, async_run=None)

    assert evaluate() == ""
    variable = "MGFM_SLURM_PARTITION" if key == "slurm_partition" else "MGFM_SLURM_ACCOUNT"
    monkeypatch.setenv(variable, "x1")
    assert evaluate() == "x1"
    monkeypatch.delenv(variable)
    monkeypatch.setenv(variable + "_NEEDED", "yes")
    with pytest.raises(WorkflowError) as err:
        evaluate()
    assert f"set {variable}" in str(err.value)

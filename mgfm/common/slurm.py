"""Partition and account of every SLURM submission (read by ``profiles/slurm/config.yaml``).

Why here and not in the profile: the profile stays the same for every user of a cluster, so the values come
from the environment (``MGFM_SLURM_PARTITION``, ``MGFM_SLURM_ACCOUNT``). Unset, the cluster's default partition
and the SLURM executor plugin's guess of the account are used, unless the cluster cannot take a job without
them: then the run stops while Snakemake reads its resources, before anything is submitted, with a message
naming the variable to set. Whether the cluster needs a value is asked of ``scontrol`` once per process tree:
the answer is kept in ``MGFM_SLURM_PARTITION_NEEDED`` / ``MGFM_SLURM_ACCOUNT_NEEDED`` ("yes"/"no"), which
Snakemake's children (and jobs, which SLURM starts with the submitting environment) inherit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

PARTITION_VAR = "MGFM_SLURM_PARTITION"
ACCOUNT_VAR = "MGFM_SLURM_ACCOUNT"
NEEDED_SUFFIX = "_NEEDED"
#: AccountingStorageEnforce values that make SLURM refuse a job without a valid association (slurm.conf: each
#: of limits, qos, safe and wckeys sets associations too)
ENFORCES_ASSOCIATIONS = frozenset({"associations", "limits", "qos", "safe", "wckeys"})


class SlurmSettingError(ValueError):
    """The cluster needs a value that the environment does not give; the message names the variable."""


def _scontrol(*args: str) -> str | None:
    """``scontrol <args>`` output; None without scontrol on the PATH (not a SLURM machine). A failing scontrol
    (no controller answering) gives its empty output: the check then requires nothing and leaves the error to
    the submission, which names the real cause."""
    exe = shutil.which("scontrol")
    if exe is None:
        return None
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False).stdout


def partition_needed() -> bool:
    """Whether jobs must name a partition: the cluster has partitions and none is marked ``Default=YES``."""
    out = _scontrol("show", "partition")
    return bool(out) and "PartitionName=" in out and "Default=YES" not in out


def account_needed() -> bool:
    """Whether jobs must name an account: ``AccountingStorageEnforce`` includes associations."""
    out = _scontrol("show", "config") or ""
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageEnforce":
            return bool(ENFORCES_ASSOCIATIONS & {v.strip().lower() for v in value.split(",")})
    return False


def _needed(var: str, check: Callable[[], bool]) -> bool:
    """``check()``, asked once: cached in the environment variable ``<var>_NEEDED``."""
    cache = var + NEEDED_SUFFIX
    cached = os.environ.get(cache)
    if cached is None or cached == "":
        cached = os.environ[cache] = "yes" if check() else "no"
    if cached not in ("yes", "no"):
        raise SlurmSettingError(f"{cache}={cached!r}: expected 'yes' or 'no' (or unset it to ask scontrol)")
    return cached == "yes"


def _setting(var: str, needed: Callable[[], bool], missing: str) -> str:
    """``var``'s value; unset, "" where the cluster does without it (``needed`` asks scontrol, once per run), else
    ``SlurmSettingError(missing)``."""
    value = os.environ.get(var, "")
    if value or not _needed(var, needed):
        return value
    raise SlurmSettingError(missing)


def default_partition() -> str:
    """``MGFM_SLURM_PARTITION``; unset, "" (the cluster's default partition) where the cluster has one."""
    return _setting(PARTITION_VAR, partition_needed,
                    f"this SLURM cluster has no default partition: set {PARTITION_VAR} (sinfo -s lists the "
                    f"partitions), e.g. export {PARTITION_VAR}=gpu")


def default_account() -> str:
    """``MGFM_SLURM_ACCOUNT``; unset, "" (the plugin's guess) where the cluster accepts jobs without one."""
    return _setting(ACCOUNT_VAR, account_needed,
                    f"this SLURM cluster requires an account for every job: set {ACCOUNT_VAR} (sacctmgr show "
                    f"associations user=<you> lists yours), e.g. export {ACCOUNT_VAR}=myproject")

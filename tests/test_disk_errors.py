"""A full disk, a read-only folder: one line naming the path, nothing half-written under a final name.

The real conditions are made in a private mount namespace (``unshare``): a tmpfs of a few MB that fills up, and
a read-only bind mount over a results folder. Nothing outside the namespace sees them, and they vanish with it.
Skipped where the machine does not allow mount namespaces.
"""

from __future__ import annotations

import errno
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mgfm.common.disk import os_error_line, reserve, unwritable_dirs
from tests.support.workflow import REPO, TINY_DEMO, repo_config, write_config

PY = shlex.quote(sys.executable)


def _unshare() -> list[str] | None:
    for cmd in (["unshare", "-m"], ["unshare", "-rm"]):
        try:
            ok = subprocess.run([*cmd, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True,
                                timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return cmd
    return None


UNSHARE = _unshare()
needs_namespace = pytest.mark.skipif(UNSHARE is None, reason="no private mount namespace here (unshare -m / -rm)")


def in_namespace(script: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (its mounts vanish with it)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    return subprocess.run([*UNSHARE, "sh", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def full_disk(folder: Path, size: str = "4m") -> str:
    """Shell lines mounting a tmpfs of ``size`` on ``folder``."""
    return f"mkdir -p {shlex.quote(str(folder))} && mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(folder))}"


@needs_namespace
def test_a_memory_mapped_dataset_on_a_full_disk_is_an_error_naming_it_not_a_sigbus(tmp_path):
    """16 MB of clips onto a 4 MB file system: refused before any page is written, the temporary removed."""
    disk = tmp_path / "disk"
    script = f"""{full_disk(disk)} && {PY} - <<'EOF'
import numpy as np
from mgfm.common.logs import setup_logging
from mgfm.core.packed import PackedWriter
from mgfm.cli import report_error
from mgfm.common.disk import os_error_line
try:
    with PackedWriter("{disk}/skeleton/pretrain", (1000, 3, 64, 21), np.float32) as w:
        w.data[:] = 1.0
        raise SystemExit("filled a map larger than the disk")
except OSError as err:
    print(os_error_line(err))
import os
print("LEFT", sorted(os.listdir("{disk}/skeleton")))
EOF"""
    proc = in_namespace(script, tmp_path)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])      # -7 / 135 would be SIGBUS
    line, left = proc.stdout.strip().splitlines()
    assert f"{disk}/skeleton/pretrain" in line and "no space left for dataset" in line and "needs 15.4 MB" in line
    assert left == "LEFT []"


@needs_namespace
def test_reserve_allocates_for_real_so_a_map_never_meets_a_full_disk(tmp_path):
    """Space that fits the free-space check but is taken by the time it is allocated still fails as ENOSPC."""
    disk = tmp_path / "disk"
    script = f"""{full_disk(disk, "40m")} && {PY} - <<'EOF'
import errno
from mgfm.common.disk import reserve
open("{disk}/a.bin", "wb").close()
reserve("{disk}/a.bin", 8 << 20)
import os
print(os.stat("{disk}/a.bin").st_blocks * 512 >= 8 << 20)
open("{disk}/b.bin", "wb").close()
import mgfm.common.disk as disk
disk.free_bytes = lambda path: 1 << 40         # the check passes; another writer took the space meanwhile
try:
    reserve("{disk}/b.bin", 64 << 20)
except OSError as err:
    print(err.errno == errno.ENOSPC, err.filename == "{disk}/b.bin")
EOF"""
    proc = in_namespace(script, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["True", "True", "True"]


@needs_namespace
def test_a_command_on_a_full_disk_ends_with_one_line_naming_the_path(tmp_path):
    """mgfm ingest validate writing its JSON onto a full disk: the last line is the path and the cause."""
    from tests.support.features import write_tables, synthetic_videos

    tables = write_tables(tmp_path / "tables", 3, synthetic_videos())
    (tmp_path / "tables" / "annotations.csv").write_text("video_id,class_id,start_frame,end_frame\nv000,0,0,9\n")
    disk = tmp_path / "disk"
    out = disk / "validated.json"
    script = (f"{full_disk(disk, '1m')} && head -c 2000000 /dev/zero > {disk}/filler 2>/dev/null; "
              f"mgfm ingest validate --manifest {tables['manifest']} --annotations {tmp_path}/tables/annotations.csv "
              f"--taxonomy {tables['taxonomy']} --out {out}; echo rc=$?; ls -A {disk}")
    proc = in_namespace(script, tmp_path)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.stdout.split() == ["rc=1", "filler"], proc.stdout      # nothing half-written beside the filler
    assert f"{disk}" in last and "No space left on device" in last and "free there" in last, last
    assert "Traceback" not in last


@needs_namespace
def test_the_training_log_is_never_left_empty_by_a_full_disk(tmp_path):
    disk = tmp_path / "disk"
    script = f"""{full_disk(disk, "1m")} && {PY} - <<'EOF'
import os
from pathlib import Path
from mgfm.train.loop import _CsvLog
log = _CsvLog(Path("{disk}/train_log.csv"), None)
log.write({{"epoch": 1, "loss": 0.5}})
before = Path("{disk}/train_log.csv").read_text()
with open("{disk}/filler", "wb", buffering=0) as f:
    try:
        while True:
            f.write(b"x" * 65536)
    except OSError:
        pass
try:
    for epoch in range(2, 200):
        log.write({{"epoch": epoch, "loss": 0.1 * epoch, "pad": "y" * 4000}})
except OSError as err:
    print("failed", err.errno)
print(Path("{disk}/train_log.csv").read_text() == before, sorted(p for p in os.listdir("{disk}") if ".part" in p))
EOF"""
    proc = in_namespace(script, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["failed", "28", "True", "[]"], proc.stdout


@needs_namespace
@pytest.mark.pipeline
def test_a_read_only_results_folder_stops_the_workflow_before_any_job_naming_it(tmp_path):
    write_config(tmp_path / "config.yaml", repo_config(TINY_DEMO))
    (tmp_path / "results" / "pose").mkdir(parents=True)
    cmd = (f"{PY} -m snakemake --snakefile {REPO / 'Snakefile'} --directory {tmp_path} --configfile "
           f"{tmp_path / 'config.yaml'} --cores 1 --dry-run")
    proc = in_namespace(f"mount --bind -o ro results/pose results/pose && {cmd}", tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "results/pose: not writable (read-only permissions or file system)" in out
    assert "Traceback" not in out and len(out.splitlines()) < 12, out


def test_os_errors_read_as_one_line_naming_the_path(tmp_path):
    assert os_error_line(OSError(errno.EACCES, "Permission denied", "/r/x.json")) == \
        "/r/x.json: Permission denied (check the permissions of the file and its folder)"
    assert os_error_line(OSError(errno.EROFS, "Read-only file system", "/r/x")).endswith("(a read-only file system)")
    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "f")))
    assert line.startswith(f"{tmp_path / 'f'}: No space left on device (") and "free there)" in line


def test_a_failing_command_with_an_os_error_ends_with_that_line(tmp_path, capsys, monkeypatch):
    from mgfm.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "dataset" / "validated.json"))

    monkeypatch.setattr("mgfm.ingest.contract.validate_dataset", full)
    assert main(["ingest", "validate", "--manifest", "m.csv", "--annotations", "a.csv", "--taxonomy", "t.csv",
                 "--out", str(tmp_path / "v.json")]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f"{tmp_path / 'dataset' / 'validated.json'}: No space left on device "
                         f"({last.rsplit('(', 1)[1]}")


def test_unwritable_dirs_lists_folders_without_write_permission(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: real(p, mode) and not str(p).endswith("/a"))
    assert unwritable_dirs(tmp_path) == [tmp_path / "a"]
    assert unwritable_dirs(tmp_path / "missing") == []


def test_reserve_names_the_file_when_the_free_space_is_short(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"")
    with pytest.raises(OSError) as info:
        reserve(tmp_path / "x.npy", 1 << 60, "dataset results/packs/skeleton/pretrain")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path)
    assert "no space left for dataset results/packs/skeleton/pretrain: it needs" in os_error_line(info.value)

"""GPU slots on one machine: a job takes whole GPUs by lock file and sees only those (``CUDA_VISIBLE_DEVICES``).

Snakemake's ``--resources gpu=N`` limits how many GPUs the running jobs ask for in all, but it does not say which
GPU each job gets: without this, every job of a 4-GPU workstation would run on GPU 0. The rules therefore start
their GPU commands through

    python -m mgfm.common.gpu_slots --gpus N -- COMMAND ...

which takes N free GPUs (an exclusive ``flock`` on one file per GPU, all or none, waiting while too few are free),
sets ``CUDA_VISIBLE_DEVICES`` to them and replaces itself with COMMAND. The locks belong to the open files that
COMMAND inherits, so they are released when it ends, however it ends (a kill -9 included): nothing to clean up.

- Under SLURM (``SLURM_JOB_ID`` set) the scheduler has already bound the job's GPUs: COMMAND runs unchanged.
- The GPUs to choose from are the entries of ``CUDA_VISIBLE_DEVICES`` when it is set (so a machine can be shared
  out by hand, and tests fake a machine's GPUs with it), else every NVIDIA GPU the driver lists.
- On a machine without GPUs COMMAND runs unchanged; ``--gpus 0`` on a machine with GPUs hides them.
- Lock files live in ``$MGFM_GPU_LOCK_DIR`` (default: ``mgfm-gpu-slots-<uid>`` in the temporary folder), one per
  GPU, named by its ``CUDA_VISIBLE_DEVICES`` entry.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEVICE_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")  # an index, or a GPU-/MIG- UUID


def machine_gpus() -> list[str]:
    """The NVIDIA GPUs of this machine as ``CUDA_VISIBLE_DEVICES`` entries ("0", "1", ...), without importing
    torch or starting CUDA: the driver's /proc listing, else ``nvidia-smi -L``; [] when neither answers."""
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        n = sum(1 for _ in proc.iterdir())
        if n:
            return [str(i) for i in range(n)]
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            return []
        return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]
    return []


def candidate_gpus(environ: dict | None = None) -> list[str]:
    """The GPUs a job may be given: ``CUDA_VISIBLE_DEVICES``'s entries when it is set, else the machine's."""
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return machine_gpus()
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    bad = [v for v in ids if not DEVICE_ID.match(v) or v.startswith("-")]
    if bad:
        raise ValueError(f"CUDA_VISIBLE_DEVICES={visible!r}: entry {bad[0]!r} is not a GPU index or UUID")
    return ids


def lock_dir(environ: dict | None = None) -> Path:
    env = os.environ if environ is None else environ
    folder = env.get("MGFM_GPU_LOCK_DIR") or os.path.join(tempfile.gettempdir(), f"mgfm-gpu-slots-{os.getuid()}")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def try_acquire(gpus: list[str], count: int, folder: Path) -> tuple[list[str], list[int]] | None:
    """``count`` of ``gpus`` whose lock files this process could lock now, with their open descriptors; None
    (nothing kept locked) when fewer are free. All or none, so two jobs waiting for two GPUs never deadlock."""
    taken: list[tuple[str, int]] = []
    for gpu in gpus:
        if len(taken) == count:
            break
        fd = os.open(folder / f"gpu-{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        taken.append((gpu, fd))
    if len(taken) < count:
        for _, fd in taken:
            os.close(fd)
        return None
    return [g for g, _ in taken], [fd for _, fd in taken]


def acquire(count: int, gpus: list[str], folder: Path, poll_s: float = 1.0, timeout_s: float | None = None,
            say=print) -> tuple[list[str], list[int]]:
    """Wait until ``count`` of ``gpus`` are free and lock them: (GPU ids, lock descriptors)."""
    if count > len(gpus):
        raise ValueError(f"this job needs {count} GPUs, this machine offers {len(gpus)} ({', '.join(gpus) or 'none'}; "
                         "set --resources gpu=N to at most the number of GPUs, or lower the rule's gpu resource)")
    start, said = time.monotonic(), False
    while True:
        got = try_acquire(gpus, count, folder)
        if got is not None:
            return got
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"no {count} free GPUs among {', '.join(gpus)} after {timeout_s:.0f} s "
                               f"(locks in {folder})")
        if not said:
            say(f"gpu_slots: waiting for {count} free GPU(s) among {', '.join(gpus)} (locks in {folder}); a Snakemake "
                "run limits this with --resources gpu=N")
            said = True
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mgfm.common.gpu_slots", description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, required=True, help="whole GPUs this command needs (0: none)")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds of waiting")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (after --)")
    if args.gpus < 0:
        parser.error("--gpus must be >= 0")
    env = dict(os.environ)
    chosen_by_hand = "CUDA_VISIBLE_DEVICES" in env
    if "SLURM_JOB_ID" not in env:
        gpus = candidate_gpus(env)
        if gpus and args.gpus == 0:
            env["CUDA_VISIBLE_DEVICES"] = ""
        elif gpus:
            try:
                picked, fds = acquire(args.gpus, gpus, lock_dir(env), timeout_s=args.timeout,
                                      say=lambda m: print(m, file=sys.stderr, flush=True))
            except (ValueError, TimeoutError) as err:
                print(f"gpu_slots: {err}", file=sys.stderr)
                return 1
            for fd in fds:
                os.set_inheritable(fd, True)  # held by COMMAND for its whole life
            env["CUDA_VISIBLE_DEVICES"] = ",".join(picked)
            if not chosen_by_hand:
                env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # indices as the driver and nvidia-smi list them
            print(f"gpu_slots: CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}", file=sys.stderr, flush=True)
    try:
        os.execvpe(command[0], command, env)
    except OSError as err:
        print(f"gpu_slots: cannot run {command[0]!r}: {err}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())

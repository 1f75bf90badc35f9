"""Compute settings shared by training and inference: which device a step runs on, TF32 for what stays float32,
and how many CPU threads torch uses.

TF32 runs float32 matrix products on the tensor cores with a 10-bit mantissa (inputs rounded, sums kept in
float32): about 8x the float32 rate on Ampere and Hopper at a relative error near 1e-3 per product, well inside
what training and frozen-feature extraction tolerate. It is switched on only when the work runs on CUDA, so CPU
results (the tests, the demo) stay exact float32.
"""

from __future__ import annotations

import torch


def enable_tf32() -> None:
    """Let float32 matmuls and convolutions use TF32 tensor cores (process-wide; no effect without CUDA)."""
    if not torch.cuda.is_available():
        return
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True


def set_torch_threads(threads: int | None) -> None:
    """torch's intra-op threads for this process: a command's ``--threads``, which the workflow sets to the job's
    threads so parallel jobs do not oversubscribe the cores; 0 or None leaves torch's default (every core)."""
    if not threads:
        return
    if threads < 0:
        raise ValueError(f"--threads {threads}: expected a positive number (or 0 for torch's default)")
    torch.set_num_threads(threads)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` when given, else CUDA when a GPU is visible, else the CPU; TF32 is enabled for a CUDA device."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        enable_tf32()
    return dev

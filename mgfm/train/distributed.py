"""Process-group setup for ``torchrun`` launches and a gather that keeps gradients.

A plain ``mgfm ...`` call runs as one process. Under ``torchrun`` (WORLD_SIZE > 1 in the environment) each
process joins the group: NCCL when it has a GPU, gloo on CPU. Multi-node works the same way (torchrun sets
the rank variables); nothing in the package assumes one node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mgfm.common.accel import enable_tf32


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device
    created_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group when launched by torchrun; pick the device (``device`` overrides: 'cpu'/'cuda')."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = torch.cuda.is_available() if device in (None, "auto") else device.startswith("cuda")
    if want_cuda and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA device is available")
    dev = torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")
    if want_cuda:
        torch.cuda.set_device(dev)
        enable_tf32()  # what autocast leaves in float32 (losses, targets, fp32 runs)
    created = False
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if want_cuda else "gloo")
        created = True
    if world > 1:
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev, created_group=created)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather along ``dim``; backward sums every process's gradient of the gathered tensor and keeps this
    process's slice, so a loss computed on the gathered batch gives the exact full-batch gradient after DDP's mean."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, dim: int) -> torch.Tensor:  # noqa: D102
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.dim, ctx.start, ctx.size = dim, dist.get_rank() * tensor.shape[dim], tensor.shape[dim]
        return torch.cat(parts, dim=dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad.narrow(ctx.dim, ctx.start, ctx.size), None


def gather_with_grad(tensor: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along ``dim`` (identity in a single process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor, dim)


def mean_across(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar logs over processes (identity in a single process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))

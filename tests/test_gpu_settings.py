"""GPU-only settings, checked without a GPU: fused Adam(W) when the parameters live on CUDA, TF32 only where the
work runs on CUDA (CPU results stay exact float32), and the precision a feature table records."""

from __future__ import annotations

import torch

from mgfm.common.accel import enable_tf32, pick_device
from mgfm.train import loop
from mgfm.train.features import matmul_precision


def _cfg(optimizer: str) -> loop.TrainConfig:
    from mgfm.config import resolve

    return loop.TrainConfig.from_section({**resolve("pretrain", {})["train"], "optimizer": optimizer}, seed=0)


class _OnCuda(torch.nn.Module):
    """A model whose parameters say they are on CUDA (is_cuda is what the optimizer choice reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))

    def parameters(self, recurse: bool = True):
        class P(torch.Tensor):
            is_cuda = True

        yield self.w.as_subclass(P)


def test_adam_and_adamw_are_fused_on_cuda_only(monkeypatch):
    seen = {}
    for name in ("Adam", "AdamW"):
        monkeypatch.setattr(torch.optim, name, lambda params, **kw: seen.setdefault(len(seen), kw))
    for opt in ("adam", "adamw"):
        loop._optimizer(_OnCuda(), _cfg(opt))
        loop._optimizer(torch.nn.Linear(2, 2), _cfg(opt))
    assert [kw.get("fused") for kw in seen.values()] == [True, None, True, None]


def test_tf32_stays_off_without_cuda():
    before = torch.get_float32_matmul_precision()
    enable_tf32()
    assert pick_device().type == "cpu"
    assert torch.get_float32_matmul_precision() == before == "highest"
    assert matmul_precision(torch.device("cpu")) == "float32"


def test_cuda_features_record_tf32(monkeypatch):
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    assert matmul_precision(torch.device("cuda")) == "tf32"


def test_threads_of_a_command_set_torchs_and_zero_keeps_the_default():
    """``--threads`` of the train, eval and infer commands (mgfm.common.accel.set_torch_threads)."""
    import pytest

    from mgfm.common.accel import set_torch_threads

    before = torch.get_num_threads()
    try:
        set_torch_threads(1)
        assert torch.get_num_threads() == 1
        torch.set_num_threads(before)
        for keep in (0, None):
            set_torch_threads(keep)
            assert torch.get_num_threads() == before
        with pytest.raises(ValueError, match="--threads -2"):
            set_torch_threads(-2)
    finally:
        torch.set_num_threads(before)

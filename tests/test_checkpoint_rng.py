"""Resuming on another number of GPUs: the checkpoint's RNG state is this process's own device's, and an older
checkpoint holding every visible device's state still restores when fewer GPUs are visible. CUDA is faked (no GPU
here): ``torch.cuda`` reports N devices and records what is restored."""

from __future__ import annotations

import pytest
import torch

from mgfm.train import checkpoint
from mgfm.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


class FakeCuda:
    """``n`` visible GPUs, each with its own RNG state tensor; ``current`` is this process's device."""

    def __init__(self, n: int, current: int = 0) -> None:
        self.states = [torch.full((16,), i, dtype=torch.uint8) for i in range(n)]
        self.current = current
        self.restored: list[torch.Tensor] = []

    def install(self, monkeypatch) -> FakeCuda:
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "is_available", lambda: True)
        monkeypatch.setattr(cuda, "device_count", lambda: len(self.states))
        monkeypatch.setattr(cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(cuda, "get_rng_state", lambda device="cuda": self.states[self.current].clone())

        def get_all():
            return [s.clone() for s in self.states]

        def set_all(states):  # torch's own: one state per visible device, by index
            for i, s in enumerate(states):
                self.states[i] = s  # IndexError with fewer devices than states, as torch raises

        def set_one(state, device="cuda"):
            self.restored.append(state)
            self.states[self.current] = state

        monkeypatch.setattr(cuda, "get_rng_state_all", get_all)
        monkeypatch.setattr(cuda, "set_rng_state_all", set_all)
        monkeypatch.setattr(cuda, "set_rng_state", set_one)
        return self


def test_saved_on_four_gpus_resumed_on_one(monkeypatch, tmp_path):
    four = FakeCuda(4, current=3).install(monkeypatch)
    state = rng_state()
    assert torch.equal(state["cuda"], four.states[3])  # this process's device only
    save_checkpoint(tmp_path, {"epoch": 1, "fingerprint": "f", "rng": state})
    one = FakeCuda(1).install(monkeypatch)
    loaded = load_checkpoint(tmp_path, "f")  # through torch.load(weights_only=True), as a resume reads it
    set_rng_state(loaded["rng"])
    assert len(one.restored) == 1 and torch.equal(one.restored[0], torch.full((16,), 3, dtype=torch.uint8))


def test_saved_on_one_gpu_resumed_on_eight(monkeypatch):
    FakeCuda(1).install(monkeypatch)
    state = rng_state()
    eight = FakeCuda(8, current=5).install(monkeypatch)
    set_rng_state(state)
    assert torch.equal(eight.states[5], torch.zeros(16, dtype=torch.uint8))


@pytest.mark.parametrize("saved, visible, current, expected", [(4, 1, 0, 0), (4, 2, 1, 1), (2, 4, 3, 0)])
def test_old_checkpoints_with_every_devices_state(monkeypatch, saved, visible, current, expected):
    """Checkpoints written before held ``get_rng_state_all()``: restoring them by index raised IndexError with
    fewer GPUs; now the current device's entry is used (the first where the list is shorter)."""
    old = FakeCuda(saved).install(monkeypatch)
    state = {"python": checkpoint.random.getstate(), "torch": torch.get_rng_state(), "cuda": old.states}
    new = FakeCuda(visible, current).install(monkeypatch)
    set_rng_state(state)
    assert torch.equal(new.restored[-1], torch.full((16,), expected, dtype=torch.uint8))


def test_cpu_resume_ignores_a_gpu_state(monkeypatch):
    FakeCuda(2).install(monkeypatch)
    state = rng_state()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    set_rng_state(state)  # no GPU now: the CUDA state is not touched, nothing raises
    torch.manual_seed(0)

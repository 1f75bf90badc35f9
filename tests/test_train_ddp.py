"""DistributedDataParallel: two CPU processes (gloo, launched by torchrun exactly as the rule does) must train
the same weights as one process on the same global batch.

The comparison uses SGD: the loss is blind to a few parameters (biases right before BatchNorm, the
projectors' output biases, attention key biases), whose true gradient is zero; Adam turns the float noise in
those zero gradients into lr-sized steps that differ with the batch split, while SGD leaves them in place.
The parameters that the loss does see agree to 1e-7 under Adam as well (checked when this test was written).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mgfm.train.checkpoint import CHECKPOINT_DIR, LAST

from tests.support.skeleton import write_synthetic_skeleton

PARAMS = {
    "model": {"num_frames": 8, "hidden": 16, "depth": 1, "heads": 1, "drop_path": 0.0,  # DropPath draws per process
              "projector_dims": [32, 32], "instance_projector_dims": [32, 32]},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "checkpoint_every": 1},
}


def _run(args, nproc):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m"] \
        if nproc > 1 else [sys.executable, "-m"]
    res = subprocess.run([*launcher, "mgfm", "pretrain", "skeleton", *args, "--threads", "1", "--device", "cpu"],
                         capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.mark.slow  # three torchrun launches
def test_two_gloo_processes_match_one(tmp_path):
    data = tmp_path / "pretrain"
    write_synthetic_skeleton(data, n=24, frames=12, seed=4)
    common = ["--dataset", str(data), "--stream", "bone", "--params", json.dumps(PARAMS), "--seed", "3"]
    _run([*common, "--out", str(tmp_path / "one")], 1)
    _run([*common, "--out", str(tmp_path / "two")], 2)
    one = torch.load(tmp_path / "one" / CHECKPOINT_DIR / LAST, weights_only=True)
    two = torch.load(tmp_path / "two" / CHECKPOINT_DIR / LAST, weights_only=True)
    assert json.loads((tmp_path / "two" / "card.json").read_text())["world_size"] == 2
    assert one["global_step"] == two["global_step"] == 6
    worst = max((one["model"][k].float() - two["model"][k].float()).abs().max().item() for k in one["model"])
    assert worst < 1e-4, f"largest weight difference {worst}"
    # the runs really moved the weights, so the match is not trivial: compare with a one-epoch run
    _run([*common[:-4], "--params", json.dumps({**PARAMS, "train": {**PARAMS["train"], "epochs": 1}}), "--seed", "3",
          "--out", str(tmp_path / "short")], 1)
    short = torch.load(tmp_path / "short" / CHECKPOINT_DIR / LAST, weights_only=True)["model"]
    moved = max((one["model"][k].float() - short[k].float()).abs().max().item() for k in short)
    print(f"weights moved up to {moved:.3g} in the second epoch; one vs two processes differ by {worst:.3g}")
    assert moved > 100 * worst
    # a rerun of the finished two-process run: both ranks set the finished checkpoint aside and train again
    _run([*common, "--out", str(tmp_path / "two")], 2)
    assert (tmp_path / "two" / CHECKPOINT_DIR / "last.finished.pt").is_file()
    again = torch.load(tmp_path / "two" / CHECKPOINT_DIR / LAST, weights_only=True)
    assert all(torch.equal(again["model"][k], two["model"][k]) for k in two["model"])


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed support")
def test_gather_with_grad_is_identity_in_one_process():
    from mgfm.train.distributed import gather_with_grad

    x = torch.randn(3, 4, requires_grad=True)
    assert gather_with_grad(x) is x

"""The onnx pose backend's GPU paths, checked without a GPU: IO binding (used on the CUDA provider) gives the
session's own results, batched, and a visible GPU without onnxruntime's CUDA provider is said, not silent."""

from __future__ import annotations

import logging

import numpy as np

from mgfm.pose.backends.onnx_backend import OnnxPoseEstimator, PoseModelSpec, make_session
from mgfm.pose.params import DEMO_MODEL


def test_io_binding_matches_the_plain_run():
    session = make_session(DEMO_MODEL, threads=1, device="cpu")
    est = OnnxPoseEstimator(session, PoseModelSpec(input_size=(128, 96)))
    assert est.io_binding is False  # the CPU provider: plain runs
    x = np.random.default_rng(0).normal(size=(5, 3, 96, 128)).astype(np.float32)
    plain = est.run(x)
    est.io_binding = True            # what the CUDA provider gets; IO binding works on the CPU provider too
    bound = est.run(x)
    est.max_batch = 2                # a fixed-batch export: several bound runs, concatenated
    split = est.run(x)
    for a, b, c in zip(plain, bound, split):
        assert a.shape == b.shape == c.shape and np.allclose(a, b, atol=1e-6) and np.allclose(a, c, atol=1e-5)


def test_a_visible_gpu_without_the_cuda_provider_is_said(monkeypatch, caplog):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with caplog.at_level(logging.WARNING):
        make_session(DEMO_MODEL, threads=1, device="auto")
    assert "a GPU is visible but this onnxruntime has no CUDAExecutionProvider" in caplog.text
    assert "pose.device" in caplog.text and "envs/pose-gpu.yaml" in caplog.text
    caplog.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU for this job: nothing to say
    with caplog.at_level(logging.WARNING):
        make_session(DEMO_MODEL, threads=1, device="auto")
    assert "GPU is visible" not in caplog.text

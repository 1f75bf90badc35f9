"""mmpose backend vs onnx backend on the same weights: keypoints within a pixel.

Runs only in the mmpose environment (envs/mmpose-requirements.txt: mmpose 1.3.2, mmcv-lite 2.1.0, mmengine,
numpy<2; `bash scripts/mmpose/ci.sh` builds it and runs this test, as CI does). It builds the paper's pinned
RTMW-x whole-body config with random weights, runs the mmpose backend (mmpose's own test pipeline + test_step) on demo-like frames, exports the same backbone (+ neck) +
SimCC head to ONNX (normalisation stays outside, as in RTMPose's deploy exports), runs our onnx backend, and
compares. Flip test is switched off on the mmpose side because the onnx backend (like rtmlib and mmdeploy's
SDK default) runs a single forward pass.
"""

from pathlib import Path

import numpy as np
import yaml

from tests.support.mmpose_env import requires_mmpose

ROOT = Path(__file__).resolve().parents[1]

pytestmark = requires_mmpose


def _paper_pose_config() -> str:
    from mgfm.pose.presets import PRESETS

    preset = yaml.safe_load((ROOT / "workflow" / "configs" / "paper.yaml").read_text())["pose"]["preset"]
    return PRESETS[preset]["config"]


def test_mmpose_and_onnx_backends_agree(tmp_path):
    import torch

    from mgfm.pose.backends.mmpose_backend import MmposeEstimator, build_mmpose_model, resolve_config
    from mgfm.pose.backends.onnx_backend import OnnxPoseEstimator, PoseModelSpec, make_session

    torch.manual_seed(0)
    config = resolve_config(_paper_pose_config())
    model = build_mmpose_model(config, None, "cpu")  # random weights from the pinned config
    model.test_cfg["flip_test"] = False  # passed to head.predict ...
    model.head.test_cfg["flip_test"] = False  # ... and the head's own copy
    model.eval()
    w, h = model.cfg.codec["input_size"]

    class Net(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):  # backbone (+ neck) + SimCC head, as mmdeploy's RTMPose export
            return self.m.head(self.m.extract_feat(x))

    onnx_path = tmp_path / "rtmw_random.onnx"
    # eval(): the exporter restores the wrapper's mode afterwards, and a fresh Module starts in training mode
    torch.onnx.export(Net(model).eval(), (torch.zeros(1, 3, h, w),), str(onnx_path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["simcc_x", "simcc_y"],
                      dynamic_axes={"input": {0: "batch"}})
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 240, 320, 3), dtype=np.uint8)
    frames[:, 60:200, 110:210] = rng.integers(0, 255, 3, dtype=np.uint8)  # a "person" block
    boxes = np.array([[100, 40, 220, 230], [0, 0, 320, 240], [50, 20, 300, 220], [120, 60, 200, 200]], np.float32)

    mm_xy, mm_score = MmposeEstimator(model).estimate(frames, boxes)
    spec = PoseModelSpec(input_size=(int(w), int(h)),
                         split_ratio=float(model.cfg.codec["simcc_split_ratio"]))
    ox_xy, ox_score = OnnxPoseEstimator(make_session(onnx_path, 2, "cpu"), spec).estimate(frames, boxes)
    err = np.linalg.norm(mm_xy - ox_xy, axis=-1)
    print(f"mmpose vs onnx: {np.mean(err < 1.0):.4f} of keypoints within 1px, median {np.median(err):.2e}px, "
          f"max score diff {np.abs(mm_score - ox_score).max():.2e}")
    assert np.mean(err < 1.0) > 0.99, f"max err {err.max():.2f}px"
    np.testing.assert_allclose(mm_score, ox_score, atol=1e-3)

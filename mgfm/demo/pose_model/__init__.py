"""The demo's small whole-body pose model: RTMPose's form (crop in, SimCC x/y per keypoint out), trained on
frames of the demo renderer. See ``net`` (architecture), ``train`` (training + ONNX export), ``evaluate``."""

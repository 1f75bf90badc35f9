"""Pose backends: each turns (frames, person boxes) into whole-body keypoints with the same conventions.

``onnx`` (ONNX Runtime, our mmpose-equivalent pre/post-processing) and ``mmpose`` (the paper's setup, imported
only when selected so mgfm works without mmpose installed).
"""

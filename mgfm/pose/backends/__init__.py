"""Pose backends: each turns (frames, person boxes) into whole-body keypoints with the same conventions.

``base`` is the interface every backend returns (``PoseBackend``) and the model-file checks they share;
``registry`` maps config key ``pose.backend`` to a loader: ``onnx`` (ONNX Runtime, our mmpose-equivalent
pre/post-processing, ``onnx_backend``) and ``mmpose`` (the paper's setup, ``mmpose_backend``, imported only
when selected so mgfm works without mmpose installed). No backend imports the extraction loop.
"""

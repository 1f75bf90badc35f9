"""Whole-body pose: keypoint layout, RTMPose-style inference backends, the per-video Parquet store."""

"""Inference on new videos: micro-gesture spotting in untrimmed video, its evaluation, per-video reports."""

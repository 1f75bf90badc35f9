"""Leaf package read by every stage: on-disk stores, the keypoint layout and shared constants."""

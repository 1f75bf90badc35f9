"""What every stage reads: the keypoint layout, the on-disk stores (pose Parquet, packed clips, features) and
the constants that rules and package share.

A leaf of the package graph: it imports only ``mgfm.common``, so a stage that reads an earlier stage's
artifact imports this package, never the stage that wrote it.
"""

"""The embedded demo: a synthetic, iMiGUE-like corpus rendered from whole-body skeletons.

Modules, in pipeline order: ``plan`` (video ids, subjects, subsets, splits, outcomes, lengths: a pure
function of the config), ``taxonomy`` (classes, frequencies, outcome effect), ``subject`` (people, framing,
venues), ``events`` (cut-ins and gesture instances per video), ``motion`` (idle behaviour and one motion
primitive per class), ``skeleton`` (forward kinematics to COCO-WholeBody 133 keypoints), ``render`` (OpenCV
drawing; ``render_training_samples`` for pose-model training), ``encode`` (ffmpeg pipe), ``corpus`` (writes
the tables, raw videos and ground truth), ``cli`` (``mgfm demo generate``).
"""

"""COCO-WholeBody 133-keypoint layout, the upper-body subset the skeleton models read, its bones and streams.

Every stage that needs keypoint indices imports them from here (demo renderer, pose backends, clip
sampler, skeleton datasets, models), so the layout is defined exactly once.

Layout: 0 nose, 1 left eye, 2 right eye, 3 left ear, 4 right ear, 5-16 rest of the COCO body
(shoulders, elbows, wrists, hips, knees, ankles), 17-22 feet, 23-90 face (68 iBUG landmarks),
91-111 left hand, 112-132 right hand (21 each: wrist, then 4 per finger from thumb to little finger).
"""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 133
LAYOUT_NAME = "coco-wholebody-133"

BODY = slice(0, 17)
FEET = slice(17, 23)
FACE = slice(23, 91)
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)

BODY_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR = 0, 1, 2, 3, 4
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 5, 6, 7, 8, 9, 10
LEFT_HIP, RIGHT_HIP = 11, 12

#: The five face anchors of the clip sampler (paper Eq. 9): nose, both eyes, both ears.
FACE_ANCHORS: tuple[int, ...] = (NOSE, LEFT_EYE, RIGHT_EYE, LEFT_EAR, RIGHT_EAR)

#: Selected face landmarks (iBUG-68 numbering inside the face block): jaw ends and chin (0, 8, 16) frame the
#: head for touch-face / cover-face gestures, mid brows (19, 24) and nose tip (30) carry nods and head shakes,
#: mouth corners and lips (48, 51, 54, 57) show hand-to-mouth contact. Ten points keep the face from
#: dominating the 42 hand joints while covering every face-related MG class.
FACE_LANDMARKS_68: tuple[int, ...] = (0, 8, 16, 19, 24, 30, 48, 51, 54, 57)

#: Upper-body-centric joint subset (indices into the 133 keypoints): body above the hips (0-10; hips and legs
#: are mostly hidden behind the press-conference table), the selected face landmarks, both hands.
UPPER_BODY: tuple[int, ...] = (
    tuple(range(0, 11))
    + tuple(FACE.start + i for i in FACE_LANDMARKS_68)
    + tuple(range(LEFT_HAND.start, LEFT_HAND.stop))
    + tuple(range(RIGHT_HAND.start, RIGHT_HAND.stop))
)
NUM_JOINTS = len(UPPER_BODY)  # 63

_HAND_PARENT = (0, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
_BODY_PARENT = {0: 0, 1: 0, 2: 0, 3: 1, 4: 2, 5: 0, 6: 0, 7: 5, 8: 6, 9: 7, 10: 8}


def _parents_133() -> dict[int, int]:
    parents = dict(_BODY_PARENT)
    for i in FACE_LANDMARKS_68:
        parents[FACE.start + i] = NOSE
    for hand, wrist in ((LEFT_HAND, LEFT_WRIST), (RIGHT_HAND, RIGHT_WRIST)):
        for j, p in enumerate(_HAND_PARENT):
            parents[hand.start + j] = wrist if j == 0 else hand.start + p
    return parents


_POS = {k: i for i, k in enumerate(UPPER_BODY)}
#: Parent of each subset joint, as a subset index; the root (nose) is its own parent so its bone is zero.
PARENTS: tuple[int, ...] = tuple(_POS[_parents_133()[k]] for k in UPPER_BODY)
#: (child, parent) pairs in subset indices, the bone stream's definition.
BONES: tuple[tuple[int, int], ...] = tuple((c, p) for c, p in enumerate(PARENTS) if c != p)
#: Subset indices of the two shoulders (the normalisation reference) and of the face anchors.
SUBSET_SHOULDERS = (_POS[LEFT_SHOULDER], _POS[RIGHT_SHOULDER])
SUBSET_FACE_ANCHORS = tuple(_POS[k] for k in FACE_ANCHORS)

STREAMS = ("joint", "bone", "motion")


def _minimum(a, b):
    """Element-wise minimum for numpy arrays and torch tensors alike."""
    if isinstance(a, np.ndarray):
        return np.minimum(a, b)
    import torch

    return torch.minimum(a, b)


def to_stream(x, stream: str):
    """Turn a joint clip into the named input stream.

    ``x`` is a numpy array or torch tensor shaped (..., C, T, V) with channels (x, y, score) and V the
    upper-body subset. Bone: coordinates minus the parent's (score: the smaller of the two). Motion: the
    frame difference x[t+1] - x[t] (last frame zero; score: the smaller of the two frames). Joint: unchanged.
    """
    if stream == "joint":
        return x
    if stream == "bone":
        parents = list(PARENTS)
        par = x[..., parents]
        out = x - par
        if x.shape[-3] >= 3:
            out[..., 2:, :, :] = _minimum(x[..., 2:, :, :], par[..., 2:, :, :])
        return out
    if stream == "motion":
        out = x * 0
        out[..., :, :-1, :] = x[..., :, 1:, :] - x[..., :, :-1, :]
        if x.shape[-3] >= 3:
            a, b = x[..., 2:, 1:, :], x[..., 2:, :-1, :]
            out[..., 2:, :-1, :] = _minimum(a, b)
        return out
    raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")

"""The paper's numbers (iMiGUE-3K, Tables VI-XIII), in one place, as printed (percent; Table XIII a fraction).

Each row says whose number it is: ``ours`` rows are reproduced by this repository (``modality`` and
``member`` say which of our results fills them: a stream, the stream fusion, or the ensemble), ``cited``
rows are other methods' numbers that the paper quotes and that we do not reproduce.
Source: /work/shared/paper/imigue3k-paper.txt (sections 5-9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CITED = "cited, not reproduced"
NOT_BUILT = "not built (no RGB branch yet)"


@dataclass(frozen=True)
class PaperRow:
    method: str                                 # exactly as the paper prints it
    values: dict[str, float | None]            # metric -> the paper's number (None: the paper prints "-")
    kind: str = "ours"                          # ours | cited
    modality: str | None = None                 # ours: skeleton | rgb | multimodal
    member: str | None = None                   # ours: a stream, "3-stream", or "ensemble"
    section: str | None = None                  # group heading the paper prints above the row, as printed
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PaperTable:
    number: str
    title: str
    metrics: tuple[str, ...]
    rows: tuple[PaperRow, ...]


#: Table VI (at tau ``TABLE_VI_TAU``): sampling quota -> (generated samples, MG-IoD precision %).
TABLE_VI_TAU = 0.3
TABLE_VI_IOD_QUOTA = {50: (4374, 39.39), 80: (6159, 40.57), 100: (6919, 40.16)}
#: Table VII (at quota ``TABLE_VII_QUOTA``): confidence threshold tau -> (generated samples, MG-IoD precision %).
TABLE_VII_QUOTA = 80
TABLE_VII_IOD_TAU = {0.1: (6726, 39.47), 0.3: (6159, 40.57), 0.5: (5708, 39.87), 0.75: (4324, 40.24)}


def _tk(top1, top5):
    return {"top1": top1, "top5": top5}


TABLE_VIII = PaperTable("VIII", "Linear probing (frozen encoder), test set", ("top1", "top5"), (
    PaperRow("P&C [su2020predict]", _tk(31.67, 64.93), "cited"),
    PaperRow("U-S-VAE Z [liu2021imigue]", _tk(32.43, 64.30), "cited"),
    PaperRow("MG-FM-RGB (RGB)", _tk(43.59, 80.48), modality="rgb", member="rgb", section="Ours"),
    PaperRow("MG-FM-Skele (joint)", _tk(53.65, 83.76), modality="skeleton", member="joint", section="Ours"),
    PaperRow("MG-FM-Skele (bone)", _tk(52.34, 83.99), modality="skeleton", member="bone", section="Ours"),
    PaperRow("MG-FM-Skele (motion)", _tk(51.94, 83.39), modality="skeleton", member="motion", section="Ours"),
    PaperRow("MG-FM-Skele (3-stream)", _tk(57.61, 86.97), modality="skeleton", member="3-stream", section="Ours"),
))

TABLE_IX = PaperTable("IX", "Semi-supervised recognition: fine-tuning on 10% of the labeled training instances",
                      ("top1", "top5"), (
    PaperRow("MG-FM-Skele (joint)", _tk(44.73, 81.16), modality="skeleton", member="joint"),
    PaperRow("MG-FM-Skele (bone)", _tk(44.19, 79.67), modality="skeleton", member="bone"),
    PaperRow("MG-FM-Skele (motion)", _tk(46.89, 77.14), modality="skeleton", member="motion"),
    PaperRow("MG-FM-RGB", _tk(60.16, 89.97), modality="rgb", member="rgb"),
))

TABLE_X = PaperTable("X", "Supervised recognition: fine-tuning on all labeled training instances", ("top1", "top5"), (
    PaperRow("Temporal Relational + RGB (TRN) [trn]", _tk(55.24, None), "cited", section="RGB-based Methods"),
    PaperRow("Temporal Shift + RGB (TSM) [tsm]", _tk(58.77, None), "cited", section="RGB-based Methods"),
    PaperRow("CLIP-MG [clip-mg]", _tk(61.82, None), "cited", section="RGB-based Methods"),
    PaperRow("MMGesture (RGB-only) [mmgesture]", _tk(66.62, None), "cited", section="RGB-based Methods"),
    PaperRow("MG-FM-RGB (Ours)", _tk(69.42, 93.08), modality="rgb", member="rgb", section="RGB-based Methods"),
    PaperRow("BlockGCN (joint) [blockgcn]", _tk(51.94, 82.96), "cited", section="Skeleton-based Method"),
    PaperRow("BlockGCN (bone)", _tk(52.09, 82.74), "cited", section="Skeleton-based Method"),
    PaperRow("BlockGCN (motion)", _tk(52.18, 81.81), "cited", section="Skeleton-based Method"),
    PaperRow("BlockGCN (4-stream)", _tk(57.85, 86.51), "cited", section="Skeleton-based Method"),
    PaperRow("PoseC3D (joint) [posec3d]", _tk(56.13, 85.40), "cited", section="Skeleton-based Method"),
    PaperRow("MG-FM-Skele (joint) (Ours)", _tk(53.16, 85.45), modality="skeleton", member="joint",
             section="Skeleton-based Method"),
    PaperRow("MG-FM-Skele (bone) (Ours)", _tk(52.73, 85.14), modality="skeleton", member="bone",
             section="Skeleton-based Method"),
    PaperRow("MG-FM-Skele (motion) (Ours)", _tk(51.62, 82.76), modality="skeleton", member="motion",
             section="Skeleton-based Method"),
    PaperRow("MG-FM-Skele (3-stream) (Ours)", _tk(57.52, 86.78), modality="skeleton", member="3-stream",
             section="Skeleton-based Method"),
))

TABLE_XI = PaperTable("XI", "Ensembles of fine-tuned models (weighted score fusion, Eq. 20)", ("top1", "top5"), (
    PaperRow("CLIP + 3DCNN [wang2024multimodal]", _tk(68.90, 92.43), "cited"),
    PaperRow("Res2Net3D [huang2024multi]", _tk(70.19, 93.69), "cited"),
    PaperRow("Prototype Learning [chen2024prototype]", _tk(70.25, None), "cited"),
    PaperRow("MM-Gesture [mmgesture]", _tk(71.42, None), "cited"),
    PaperRow("MG-FM (Ours)", _tk(71.60, 95.07), modality="multimodal", member="ensemble"),
))

TABLE_XII = PaperTable("XII", "Training-free retrieval (gallery: training instances, queries: test instances)",
                       ("top1", "top5"), (
    PaperRow("MG-FM-RGB", _tk(22.56, 53.06), modality="rgb", member="rgb"),
    PaperRow("MG-FM-Skele (joint)", _tk(37.12, 67.04), modality="skeleton", member="joint"),
    PaperRow("MG-FM-Skele (bone)", _tk(38.46, 66.88), modality="skeleton", member="bone"),
    PaperRow("MG-FM-Skele (motion)", _tk(40.06, 66.86), modality="skeleton", member="motion"),
))

TABLE_XIII = PaperTable("XIII", "MG-based emotion recognition (win / lose per video)", ("accuracy",), (
    PaperRow("Method 1 (ISPCAST) [Shahane]", {"accuracy": 0.63}, "cited", extra={"model": "Transformer+RGB+Face"}),
    PaperRow("Method 2 (Haozhebu) [Haozhebu]", {"accuracy": 0.63}, "cited", extra={"model": "CNN+RGB+Face"}),
    PaperRow("Ours", {"accuracy": 0.64}, modality="multimodal", member="emotion",
             extra={"model": "Transformer+RGB+Skel"}),
))

TABLES = {t.number: t for t in (TABLE_VIII, TABLE_IX, TABLE_X, TABLE_XI, TABLE_XII, TABLE_XIII)}

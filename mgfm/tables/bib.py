"""``references.bib`` beside the LaTeX tables: one entry for every citation key the paper's tables print.

The keys are the paper's own (``mgfm.tables.paper``); ``tests/test_tables.py`` checks that every key a table
cites has an entry here. Entries give what identifies the work; where the paper's text names a work only by
its key and method name, the entry says so in its note instead of inventing details.
"""

from __future__ import annotations

import os
from pathlib import Path

from mgfm.common.atomic import atomic_path

BIB_NAME = "references.bib"

REFERENCES: dict[str, dict[str, str]] = {
    "su2020predict": {"type": "inproceedings", "title": "{PREDICT} \\& {CLUSTER}: Unsupervised Skeleton Based "
                      "Action Recognition", "author": "Su, Kun and Liu, Xiulong and Shlizerman, Eli",
                      "booktitle": "CVPR", "year": "2020"},
    "liu2021imigue": {"type": "inproceedings", "title": "{iMiGUE}: An Identity-free Video Dataset for "
                      "Micro-Gesture Understanding and Emotion Analysis",
                      "author": "Liu, Xin and Shi, Henglin and Chen, Haoyu and Yu, Zitong and Li, Xiaobai and "
                      "Zhao, Guoying", "booktitle": "CVPR", "year": "2021"},
    "trn": {"type": "inproceedings", "title": "Temporal Relational Reasoning in Videos",
            "author": "Zhou, Bolei and Andonian, Alex and Oliva, Aude and Torralba, Antonio",
            "booktitle": "ECCV", "year": "2018"},
    "tsm": {"type": "inproceedings", "title": "{TSM}: Temporal Shift Module for Efficient Video Understanding",
            "author": "Lin, Ji and Gan, Chuang and Han, Song", "booktitle": "ICCV", "year": "2019"},
    "posec3d": {"type": "inproceedings", "title": "Revisiting Skeleton-based Action Recognition",
                "author": "Duan, Haodong and Zhao, Yue and Chen, Kai and Lin, Dahua and Dai, Bo",
                "booktitle": "CVPR", "year": "2022"},
    "blockgcn": {"type": "inproceedings", "title": "{BlockGCN}: Redefine Topology Awareness for Skeleton-Based "
                 "Action Recognition", "booktitle": "CVPR", "year": "2024"},
    "clip-mg": {"type": "misc", "title": "{CLIP-MG}", "note": "Cited by the iMiGUE-3K paper (Table X) as [clip-mg]"},
    "mmgesture": {"type": "misc", "title": "{MM-Gesture}", "note": "Cited by the iMiGUE-3K paper (Tables X, XI) as "
                  "[mmgesture]"},
    "wang2024multimodal": {"type": "misc", "title": "{CLIP} + {3DCNN} ensemble", "year": "2024",
                           "note": "Cited by the iMiGUE-3K paper (Table XI) as [wang2024multimodal]"},
    "huang2024multi": {"type": "misc", "title": "{Res2Net3D} ensemble", "year": "2024",
                       "note": "Cited by the iMiGUE-3K paper (Table XI) as [huang2024multi]"},
    "chen2024prototype": {"type": "misc", "title": "Prototype Learning for micro-gesture classification",
                          "year": "2024", "note": "Cited by the iMiGUE-3K paper (Table XI) as [chen2024prototype]"},
    "Shahane": {"type": "misc", "title": "{ISPCAST}: 3rd {MiGA} challenge entry (emotion track)",
                "note": "Cited by the iMiGUE-3K paper (Table XIII) as [Shahane]"},
    "Haozhebu": {"type": "misc", "title": "Haozhebu: 3rd {MiGA} challenge entry (emotion track)",
                 "note": "Cited by the iMiGUE-3K paper (Table XIII) as [Haozhebu]"},
}


def to_bibtex(refs: dict[str, dict[str, str]] = REFERENCES) -> str:
    out = []
    for key, fields in refs.items():
        body = ",\n".join(f"  {k} = {{{v}}}" for k, v in fields.items() if k != "type")
        out.append(f"@{fields['type']}{{{key},\n{body}\n}}")
    return "\n\n".join(out) + "\n"


def write_bib(out_dir: str | os.PathLike) -> Path:
    """Write ``<out_dir>/references.bib`` (atomically) and return its path."""
    path = Path(out_dir) / BIB_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(to_bibtex())
    return path

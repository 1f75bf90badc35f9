"""Names and numbers that the workflow's rules and the package both need, defined once and imported by both.

A leaf module: it imports no other mgfm module, so the Snakefile and every stage can read it cheaply. What a
user may change lives in the config schemas (mgfm/config/schemas); these are the results layout's and the
dataset contract's fixed points.
"""

from __future__ import annotations

import re

#: Frame rate of the normalised videos and of the dataset contract's annotation frame numbers (iMiGUE-3K: 25);
#: the default of config key download.fps.
FPS = 25

#: A video id of the dataset contract: a file-name-safe token (also the id wildcard of the per-video rules).
VIDEO_ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
VIDEO_ID_PATTERN = re.compile(rf"^{VIDEO_ID_REGEX}$")

#: The packed clip datasets (results/packs/<modality>/<name>); the sampled ones read the clip table, the
#: others the annotated MG instances of the labeled train / test videos.
PACK_NAMES = ("pretrain", "mg_train", "mg_test", "video_clips")
SAMPLED_DATASETS = ("pretrain", "video_clips")

#: Table file stems under results/tables/ (each written as .md, .csv and .tex), by the paper's table number.
TABLE_FORMATS = ("md", "csv", "tex")
IOD_TABLES = {"VI": "table6_iod_quota", "VII": "table7_iod_tau"}
EVAL_TABLES = {"VIII": "table8_linear_probe", "IX": "table9_semi_supervised", "X": "table10_finetune",
               "XI": "table11_ensemble", "XII": "table12_retrieval", "XIII": "table13_emotion"}
#: The spotting protocol's tables (infer stage), beside the paper's; the report shows them after Tables VI-XIII.
SPOTTING_TABLES = ("table_spotting", "table_spotting_per_class")

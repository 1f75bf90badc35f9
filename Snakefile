# mgfm: the iMiGUE-3K micro-gesture benchmark, end to end.
# Default target: every table of the paper plus the report. See README.md for the stages and results layout.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"


rule all:
    input:
        all_targets,
    default_target: True


include: "workflow/rules/demo.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/pose.smk"
include: "workflow/rules/clips.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/rgb.smk"
include: "workflow/rules/eval.smk"

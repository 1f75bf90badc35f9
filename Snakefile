# mgfm: the iMiGUE-3K micro-gesture benchmark, end to end.
# Default target: every table of the paper plus the report. See README.md for the stages and results layout.

import os

from snakemake.utils import min_version

min_version("9.0")


# No configfile directive: common.smk builds the run's config with mgfm.config.run.run_config, from the schema
# defaults (mgfm/config/schemas/), then each --configfile in order (the repository's config.yaml, the demo,
# only when none is given, wherever --directory points), then --config. `mgfm config show` prints the same.
DEMO_CONFIG = os.path.join(workflow.basedir, "config.yaml")


include: "workflow/rules/common.smk"


rule all:
    input:
        all_targets,
    default_target: True


include: "workflow/rules/ingest.smk"
include: "workflow/rules/pose.smk"
include: "workflow/rules/clips.smk"
include: "workflow/rules/packs.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/rgb.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/infer.smk"


onsuccess:
    # the last lines of a successful run: where the report is and the headline numbers (logs/ holds the rest).
    # Logged, not printed: the console of the default profile (logger plugin mgfm) writes from its own thread,
    # so only going through the logger keeps these lines after the run's last progress line (and puts them in
    # .snakemake/log/ too)
    from snakemake.logging import logger
    from mgfm.tables.console import success_lines

    for line in success_lines(RESULTS, EVAL_MODALITIES, EVAL_STREAMS, DATASET_LABEL, DATA_PLAN.skipped):
        logger.info(line)

# Shared helpers of the rules: config validation (defaults filled from the schemas), each step's config slice,
# dataset tables, video id lists, stage targets. No rules here. Names and numbers that the package also needs
# (dataset names, table names, the video id regex) come from mgfm.core.constants.

import hashlib
import json
from pathlib import Path

from snakemake.exceptions import WorkflowError

from mgfm.config import ConfigError, resolve_config
from mgfm.config.steps import step_params
from mgfm.core.constants import (DATASET_NAMES, EVAL_TABLES, IOD_TABLES, SAMPLED_DATASETS, SPOTTING_TABLES,
                                 TABLE_FORMATS, VIDEO_ID_REGEX)


def _resolve_config(cfg):
    """Validate every section against the package's schemas and fill in all defaults, in place."""
    try:
        resolved = resolve_config(cfg)
    except ConfigError as err:
        raise WorkflowError(str(err)) from None
    cfg.clear()
    cfg.update(resolved)


_resolve_config(config)

# every artifact goes under the configured results folder (config key `results`, default "results")
RESULTS = config["results"].rstrip("/")
LOGS = "logs"
BENCH = f"{RESULTS}/benchmarks"

# Stage targets: each rules file adds what the default target needs from it (rule all reads this lazily).
TARGETS = {}


def all_targets(wildcards):
    return [t for stage in TARGETS.values() for t in stage]


def torch_launcher(wildcards, resources):
    """How a training job starts: a plain process, torchrun on one node, or srun + torchrun across nodes."""
    gpus, nodes = int(resources.gpu), int(resources.nodes)
    # across nodes, GPUs are requested per node (gres) and torchrun starts one process per GPU it sees
    if nodes > 1:
        return (
            "srun --ntasks-per-node=1 --kill-on-bad-exit=1 torchrun --nnodes=$SLURM_NNODES"
            " --nproc-per-node=gpu --rdzv-backend=c10d --rdzv-id=$SLURM_JOB_ID"
            " --rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500 -m mgfm"
        )
    if gpus > 1:
        return f"torchrun --standalone --nproc-per-node {gpus} -m mgfm"
    return "mgfm"


def params_json(step):
    """The config keys a step reads (mgfm.config.steps), as JSON for its --params flag: a change of a key
    reruns exactly the steps that read it (and what follows them), never a sibling or anything upstream."""
    return json.dumps(step_params(step, config), sort_keys=True)


# ---- dataset tables and video ids ---------------------------------------------------------------------
# The demo's video ids are a pure function of its config (mgfm.data.demo.plan.demo_video_ids), so the DAG is
# known before the corpus is rendered; a real dataset's ids come from its manifest, validated here first.
DATASET = config["dataset"]
if DATASET["source"] == "demo":
    from mgfm.data.demo.plan import demo_video_ids

    DEMO_DIR = f"{RESULTS}/demo"
    TABLES = {
        "manifest": f"{DEMO_DIR}/manifest.csv",
        "annotations": f"{DEMO_DIR}/annotations.csv",
        "taxonomy": f"{DEMO_DIR}/taxonomy.csv",
    }
    VIDEO_IDS = demo_video_ids(DATASET["demo"])
else:
    from mgfm.data.contract import DatasetError, load_manifest

    TABLES = {}
    for key in ("manifest", "annotations", "taxonomy"):
        value = DATASET[key]
        if not value:
            raise WorkflowError(f"config key dataset.{key} is required when dataset.source is 'files'")
        if not Path(value).is_file():
            raise WorkflowError(f"config key dataset.{key}: file not found: {value}")
        TABLES[key] = value
    try:
        VIDEO_IDS = load_manifest(TABLES["manifest"])["video_id"].tolist()
    except DatasetError as err:
        raise WorkflowError(f"config key dataset.manifest: {err}") from None

# Per-video download records (mgfm.data.records): what a video's download job reads instead of the whole
# manifest, so an edited row reruns only that video's chain, and labels or splits rerun no download or pose.
# A real dataset's records are written here, while the workflow is parsed, and only when their content changed
# (a job would rewrite all of them and rerun everything after); the demo's come from a rule (download.smk),
# since its manifest is itself an output.
VIDEO_RECORDS = f"{RESULTS}/dataset/videos"
if DATASET["source"] == "files":
    from mgfm.data.records import write_video_records

    try:
        write_video_records(TABLES["manifest"], VIDEO_RECORDS, config["download"], backdate_new=True)
    except (OSError, ValueError) as err:
        raise WorkflowError(f"config key dataset.manifest: {err}") from None

# What every table caption and the report's title name as the data: the demo and its seed, or the manifest and
# its sha256 (so a changed manifest re-renders them). The config digest names the whole resolved config in the
# report (which therefore is rebuilt, in seconds, after any config change; no other job reads it).
from mgfm.tables.summary import dataset_label

DATASET_LABEL = dataset_label(DATASET["source"], TABLES["manifest"], DATASET["demo"]["seed"])
CONFIG_DIGEST = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def finetune_init(wildcards):
    """The SMILE / VideoMAE checkpoint that RGB fine-tuning starts from (eval.finetune.rgb.init, pinned by sha256 in
    the params), as an input of the jobs that read it: none for skeleton streams or the from-scratch baseline."""
    path = config["eval"]["finetune"]["rgb"]["init"]["checkpoint"]
    used = wildcards.modality == "rgb" and getattr(wildcards, "ft_protocol", "finetune") != "scratch"
    return [path] if path and used else []

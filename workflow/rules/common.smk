# Shared helpers of the rules: config validation (defaults filled from the schemas), each step's config slice,
# dataset tables, video id lists, stage targets. No rules here. Names and numbers that the package also needs
# (dataset names, table names, the video id regex) come from mgfm.core.constants.

import hashlib
import json
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError

from mgfm.common.gpu_slots import candidate_gpus
from mgfm.config import ConfigError
from mgfm.config.run import run_config
from mgfm.config.steps import step_params
from mgfm.core.constants import (PACK_NAMES, EVAL_TABLES, IOD_TABLES, SAMPLED_DATASETS, SPOTTING_TABLES,
                                 TABLE_FORMATS, VIDEO_ID_REGEX)


def _run_config(cfg):
    """The run's config, in place of Snakemake's own merge: schema defaults, then the --configfile files in order
    (the demo config.yaml only when none is given), then --config; validated, every default filled in."""
    settings = workflow.config_settings
    try:
        resolved = run_config(settings.configfiles, settings.config, DEMO_CONFIG)
    except ConfigError as err:
        raise WorkflowError(str(err)) from None
    cfg.clear()
    cfg.update(resolved)


_run_config(config)

# every artifact goes under the configured results folder (config key `results`, default "results")
RESULTS = config["results"].rstrip("/")
# every path under it comes from one place (mgfm.core.results): RES.pose("{video_id}") and so on
from mgfm.core.results import RGB_STAGE1, RGB_STREAM, Results

RES = Results(RESULTS)
# a results folder of the previous layout is moved by the user first, never silently recomputed
from mgfm.core.results import migration_message

if (_migrate := migration_message(RESULTS)) is not None:
    raise WorkflowError(_migrate)
LOGS = "logs"
BENCH = RES.benchmarks_dir
# The pretraining chains (pack the clips, pretrain each encoder, extract its features) are the DAG's longest: their
# jobs go first whenever they are ready, and the evaluation jobs fill the other cores around them, instead of the
# RGB chain starting only once the skeleton evaluations are done (same outputs, a shorter wall time).
PRETRAIN_CHAIN_PRIORITY = 10

# a folder that cannot be written makes Snakemake fail in its own code when it removes an old output: said here
from mgfm.common.disk import unwritable_message

if (_unwritable := unwritable_message([RESULTS, LOGS])) is not None:
    raise WorkflowError(_unwritable)

# Stage targets: each rules file adds what the default target needs from it (rule all reads this lazily).
TARGETS = {}


# A dry run (-n) must leave every file as it was, and a job's own parse of the workflow (cluster jobs parse it
# again) must not race the main process: parse-time writes happen only in the main process of a real run.
# (Snakemake 9 sets workflow.dryrun only after parsing; the output settings say it already.)
DRY_RUN = bool(workflow.output_settings.dryrun)
WRITE_AT_PARSE = workflow.is_main_process and not DRY_RUN


# ---- content records of large artifacts (mgfm.common.content) -------------------------------------------
# A step that reads a large artifact (video, pose file, clip table, packed dataset, encoder, features) declares
# it ancient() (its mtime never reruns anything) plus its content record (record_input), which the job making
# the artifact writes and which changes only with the content: a rewrite with the same bytes reruns nothing, at
# any size. refresh_content, called by each rules file for the artifacts it makes, brings the records up to date
# while the workflow is parsed (mgfm.common.content.refresh_record):
# - same content under a new mtime or size: the record's stat is updated and its time kept (nothing reruns);
# - other content (changed outside the workflow), or no record at all: the record is written as new, so every
#   reader reruns.
# A dry run writes none of that. So that it still plans what the real run will, a reader of an artifact whose
# record the real run would write as new reads the artifact itself in its record's place: a set of input files
# Snakemake has not seen for that job, so it reruns as it will for the new record.
from mgfm.common.content import record_path as _record_path, refresh_records as _refresh_records

#: dry runs only: record -> its artifact, for the records a real run would write as new
_READ_IN_PLACE_OF_RECORD = {}


def record_of(artifacts):
    """The content record(s) of one artifact path or a list of them (patterns with wildcards too)."""
    if isinstance(artifacts, (list, tuple)):
        return [_record_path(a, RESULTS) for a in artifacts]
    return _record_path(artifacts, RESULTS)


def record_input(artifacts):
    """An input function: the content records of ``artifacts`` (a pattern, a list of them, or a function of the
    wildcards giving concrete paths), with a dry run's stand-ins (see above)."""

    def records(wildcards):
        given = artifacts(wildcards) if callable(artifacts) else artifacts
        paths = [given] if isinstance(given, str) else list(given)
        out = []
        for pattern in paths:
            artifact = pattern.format(**dict(wildcards.items()))
            record = _record_path(artifact, RESULTS)
            out.append(_READ_IN_PLACE_OF_RECORD.get(record, record))
        return out

    return records


def refresh_content(artifacts):
    """Bring the records of these (concrete) artifacts up to date with their files, before any job runs: only
    an artifact whose size or mtime changed is hashed. Writes only where WRITE_AT_PARSE; a dry run notes the
    records it would write as new (_READ_IN_PLACE_OF_RECORD)."""
    done = _refresh_records([(a, record_of(a)) for a in artifacts], write=WRITE_AT_PARSE)
    if DRY_RUN:
        for artifact in done.get("changed", []) + done.get("created", []):
            _READ_IN_PLACE_OF_RECORD[record_of(artifact)] = artifact


def recorded(command, artifact, record="{output.record:q}"):
    """A rule's shell ``command`` followed, when it succeeded, by writing the content record of ``artifact``."""
    return f"{command} && mgfm content record {artifact} {record} >> {{log:q}} 2>&1"


def all_targets(wildcards):
    return [t for stage in TARGETS.values() for t in stage]


# ---- GPUs ------------------------------------------------------------------------------------------------
# A rule whose code runs on a GPU when it has one declares `gpu=GPU` and starts its command with
# `python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- `. GPU is 1 on a machine with GPUs
# (`CUDA_VISIBLE_DEVICES`, or the driver's list) and 0 without, so a CPU machine runs those jobs side by side as
# --cores allows; the default profile's `resources: {gpu: 1}` lets one GPU job run at a time, and
# `--resources gpu=N` lets N (one per GPU). mgfm.common.gpu_slots takes that many free GPUs by lock file and shows
# the job only those; under SLURM it leaves SLURM's binding alone. The SLURM profile sets every GPU rule's `gpu`
# itself (tests/test_envs.py checks both).
try:
    LOCAL_GPUS = len(candidate_gpus())
except ValueError as _err:
    raise WorkflowError(str(_err)) from None
GPU = 1 if LOCAL_GPUS else 0


def _gres_gpus(gres):
    """GPUs per node in a SLURM gres string ("gpu:8", "gpu:a100:4"); 0 when it names none."""
    parts = str(gres or "").split(":")
    return int(parts[-1]) if parts[0] == "gpu" and len(parts) > 1 and parts[-1].isdigit() else 0


def torch_launcher(wildcards, resources):
    """How a training job starts: a plain process, torchrun on one node, or srun + one torchrun per task.

    The srun form (resources `nodes` > 1 or `tasks` > 1, with `mpi: srun` so the SLURM plugin runs this command
    as it is): srun starts `tasks` agents over `nodes` nodes, each a torchrun with one process per GPU of its node
    (`gres: gpu:N`; one process when the job has no GPUs), meeting at a c10d rendezvous on the first node. The
    rendezvous values are read inside each srun task, where SLURM sets them: the SLURM plugin removes SLURM_*
    variables from the rule's own environment, so `$SLURM_NNODES` there would be empty."""
    gpus, nodes = int(resources.gpu), int(resources.nodes)
    tasks = int(resources.get("tasks", 1) or 1)
    if nodes > 1 or tasks > 1:
        tasks = max(tasks, nodes)
        per_node = _gres_gpus(resources.get("gres")) or 1
        srun = f"srun --nodes={nodes} --ntasks={tasks} --kill-on-bad-exit=1"
        if resources.get("cpus_per_task"):
            srun += f" --cpus-per-task={int(resources.cpus_per_task)}"
        if resources.get("gres"):
            srun += f" --gres={shlex.quote(str(resources.gres))}"   # a profile value: quoted for the shell
        # single quotes: expanded by each task's shell, with the step's SLURM_* variables
        task = (f'exec torchrun --nnodes="$SLURM_NTASKS" --nproc-per-node={per_node}'
                ' --rdzv-backend=c10d --rdzv-id="$SLURM_JOB_ID" --rdzv-endpoint="$(scontrol show hostnames'
                ' "$SLURM_JOB_NODELIST" | head -n1):$((29500 + SLURM_JOB_ID % 1000))" -m mgfm "$@"')
        return f"{srun} bash -c '{task}' torchrun"
    if gpus > 1:
        return f"torchrun --standalone --nproc-per-node {gpus} -m mgfm"
    return "mgfm"


def params_json(step):
    """The config keys a step reads (mgfm.config.steps), as JSON for its --params flag: a change of a key
    reruns exactly the steps that read it (and what follows them), never a sibling or anything upstream."""
    return json.dumps(step_params(step, config), sort_keys=True)


# ---- dataset tables and video ids ---------------------------------------------------------------------
# The demo's video ids are a pure function of its config (mgfm.demo.plan.demo_video_ids), so the DAG is
# known before the corpus is rendered; a real dataset's ids come from its manifest, validated here first.
DATASET = config["dataset"]
if DATASET["source"] == "demo":
    # the demo's tables, video ids and its one rule (the only place the workflow imports mgfm.demo)
    include: "demo.smk"

else:
    from mgfm.ingest.contract import DatasetError, load_manifest

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

# Per-video download records (mgfm.ingest.records): what a video's download job reads instead of the whole
# manifest, so an edited row reruns only that video's chain, and labels or splits rerun no download or pose.
# A real dataset's records are computed here from the manifest, in memory, and written by one small job per
# video (video_record, ingest.smk) under a name carrying a digest of their content. So a changed row is a
# new input of its download, an unchanged one plans nothing, and a dry run shows exactly what a run would do.
# Parsing writes nothing but the local sources' digest cache, and not that in a dry run or in a job's own parse
# (cluster jobs parse the workflow again). The demo's records come from one job (ingest.smk), since its
# manifest is itself an output.
VIDEO_RECORDS = RES.video_records_dir
if DATASET["source"] == "files":
    from mgfm.ingest.records import manifest_records, versioned_record_path

    try:
        VIDEO_RECORD_TEXT = manifest_records(TABLES["manifest"], VIDEO_RECORDS, config["download"],
                                             update_cache=WRITE_AT_PARSE)
    except (OSError, ValueError) as err:
        raise WorkflowError(f"config key dataset.manifest: {err}") from None
    VIDEO_RECORD_PATHS = {vid: str(versioned_record_path(VIDEO_RECORDS, vid, text))
                          for vid, text in VIDEO_RECORD_TEXT.items()}
else:
    VIDEO_RECORD_PATHS = {vid: f"{VIDEO_RECORDS}/{vid}.json" for vid in VIDEO_IDS}


def video_record_input(wildcards):
    """The download record a video's download job reads (its versioned name for a real dataset)."""
    try:
        return VIDEO_RECORD_PATHS[wildcards.video_id]
    except KeyError:
        raise WorkflowError(f"video {wildcards.video_id!r} is not in the manifest ({TABLES['manifest']})") from None


# Label-free views of the tables (mgfm.ingest.views): what sampling, MG-IoD, the figure, the packed datasets, the
# annotation check and spotting read of the manifest (and sampling of the annotations), so a corrected outcome
# or class reruns only what reads it. A real dataset's views are computed here, in memory, and written by a
# small job (label_free_view, ingest.smk) under a name carrying a digest of their content, as the video
# records: a label edit keeps the names and plans nothing, a label-free change is a new input of what reads it.
# The demo's come from a job (ingest.smk), since its tables are themselves outputs.
LABEL_FREE = RES.label_free_dir
if DATASET["source"] == "files":
    from mgfm.ingest.views import INTERVAL_VIEW as _INTERVAL_NAME, VIDEO_VIEW as _VIDEO_NAME
    from mgfm.ingest.views import versioned_view_path, view_texts

    try:
        VIEW_TEXT = view_texts(TABLES["manifest"], TABLES["annotations"])
    except (OSError, ValueError) as err:
        raise WorkflowError(f"config keys dataset.manifest / dataset.annotations: {err}") from None
    VIDEO_VIEW, INTERVAL_VIEW = (str(versioned_view_path(LABEL_FREE, name, VIEW_TEXT[name]))
                                 for name in (_VIDEO_NAME, _INTERVAL_NAME))
else:
    VIDEO_VIEW, INTERVAL_VIEW = f"{LABEL_FREE}/videos.csv", f"{LABEL_FREE}/intervals.csv"

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


# ---- arguments of the eval rules (eval.smk): explicit files per evaluated stream of a modality --------------
def feature_args(wc) -> list[str]:
    """--train-features / --test-features STREAM=table of one modality's evaluated streams."""
    return [a for s in modality_streams(wc.modality, EVAL_STREAMS) for a in (
        "--train-features", f"{s}={RES.features(wc.modality, s, 'mg_train')}",
        "--test-features", f"{s}={RES.features(wc.modality, s, 'mg_test')}")]


def encoder_args(wc) -> list[str]:
    """--encoder STREAM=folder of one modality's evaluated streams (the probe's cache check)."""
    return [a for s in modality_streams(wc.modality, EVAL_STREAMS)
            for a in ("--encoder", f"{s}={RES.model_dir(wc.modality, s)}")]

# Rules of the infer stage (see docs/infer.md): the spotter description with its validation-chosen threshold, the
# spotting protocol on the labeled test videos with its table, and spotting of the videos a user lists (target
# `infer`). The models they read are the eval stage's: each stream's classifier exported by eval_finetune, the
# emotion aggregator of eval_emotion_model. Each rule is given only the keys its step reads (mgfm.config.steps).

import re as _re

from mgfm.eval.members import member_name as _member_name, modality_streams as _modality_streams
from mgfm.infer.video_files import video_ids as _video_ids

INFER = config["infer"]
INFER_DIR = RES.infer_dir
# spotting fuses a fine-tuned classifier of every evaluated modality and stream (skeleton streams, RGB when built)
INFER_MEMBERS = [(_member_name(m, s), m, s) for m in EVAL_MODALITIES for s in _modality_streams(m, EVAL_STREAMS)]
# RGB members read the window frames of the normalised videos (calibration: the validation videos)
INFER_RGB = any(m == "rgb" for _, m, _ in INFER_MEMBERS)
SPOTTER = RES.spotter
SPOTTING_METRICS = RES.protocol_metrics("spotting")

try:
    INFER_VIDEOS = _video_ids(INFER["videos"], INFER["video_dir"])
except (FileNotFoundError, ValueError) as _err:
    raise WorkflowError(str(_err)) from None
INFER_PATHS = {"models": RES.models_dir, "pose": RES.pose_dir, "videos": RES.videos_dir, "tables": RES.tables_dir,
               "out": f"{INFER_DIR}/videos"}


rule infer_calibrate:
    input:
        classifiers=[f"{RES.classifiers_dir}/{m}/{s}/{f}" for _, m, s in INFER_MEMBERS
                     for f in ("classifier.json", "head.safetensors", "card.json")],
        classifier_encoders=ancient([f"{RES.classifiers_dir}/{m}/{s}/encoder.safetensors" for _, m, s in INFER_MEMBERS]),
        classifier_records=record_input([f"{RES.classifiers_dir}/{m}/{s}/encoder.safetensors" for _, m, s in INFER_MEMBERS]),
        emotion=rules.eval_emotion_model.output,
        # the ensemble's fusion weights when that protocol runs; equal weights otherwise
        ensemble=RES.protocol_metrics("ensemble") if EVAL_RUNS("ensemble") else [],
        manifest=VIDEO_VIEW,                   # splits and subsets only: an outcome is no input of spotting
        annotations=TABLES["annotations"],
        pose=ancient(POSE_FILES),
        pose_records=record_input(POSE_FILES),
        videos=ancient(VIDEO_FILES) if INFER_RGB else [],
        video_records=record_input(VIDEO_FILES) if INFER_RGB else [],
    output:
        SPOTTER,
    params:
        cfg=params_json("infer_calibrate"),
        tau=config["clips"]["tau"],
        fps=config["download"]["fps"],
        pose=json.dumps(step_params("pose", config), sort_keys=True),
        download=json.dumps(step_params("download_video", config), sort_keys=True),
        members=[a for n, m, s in INFER_MEMBERS for a in ("--member", f"{n}:{m}:{s}")],
        ensemble=lambda wc, input: ["--ensemble", input.ensemble] if input.ensemble else [],
        dataset=DATASET_LABEL,
        source=DATASET["source"],
        videos=["--videos-dir", RES.videos_dir] if INFER_RGB else [],
        dirs=INFER_PATHS,
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/infer/calibrate.log",
    benchmark:
        f"{BENCH}/infer/calibrate.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
        "mgfm infer-step calibrate --models-dir {params.dirs[models]:q} {params.members:q} {params.ensemble:q} "
        "--manifest {input.manifest:q} --annotations {input.annotations:q} --pose-dir {params.dirs[pose]:q} "
        "{params.videos:q} --tau {params.tau:q} --fps {params.fps:q} --pose {params.pose:q} --download {params.download:q} "
        "--dataset {params.dataset:q} --dataset-source {params.source:q} --params {params.cfg:q} --threads {threads} "
        "> {log:q} 2>&1"


rule infer_spot:
    input:
        spotter=SPOTTER,
        manifest=VIDEO_VIEW,
        annotations=TABLES["annotations"],
        pose=ancient(POSE_FILES),
        pose_records=record_input(POSE_FILES),
        videos=ancient(VIDEO_FILES),
        video_records=record_input(VIDEO_FILES),
    output:
        pages=directory(f"{INFER_DIR}/test"),
        metrics=SPOTTING_METRICS,
    params:
        cfg=params_json("infer_spot"),
        dirs=INFER_PATHS,
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/infer/spot_test.log",
    benchmark:
        f"{BENCH}/infer/spot_test.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
        "mgfm infer-step evaluate --models-dir {params.dirs[models]:q} --manifest {input.manifest:q} "
        "--annotations {input.annotations:q} --pose-dir {params.dirs[pose]:q} --videos-dir {params.dirs[videos]:q} "
        "--out-dir {output.pages:q} --metrics {output.metrics:q} --params {params.cfg:q} --threads {threads} "
        "> {log:q} 2>&1"


rule infer_table:
    input:
        SPOTTING_METRICS,
    output:
        [RES.table(t, ext) for t in SPOTTING_TABLES for ext in TABLE_FORMATS],
    params:
        dirs=INFER_PATHS,
    log:
        f"{LOGS}/infer/table.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm tables spotting --metrics {input:q} --out-dir {params.dirs[tables]:q} > {log:q} 2>&1"


rule infer_video:
    input:
        spotter=SPOTTER,
        video=lambda wc: INFER_VIDEOS[wc.infer_video],
    output:
        directory(f"{INFER_DIR}/videos/{{infer_video}}"),
    wildcard_constraints:
        infer_video="|".join(_re.escape(v) for v in INFER_VIDEOS) or "(?!)",
    params:
        cfg=params_json("infer_spot"),
        # the pose settings come from the user's config, never from the models folder
        pose=json.dumps(step_params("pose", config), sort_keys=True),
        dirs=INFER_PATHS,
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/infer/video_{{infer_video}}.log",
    benchmark:
        f"{BENCH}/infer/video_{{infer_video}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
        "mgfm infer {input.video:q} --models {params.dirs[models]:q} --out {params.dirs[out]:q} --params {params.cfg:q} "
        "--pose {params.pose:q} --threads {threads} > {log:q} 2>&1"


SPOTTING_TABLE_FILES = [RES.table(t, ext) for t in SPOTTING_TABLES for ext in TABLE_FORMATS]


rule infer:
    input:
        [f"{INFER_DIR}/videos/{v}" for v in INFER_VIDEOS],
        SPOTTING_TABLE_FILES if EVAL_RUNS("spotting") else [],


refresh_content([f"{RES.classifiers_dir}/{m}/{s}/encoder.safetensors" for _, m, s in INFER_MEMBERS])

TARGETS["infer"] = SPOTTING_TABLE_FILES if EVAL_RUNS("spotting") else []

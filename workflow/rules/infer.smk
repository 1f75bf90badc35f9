# Rules of the infer stage (see docs/infer.md): the models inference needs (one fine-tuned classifier per stream,
# the emotion aggregator), the spotter description with its validation-chosen threshold, the spotting protocol
# on the labeled test videos with its table, and spotting of the videos a user lists (target `infer`).
# Each rule is given only the keys its step reads (mgfm.config.steps).

import re as _re

from mgfm.eval.paths import member_name as _member_name, modality_streams as _modality_streams
from mgfm.infer.inputs import video_ids as _video_ids

INFER = config["infer"]
INFER_DIR = f"{RESULTS}/infer"
CLASSIFIERS_DIR = f"{MODELS_DIR}/classifiers"
# spotting fuses a fine-tuned classifier of every evaluated modality and stream (skeleton streams, RGB when built)
INFER_MEMBERS = [(_member_name(m, s), m, s) for m in EVAL_MODALITIES for s in _modality_streams(m, EVAL_STREAMS)]
# the win/lose aggregator reads the features of skeleton windows from MG-FM-Skele's encoders, the streams of
# eval.emotion.skeleton_streams (as the emotion protocol; windows have no RGB features here)
INFER_EMOTION_MEMBERS = [(n, m, s) for n, m, s in INFER_MEMBERS
                         if m == "skeleton" and s in EVAL["emotion"]["skeleton_streams"]]
# RGB members read the window frames of the normalised videos (calibration: the validation videos)
INFER_RGB = any(m == "rgb" for _, m, _ in INFER_MEMBERS)
SPOTTER = f"{MODELS_DIR}/spotter.json"
SPOTTING_METRICS = f"{EVAL_DIR}/spotting/metrics.json"

try:
    INFER_VIDEOS = _video_ids(INFER["videos"], INFER["video_dir"])
except (FileNotFoundError, ValueError) as _err:
    raise WorkflowError(str(_err)) from None
INFER_PATHS = {"models": MODELS_DIR, "pose": f"{RESULTS}/pose", "videos": f"{RESULTS}/videos", "tables": TABLES_DIR,
               "out": f"{INFER_DIR}/videos"}


rule infer_classifier:
    wildcard_constraints:
        **EVAL_WILDCARDS,
    input:
        encoder=f"{MODELS_DIR}/{{modality}}/{{eval_stream}}/encoder.safetensors",
        card=f"{MODELS_DIR}/{{modality}}/{{eval_stream}}/card.json",
        train=f"{DATASETS_DIR}/{{modality}}/mg_train",
        test=f"{DATASETS_DIR}/{{modality}}/mg_test",
        taxonomy=TABLES["taxonomy"],
        init=finetune_init,
    output:
        info=f"{CLASSIFIERS_DIR}/{{modality}}/{{eval_stream}}/classifier.json",
        head=f"{CLASSIFIERS_DIR}/{{modality}}/{{eval_stream}}/head.safetensors",
        encoder=f"{CLASSIFIERS_DIR}/{{modality}}/{{eval_stream}}/encoder.safetensors",
        card=f"{CLASSIFIERS_DIR}/{{modality}}/{{eval_stream}}/card.json",
    params:
        cfg=params_json("infer_classifier"),
        seed=config["seed"],
        model_dir=lambda wc, input: Path(input.encoder).parent,
        out_dir=lambda wc, output: Path(output.info).parent,
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/infer/classifier_{{modality}}_{{eval_stream}}.log",
    benchmark:
        f"{BENCH}/infer/classifier_{{modality}}_{{eval_stream}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
        "mgfm infer-step train-classifier --model-dir {params.model_dir:q} --train {input.train:q} "
        "--test {input.test:q} --taxonomy {input.taxonomy:q} --out-dir {params.out_dir:q} --params {params.cfg:q} "
        "--seed {params.seed} --threads {threads} > {log:q} 2>&1"


rule infer_emotion:
    input:
        features=[f"{FEATURES_DIR}/{m}/{s}/video_clips.parquet" for _, m, s in INFER_EMOTION_MEMBERS],
        encoders=[f"{MODELS_DIR}/{m}/{s}/encoder.safetensors" for _, m, s in INFER_EMOTION_MEMBERS],
        manifest=TABLES["manifest"],
    output:
        info=f"{MODELS_DIR}/emotion/emotion.json",
        weights=f"{MODELS_DIR}/emotion/aggregator.safetensors",
    params:
        cfg=params_json("infer_emotion"),
        seed=config["seed"],
        members=" ".join(f"--member {n}={FEATURES_DIR}/{m}/{s}/video_clips.parquet --encoder {n}={m}/{s}"
                         for n, m, s in INFER_EMOTION_MEMBERS),
        dirs=INFER_PATHS,
    log:
        f"{LOGS}/infer/emotion.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm infer-step train-emotion {params.members} --manifest {input.manifest:q} --models-dir {params.dirs[models]} "
        "--params {params.cfg:q} --seed {params.seed} --threads {threads} > {log:q} 2>&1"


rule infer_calibrate:
    input:
        classifiers=[f"{CLASSIFIERS_DIR}/{m}/{s}/{f}" for _, m, s in INFER_MEMBERS
                     for f in ("classifier.json", "head.safetensors", "encoder.safetensors", "card.json")],
        emotion=rules.infer_emotion.output,
        ensemble=f"{EVAL_DIR}/ensemble/metrics.json",
        manifest=TABLES["manifest"],
        annotations=TABLES["annotations"],
        pose=expand(f"{RESULTS}/pose/{{video_id}}.parquet", video_id=VIDEO_IDS),
        videos=expand(f"{RESULTS}/videos/{{video_id}}.mp4", video_id=VIDEO_IDS) if INFER_RGB else [],
    output:
        SPOTTER,
    params:
        cfg=params_json("infer_calibrate"),
        tau=config["clips"]["tau"],
        fps=config["download"]["fps"],
        pose=json.dumps(step_params("pose", config), sort_keys=True),
        download=json.dumps(step_params("download_video", config), sort_keys=True),
        members=" ".join(f"--member {n}:{m}:{s}" for n, m, s in INFER_MEMBERS),
        videos=f"--videos-dir {RESULTS}/videos" if INFER_RGB else "",
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
        "mgfm infer-step calibrate --models-dir {params.dirs[models]} {params.members} --ensemble {input.ensemble:q} "
        "--manifest {input.manifest:q} --annotations {input.annotations:q} --pose-dir {params.dirs[pose]} "
        "{params.videos} --tau {params.tau} --fps {params.fps} --pose {params.pose:q} --download {params.download:q} "
        "--params {params.cfg:q} --threads {threads} > {log:q} 2>&1"


rule infer_spot:
    input:
        spotter=SPOTTER,
        manifest=TABLES["manifest"],
        annotations=TABLES["annotations"],
        pose=expand(f"{RESULTS}/pose/{{video_id}}.parquet", video_id=VIDEO_IDS),
        videos=expand(f"{RESULTS}/videos/{{video_id}}.mp4", video_id=VIDEO_IDS),
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
        "mgfm infer-step evaluate --models-dir {params.dirs[models]} --manifest {input.manifest:q} "
        "--annotations {input.annotations:q} --pose-dir {params.dirs[pose]} --videos-dir {params.dirs[videos]} "
        "--out-dir {output.pages:q} --metrics {output.metrics:q} --params {params.cfg:q} --threads {threads} "
        "> {log:q} 2>&1"


rule infer_table:
    input:
        SPOTTING_METRICS,
    output:
        [f"{TABLES_DIR}/{t}.{ext}" for t in SPOTTING_TABLES for ext in TABLE_FORMATS],
    params:
        dirs=INFER_PATHS,
    log:
        f"{LOGS}/infer/table.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm tables spotting --metrics {input:q} --out-dir {params.dirs[tables]} > {log:q} 2>&1"


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
        "mgfm infer {input.video:q} --models {params.dirs[models]} --out {params.dirs[out]} --params {params.cfg:q} "
        "--threads {threads} > {log:q} 2>&1"


rule infer:
    input:
        [f"{INFER_DIR}/videos/{v}" for v in INFER_VIDEOS],
        [f"{TABLES_DIR}/{t}.{ext}" for t in SPOTTING_TABLES for ext in TABLE_FORMATS],


TARGETS["infer"] = [f"{TABLES_DIR}/{t}.{ext}" for t in SPOTTING_TABLES for ext in TABLE_FORMATS]

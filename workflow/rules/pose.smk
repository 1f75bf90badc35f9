# Rules of the pose stage (see README.md): whole-body keypoints of the primary person on every frame of each
# normalised video, one Parquet file per video; with a preset (or pose.mmpose.fetch), fetch the paper's pinned
# checkpoints first and, for the onnx backend, export them to ONNX.

import re

from snakemake.logging import logger

# the pose section as the jobs run it (mgfm.pose.presets): a preset's pinned checkpoints (fetched into the models
# folder) and, with the onnx backend, their ONNX exports as pose.model / pose.detector.model. It replaces the
# configured section, so that every rule passing pose settings (the pose jobs, the spotter) passes the same
# ones, and a new checkpoint (another export file name) reruns the pose jobs through their params
from mgfm.pose.presets import PresetError, plan_pose

POSE_MODEL_DIR = RES.pose_models_dir
try:
    POSE_PLAN = plan_pose(config["pose"], POSE_MODEL_DIR)
except PresetError as err:
    raise WorkflowError(str(err)) from None
config["pose"] = POSE = POSE_PLAN.section
# the shipped demo model (mgfm.pose.params.DEMO_MODEL, the one place that knows its path). It is package data,
# not a workflow file: the rule records it by content (params.model_sha256), never by its absolute path, so a work
# folder or checkout moved elsewhere reruns no pose job, and a retrained demo model reruns them all
from mgfm.pose.params import DEMO_MODEL

POSE_DEMO_MODEL = str(DEMO_MODEL)

# model files by the config key that names them
if POSE["backend"] == "mmpose":
    # the paper's setup: mmpose/mmcv pin their own torch, so it gets its own environment
    POSE_ENV = "../../envs/mmpose.yaml"
    # an empty checkpoint key is reported by `mgfm pose extract` itself, naming the key
    POSE_MODEL_FILES = {f"pose.mmpose.{k}": POSE["mmpose"][k] for k in ("checkpoint", "det_checkpoint")
                        if POSE["mmpose"][k]}
else:
    # onnxruntime's CPU and GPU builds install the same `onnxruntime` package: each has its own environment, and
    # pose.device: cuda picks the GPU one (with device auto a job that finds no CUDA provider says so and uses CPU)
    POSE_ENV = "../../envs/pose-gpu.yaml" if POSE["device"] == "cuda" else "../../envs/pose.yaml"
    POSE_MODEL_FILES = {k: v for k, v in (("pose.model", POSE["model"]),
                                          ("pose.detector.model", POSE["detector"]["model"])) if v}
# a model file that no rule makes must be there before the run starts: Snakemake would otherwise drop the pose
# jobs whose input is missing and keep the pose files of an earlier run, made with another model
for _key, _path in POSE_MODEL_FILES.items():
    if _path not in POSE_PLAN.produced() and not Path(_path).is_file():
        raise WorkflowError(f"config key {_key}: file not found: {_path}. Give an existing file, or use "
                            "pose.preset: rtmw-x (the paper's models, fetched and exported by the workflow; "
                            "docs/own-videos.md)")
# the sidecar JSON of an export is read with it (input size, normalisation, decoding, its sha256)
POSE_MODEL_INPUTS = [*POSE_MODEL_FILES.values(), *(str(Path(f).with_suffix(".json")) for f in POSE_PLAN.exports)]


POSE_DEMO_SHA256 = ""
if POSE["backend"] == "onnx" and not POSE["model"]:
    from mgfm.common.digest import sha256_file

    POSE_DEMO_SHA256 = sha256_file(POSE_DEMO_MODEL)


if DATASET["source"] == "files" and POSE["backend"] == "onnx" and not POSE["model"]:
    # said once on the console (each pose job's log says it again per video)
    logger.warning("pose.model is empty, so the demo pose model is used: it was trained on the synthetic demo "
                   "renders only and its keypoints on real video are not to be trusted. Set pose.preset: rtmw-x "
                   "(the paper's models) or pose.model (and pose.detector.model): docs/own-videos.md.")


if POSE_PLAN.fetch:
    # pinned URL + sha256 only (a preset's checkpoints, or pose.mmpose.fetch), into <results>/models/pose/
    rule fetch_pose_model:
        output:
            f"{POSE_MODEL_DIR}/{{model_file}}",
        wildcard_constraints:
            model_file="|".join(re.escape(k) for k in POSE_PLAN.fetch),
        params:
            url=lambda wc: POSE_PLAN.fetch[wc.model_file].url,
            sha256=lambda wc: POSE_PLAN.fetch[wc.model_file].sha256,
        log:
            f"{LOGS}/pose/fetch_{{model_file}}.log",
        conda:
            "../../envs/pose.yaml"
        shell:
            "mgfm pose fetch-model --url {params.url:q} --sha256 {params.sha256:q} --out {output:q} > {log:q} 2>&1"


if POSE_PLAN.exports:
    # a preset's checkpoints as ONNX files (mgfm.pose.onnx_export), named after the checkpoint and its pinned
    # digest. The export needs mmpose: with --use-conda it runs in envs/mmpose.yaml; without conda
    # `mgfm pose export-onnx` runs it in the pinned venv of scripts/mmpose/build-venv.sh (built once if absent)
    POSE_EXPORTS = {Path(k).name[: -len(".onnx")]: v for k, v in POSE_PLAN.exports.items()}

    rule export_pose_onnx:
        input:
            checkpoint=lambda wc: POSE_EXPORTS[wc.onnx_name].checkpoint,
        output:
            onnx=f"{POSE_MODEL_DIR}/onnx/{{onnx_name}}.onnx",
            sidecar=f"{POSE_MODEL_DIR}/onnx/{{onnx_name}}.json",
        wildcard_constraints:
            onnx_name="|".join(re.escape(k) for k in POSE_EXPORTS),
        params:
            kind=lambda wc: POSE_EXPORTS[wc.onnx_name].kind,
            config=lambda wc: POSE_EXPORTS[wc.onnx_name].config,
            sha256=lambda wc: POSE_EXPORTS[wc.onnx_name].sha256,
            flip_test=lambda wc: POSE_EXPORTS[wc.onnx_name].flip_test,
        threads: 2
        log:
            f"{LOGS}/pose/export_{{onnx_name}}.log",
        benchmark:
            f"{BENCH}/pose/export_{{onnx_name}}.tsv"
        conda:
            "../../envs/mmpose.yaml"
        shell:
            "mgfm pose export-onnx --kind {params.kind:q} --config {params.config:q} --checkpoint {input.checkpoint:q}"
            " --sha256 {params.sha256:q} --flip-test {params.flip_test:q} --out {output.onnx:q} > {log:q} 2>&1"


rule pose:
    input:
        video=ancient(RES.video("{video_id}")),
        video_record=record_input(RES.video("{video_id}")),
        meta=RES.video_meta("{video_id}"),
        models=POSE_MODEL_INPUTS,
    output:
        pose=RES.pose("{video_id}"),
        record=record_of(RES.pose("{video_id}")),
    wildcard_constraints:
        video_id=VIDEO_ID_REGEX,
    params:
        cfg=params_json("pose"),
        model_sha256=POSE_DEMO_SHA256,
    threads: 2
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/pose/{{video_id}}.log",
    benchmark:
        f"{BENCH}/pose/{{video_id}}.tsv"
    conda:
        POSE_ENV
    shell:
        recorded(
            "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
            "mgfm pose extract --video {input.video:q} --meta {input.meta:q} --out {output.pose:q}"
            " --params {params.cfg:q} --threads {threads} > {log:q} 2>&1",
            "{output.pose:q}",
        )


POSE_FILES = expand(RES.pose("{video_id}"), video_id=VIDEO_IDS)
refresh_content(POSE_FILES)
TARGETS["pose"] = POSE_FILES

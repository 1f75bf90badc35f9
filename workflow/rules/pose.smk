# Rules of the pose stage (see README.md): whole-body keypoints of the primary person on every frame of each
# normalised video, one Parquet file per video; optionally fetch the paper's mmpose checkpoint first.

import re

from snakemake.logging import logger

POSE = config["pose"]
# the shipped demo model, found beside the Snakefile whatever the working directory. It is package data, not a
# workflow file: the rule records it by content (params.model_sha256), never by its absolute path, so a work
# folder or checkout moved elsewhere reruns no pose job, and a retrained demo model reruns them all
POSE_DEMO_MODEL = str(Path(workflow.basedir) / "mgfm" / "pose" / "models" / "demo_wholebody.onnx")
POSE_MODEL_DIR = f"{RESULTS}/models/pose"

if POSE["backend"] == "mmpose":
    # the paper's setup: mmpose/mmcv pin their own torch, so it gets its own environment
    POSE_ENV = "../../envs/mmpose.yaml"
    # an empty checkpoint key is reported by `mgfm pose extract` itself, naming the key
    POSE_MODEL_FILES = [f for f in (POSE["mmpose"]["checkpoint"], POSE["mmpose"]["det_checkpoint"]) if f]
else:
    # onnxruntime's CPU and GPU builds install the same `onnxruntime` package: each has its own environment, and
    # pose.device: cuda picks the GPU one (with device auto a job that finds no CUDA provider says so and uses CPU)
    POSE_ENV = "../../envs/pose-gpu.yaml" if POSE["device"] == "cuda" else "../../envs/pose.yaml"
    POSE_MODEL_FILES = [POSE["model"]] if POSE["model"] else []
    if POSE["detector"]["model"]:
        POSE_MODEL_FILES.append(POSE["detector"]["model"])


POSE_DEMO_SHA256 = ""
if POSE["backend"] == "onnx" and not POSE["model"]:
    from mgfm.pose.checksum import sha256_file

    POSE_DEMO_SHA256 = sha256_file(POSE_DEMO_MODEL)


if DATASET["source"] == "files" and POSE["backend"] == "onnx" and not POSE["model"]:
    # said once on the console (each pose job's log says it again per video)
    logger.warning("pose.model is empty, so the demo pose model is used: it was trained on the synthetic demo "
                   "renders only and its keypoints on real video are not to be trusted. Set pose.model (and "
                   "pose.detector.model) to a real whole-body model: docs/own-videos.md.")


if POSE["backend"] == "mmpose" and POSE["mmpose"]["fetch"]:
    # only the paper config downloads anything: pinned URL + sha256, into results/models/pose/
    _MM = POSE["mmpose"]
    POSE_FETCH = {Path(_MM["checkpoint"]).name: (_MM["checkpoint"], _MM["checkpoint_url"], _MM["checkpoint_sha256"])}
    if _MM["det_checkpoint"] and _MM["det_checkpoint_url"]:
        POSE_FETCH[Path(_MM["det_checkpoint"]).name] = (
            _MM["det_checkpoint"], _MM["det_checkpoint_url"], _MM["det_checkpoint_sha256"])
    for _key, (_path, _url, _sha) in POSE_FETCH.items():
        if _path != f"{POSE_MODEL_DIR}/{_key}":
            raise WorkflowError(f"pose.mmpose: {_path} must lie directly in {POSE_MODEL_DIR}/ when "
                                "pose.mmpose.fetch is true (the fetch rule writes only there)")
        if not _url or not _sha:
            raise WorkflowError(f"pose.mmpose: {_path} needs both a URL and a sha256 to be fetched")

    rule fetch_pose_model:
        output:
            f"{POSE_MODEL_DIR}/{{model_file}}",
        wildcard_constraints:
            model_file="|".join(re.escape(k) for k in POSE_FETCH),
        params:
            url=lambda wc: POSE_FETCH[wc.model_file][1],
            sha256=lambda wc: POSE_FETCH[wc.model_file][2],
        log:
            f"{LOGS}/pose/fetch_{{model_file}}.log",
        conda:
            "../../envs/pose.yaml"
        shell:
            "mgfm pose fetch-model --url {params.url:q} --sha256 {params.sha256:q} --out {output:q} > {log:q} 2>&1"


rule pose:
    input:
        video=ancient(f"{RESULTS}/videos/{{video_id}}.mp4"),
        video_record=record_input(f"{RESULTS}/videos/{{video_id}}.mp4"),
        meta=f"{RESULTS}/videos/{{video_id}}.json",
        models=POSE_MODEL_FILES,
    output:
        pose=f"{RESULTS}/pose/{{video_id}}.parquet",
        record=record_of(f"{RESULTS}/pose/{{video_id}}.parquet"),
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


POSE_FILES = expand(f"{RESULTS}/pose/{{video_id}}.parquet", video_id=VIDEO_IDS)
refresh_content(POSE_FILES)
TARGETS["pose"] = POSE_FILES

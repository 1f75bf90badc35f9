# Rules of the MG-FM-RGB branch (see docs/pretrain.md): SMILE Stage 1 and Stage 2 pretraining on the packed
# `pretrain` RGB clips, each its own job (a Stage 2 change never reruns Stage 1), then frozen RGB features of
# every evaluation dataset from the Stage 2 encoder, which the eval protocols read as modality rgb, stream rgb.
# At paper scale the CLIP teacher is fetched first (pinned URL + sha256) and converted to safetensors.
# GPUs as in pretrain.smk: resources.gpu > 1 launches torchrun; the model folders keep checkpoints/ between attempts.

import os

from mgfm.pose.params import DEMO_MODEL

RGB_PRETRAIN = config["rgb_pretrain"]
RGB_TEACHER = RGB_PRETRAIN["teacher"]
RGB_FEATURE_DATASETS = RGB_PRETRAIN["feature_datasets"]
# a SMILE / VideoMAE checkpoint Stage 1 starts from (pinned by sha256 in the params), an input when set
RGB_INIT_CHECKPOINT = [RGB_PRETRAIN["init"]["checkpoint"]] if RGB_PRETRAIN["init"]["checkpoint"] else []
# the teacher's file is an input, so a new teacher retrains both stages (the demo's is the packaged pose model)
RGB_TEACHER_WEIGHTS = [RGB_TEACHER["weights"]] if RGB_TEACHER["kind"] == "clip" else [
    RGB_TEACHER["onnx"] or str(DEMO_MODEL)
]
# Stage 1's RGBA objects folder, when one is named: a missing folder stops the run before any job starts
RGB_OBJECTS = [RGB_PRETRAIN["motion"]["objects_dir"]] if RGB_PRETRAIN["motion"]["objects_dir"] else []

if RGB_TEACHER["kind"] == "clip":
    if not RGB_TEACHER["weights"]:
        raise WorkflowError("rgb_pretrain.teacher.weights: the CLIP teacher needs a weights path")
    if not os.path.exists(RGB_TEACHER["weights"]) and not (RGB_TEACHER["url"] and RGB_TEACHER["sha256"]):
        raise WorkflowError(f"rgb_pretrain.teacher.weights: {RGB_TEACHER['weights']} does not exist and "
                            "rgb_pretrain.teacher.url / sha256 are not both set, so it cannot be fetched")

    rule fetch_rgb_teacher:
        output:
            RGB_TEACHER["weights"],
        params:
            url=RGB_TEACHER["url"],
            sha256=RGB_TEACHER["sha256"],
        log:
            f"{LOGS}/pretrain/fetch_rgb_teacher.log",
        conda:
            "../../envs/mgfm.yaml"
        shell:
            "mgfm pretrain fetch-clip --url {params.url:q} --sha256 {params.sha256:q} --out {output:q} > {log:q} 2>&1"


rule pretrain_rgb_stage1:
    input:
        dataset=ancient(RES.pack("rgb", "pretrain")),
        dataset_record=record_input(RES.pack("rgb", "pretrain")),
        teacher=RGB_TEACHER_WEIGHTS,
        init=RGB_INIT_CHECKPOINT,
        objects=RGB_OBJECTS,
    output:
        encoder=RES.encoder("rgb", RGB_STAGE1),
        card=RES.card("rgb", RGB_STAGE1),
        model=RES.smile_model(RGB_STAGE1),
        record=record_of(RES.smile_model(RGB_STAGE1)),
    params:
        cfg=params_json("pretrain_rgb_stage1"),
        seed=config["seed"],
        out=lambda wc, output: os.path.dirname(output.encoder),
        launcher=torch_launcher,
    threads: 1
    priority: PRETRAIN_CHAIN_PRIORITY
    resources:
        gpu=GPU,
        nodes=1,
    log:
        f"{LOGS}/pretrain/rgb_stage1.log",
    benchmark:
        f"{BENCH}/pretrain/rgb_stage1.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
            "{params.launcher} pretrain rgb --stage 1 --dataset {input.dataset:q} --out {params.out:q}"
            " --params {params.cfg:q} --seed {params.seed:q} --threads {threads} > {log:q} 2>&1",
            "{output.model:q}",
        )


rule pretrain_rgb_stage2:
    input:
        dataset=ancient(RES.pack("rgb", "pretrain")),
        dataset_record=record_input(RES.pack("rgb", "pretrain")),
        teacher=RGB_TEACHER_WEIGHTS,
        stage1=ancient(rules.pretrain_rgb_stage1.output.model),
        stage1_record=record_input(rules.pretrain_rgb_stage1.output.model),
    output:
        encoder=RES.encoder("rgb", RGB_STREAM),
        card=RES.card("rgb", RGB_STREAM),
        record=record_of(RES.encoder("rgb", RGB_STREAM)),
    params:
        cfg=params_json("pretrain_rgb_stage2"),
        seed=config["seed"],
        out=lambda wc, output: os.path.dirname(output.encoder),
        init=lambda wc, input: os.path.dirname(input.stage1),
        launcher=torch_launcher,
    threads: 1
    priority: PRETRAIN_CHAIN_PRIORITY
    resources:
        gpu=GPU,
        nodes=1,
    log:
        f"{LOGS}/pretrain/rgb_stage2.log",
    benchmark:
        f"{BENCH}/pretrain/rgb_stage2.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
            "{params.launcher} pretrain rgb --stage 2 --dataset {input.dataset:q} --init {params.init:q}"
            " --out {params.out:q} --params {params.cfg:q} --seed {params.seed:q} --threads {threads} > {log:q} 2>&1",
            "{output.encoder:q}",
        )


rule extract_rgb_features:
    input:
        encoder=ancient(rules.pretrain_rgb_stage2.output.encoder),
        encoder_record=record_input(rules.pretrain_rgb_stage2.output.encoder),
        card=rules.pretrain_rgb_stage2.output.card,
        dataset=ancient(RES.pack("rgb", "{name}")),
        dataset_record=record_input(RES.pack("rgb", "{name}")),
    output:
        features=RES.features("rgb", RGB_STREAM, "{name}"),
        record=record_of(RES.features("rgb", RGB_STREAM, "{name}")),
    wildcard_constraints:
        name="|".join(RGB_FEATURE_DATASETS),
    params:
        cfg=params_json("extract_rgb_features"),
        model=lambda wc, input: os.path.dirname(input.encoder),
    threads: 1
    priority: PRETRAIN_CHAIN_PRIORITY
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/features/rgb_{{name}}.log",
    benchmark:
        f"{BENCH}/features/rgb_{{name}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
            "mgfm features extract --model {params.model:q} --dataset {input.dataset:q} --out {output.features:q}"
            " --params {params.cfg:q} --threads {threads} > {log:q} 2>&1",
            "{output.features:q}",
        )


refresh_content([RES.smile_model(RGB_STAGE1), RES.encoder("rgb", RGB_STREAM),
                 *expand(RES.features("rgb", RGB_STREAM, "{name}"), name=RGB_FEATURE_DATASETS)])


# MG-FM-RGB is part of the default target only when RGB is evaluated (eval.modalities), like its datasets
TARGETS["rgb"] = [
    RES.encoder("rgb", RGB_STREAM),
    *expand(RES.features("rgb", RGB_STREAM, "{name}"), name=RGB_FEATURE_DATASETS),
] if RGB_DATASETS_NEEDED else []

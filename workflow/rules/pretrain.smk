# Rules of the pretrain stage (see README.md): one MG-FM-Skele pretraining job per input stream, then frozen
# features of every evaluation dataset per stream.
#
# GPUs: the rules declare resources.gpu (GPU: 1 on a machine with GPUs, 0 without; a profile may raise it with
# set-resources) and start through mgfm.common.gpu_slots, which shows each job only its own GPUs (common.smk).
# With gpu > 1 the job runs `torchrun --standalone --nproc-per-node <gpu> -m mgfm ...` (DistributedDataParallel,
# one process per GPU on one node); with 1 it is a plain process, which uses the GPU when there is one and the CPU
# otherwise.
# With resources.nodes > 1 (SLURM) it runs one torchrun per node through srun, meeting at a c10d rendezvous on the
# job's first node (torch_launcher).
# The model folder keeps checkpoints/ between attempts, so a killed job resumes when it is started again
# (only encoder.safetensors and card.json are declared outputs, so Snakemake never deletes the checkpoints).

import os

PRETRAIN = config["pretrain"]
SKELETON_STREAMS = PRETRAIN["streams"]
FEATURE_DATASETS = PRETRAIN["feature_datasets"]


# only what shapes the encoder (mgfm.config.steps): a new feature batch size or stream list must not retrain anything
PRETRAIN_CFG = params_json("pretrain_skeleton")


rule pretrain_skeleton:
    input:
        dataset=ancient(RES.pack("skeleton", "pretrain")),
        dataset_record=record_input(RES.pack("skeleton", "pretrain")),
    output:
        encoder=RES.encoder("skeleton", "{stream}"),
        card=RES.card("skeleton", "{stream}"),
        record=record_of(RES.encoder("skeleton", "{stream}")),
    wildcard_constraints:
        stream="|".join(SKELETON_STREAMS),
    params:
        cfg=PRETRAIN_CFG,
        seed=config["seed"],
        out=lambda wc, output: os.path.dirname(output.encoder),
        launcher=torch_launcher,
    threads: 1
    priority: PRETRAIN_CHAIN_PRIORITY
    resources:
        gpu=GPU,
        nodes=1,
    log:
        f"{LOGS}/pretrain/skeleton_{{stream}}.log",
    benchmark:
        f"{BENCH}/pretrain/skeleton_{{stream}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
            "{params.launcher} pretrain skeleton --dataset {input.dataset:q} --stream {wildcards.stream:q}"
            " --out {params.out:q} --params {params.cfg:q} --seed {params.seed:q} --threads {threads} > {log:q} 2>&1",
            "{output.encoder:q}",
        )


rule extract_features:
    input:
        encoder=ancient(rules.pretrain_skeleton.output.encoder),
        encoder_record=record_input(rules.pretrain_skeleton.output.encoder),
        card=rules.pretrain_skeleton.output.card,
        dataset=ancient(RES.pack("skeleton", "{name}")),
        dataset_record=record_input(RES.pack("skeleton", "{name}")),
    output:
        features=RES.features("skeleton", "{stream}", "{name}"),
        record=record_of(RES.features("skeleton", "{stream}", "{name}")),
    wildcard_constraints:
        stream="|".join(SKELETON_STREAMS),
        name="|".join(FEATURE_DATASETS),
    params:
        cfg=params_json("extract_features"),
        model=lambda wc, input: os.path.dirname(input.encoder),
    threads: 1
    priority: PRETRAIN_CHAIN_PRIORITY
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/features/skeleton_{{stream}}_{{name}}.log",
    benchmark:
        f"{BENCH}/features/skeleton_{{stream}}_{{name}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
            "mgfm features extract --model {params.model:q} --dataset {input.dataset:q} --out {output.features:q}"
            " --params {params.cfg:q} --threads {threads} > {log:q} 2>&1",
            "{output.features:q}",
        )


SKELETON_ENCODERS = expand(RES.encoder("skeleton", "{stream}"), stream=SKELETON_STREAMS)
refresh_content(SKELETON_ENCODERS)
refresh_content(expand(RES.features("skeleton", "{stream}", "{name}"), stream=SKELETON_STREAMS,
                       name=FEATURE_DATASETS))

TARGETS["pretrain"] = [
    *expand(RES.encoder("skeleton", "{stream}"), stream=SKELETON_STREAMS),
    *expand(RES.features("skeleton", "{stream}", "{name}"), stream=SKELETON_STREAMS,
            name=FEATURE_DATASETS),
]

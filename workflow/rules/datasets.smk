# Rules of the datasets stage (see README.md): the packed skeleton and RGB clip datasets, one job per
# (modality, name). pretrain / video_clips read the sampled clip table (so a new tau rebuilds them);
# mg_train / mg_test read only the annotations (checked against the videos by the download stage).

import os
import shlex

CLIP_DATASETS = list(DATASET_NAMES)


DATASET_INPUTS = {
    "pose": expand(f"{RESULTS}/pose/{{video_id}}.parquet", video_id=VIDEO_IDS),
    "manifest": TABLES["manifest"],
    # sampled datasets read the clip table, MG-instance datasets the (video-checked) annotations
    "clips": lambda wc: CLIP_TABLE if wc.name in SAMPLED_DATASETS else [],
    "annotations": lambda wc: [] if wc.name in SAMPLED_DATASETS else TABLES["annotations"],
    "checked": lambda wc: [] if wc.name in SAMPLED_DATASETS else f"{RESULTS}/dataset/annotations_checked.json",
}


rule skeleton_dataset:
    input:
        **DATASET_INPUTS,
    output:
        directory(f"{RESULTS}/datasets/skeleton/{{name}}"),
    wildcard_constraints:
        name="|".join(CLIP_DATASETS),
    params:
        cfg=params_json("skeleton_dataset"),
        pose_dir=lambda wc, input: os.path.dirname(input.pose[0]),
        source=lambda wc, input: (f"--clips {shlex.quote(input.clips)}" if wc.name in SAMPLED_DATASETS
                                  else f"--annotations {shlex.quote(input.annotations)}"),
    log:
        f"{LOGS}/datasets/skeleton_{{name}}.log",
    benchmark:
        f"{BENCH}/datasets/skeleton_{{name}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm datasets skeleton --name {wildcards.name} --pose-dir {params.pose_dir:q}"
        " --manifest {input.manifest:q} {params.source} --out {output:q} --params {params.cfg:q} > {log:q} 2>&1"


rule rgb_dataset:
    input:
        **DATASET_INPUTS,
        videos=expand(f"{RESULTS}/videos/{{video_id}}.mp4", video_id=VIDEO_IDS),
    output:
        directory(f"{RESULTS}/datasets/rgb/{{name}}"),
    wildcard_constraints:
        name="|".join(CLIP_DATASETS),
    params:
        cfg=params_json("rgb_dataset"),
        pose_dir=lambda wc, input: os.path.dirname(input.pose[0]),
        video_dir=lambda wc, input: os.path.dirname(input.videos[0]),
        source=lambda wc, input: (f"--clips {shlex.quote(input.clips)}" if wc.name in SAMPLED_DATASETS
                                  else f"--annotations {shlex.quote(input.annotations)}"),
    log:
        f"{LOGS}/datasets/rgb_{{name}}.log",
    benchmark:
        f"{BENCH}/datasets/rgb_{{name}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm datasets rgb --name {wildcards.name} --pose-dir {params.pose_dir:q} --video-dir {params.video_dir:q}"
        " --manifest {input.manifest:q} {params.source} --out {output:q} --params {params.cfg:q} > {log:q} 2>&1"


# The RGB clip datasets (~500 GB at paper scale) are built only when an RGB model reads them, i.e. when
# eval.modalities lists rgb; otherwise `snakemake results/datasets/rgb/<name>` still builds one on request.
RGB_DATASETS_NEEDED = "rgb" in config["eval"]["modalities"]
TARGETS["datasets"] = [
    *expand(f"{RESULTS}/datasets/skeleton/{{name}}", name=CLIP_DATASETS),
    *(expand(f"{RESULTS}/datasets/rgb/{{name}}", name=CLIP_DATASETS) if RGB_DATASETS_NEEDED else []),
]

# Rules of the packs stage (see README.md): the packed skeleton and RGB clip datasets (packs), one job per
# (modality, name). pretrain / video_clips read the sampled clip table (so a new tau rebuilds them);
# mg_train / mg_test read only the annotations (checked against the videos by the ingest stage).

import os

CLIP_DATASETS = list(PACK_NAMES)


DATASET_INPUTS = {
    "pose": ancient(POSE_FILES),
    "pose_records": record_input(POSE_FILES),
    # every dataset reads the label-free video table (subjects, splits): a corrected outcome rebuilds none; sampled
    # datasets (pretrain, video_clips) read the clip table, MG-instance datasets the annotations (their labels),
    # once checked against the videos (a check that reads no outcome either: ingest.smk)
    "manifest": VIDEO_VIEW,
    "clips": ancient(lambda wc: CLIP_TABLE if wc.name in SAMPLED_DATASETS else []),
    "clips_record": record_input(lambda wc: [CLIP_TABLE] if wc.name in SAMPLED_DATASETS else []),
    "annotations": lambda wc: [] if wc.name in SAMPLED_DATASETS else TABLES["annotations"],
    "checked": lambda wc: [] if wc.name in SAMPLED_DATASETS else RES.annotations_checked,
}


rule pack_skeleton:
    input:
        **DATASET_INPUTS,
    output:
        data=directory(RES.pack("skeleton", "{name}")),
        record=record_of(RES.pack("skeleton", "{name}")),
    wildcard_constraints:
        name="|".join(CLIP_DATASETS),
    params:
        cfg=params_json("pack_skeleton"),
        pose_dir=lambda wc, input: os.path.dirname(input.pose[0]),
        source=lambda wc, input: (["--clips", input.clips] if wc.name in SAMPLED_DATASETS
                                  else ["--annotations", input.annotations]),
    priority: PRETRAIN_CHAIN_PRIORITY
    log:
        f"{LOGS}/packs/skeleton_{{name}}.log",
    benchmark:
        f"{BENCH}/packs/skeleton_{{name}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "mgfm packs skeleton --name {wildcards.name:q} --pose-dir {params.pose_dir:q}"
            " --manifest {input.manifest:q} {params.source:q} --out {output.data:q} --params {params.cfg:q} > {log:q} 2>&1",
            "{output.data:q}",
        )


rule pack_rgb:
    input:
        **DATASET_INPUTS,
        videos=ancient(VIDEO_FILES),
        video_records=record_input(VIDEO_FILES),
    output:
        data=directory(RES.pack("rgb", "{name}")),
        record=record_of(RES.pack("rgb", "{name}")),
    wildcard_constraints:
        name="|".join(CLIP_DATASETS),
    params:
        cfg=params_json("pack_rgb"),
        pose_dir=lambda wc, input: os.path.dirname(input.pose[0]),
        video_dir=lambda wc, input: os.path.dirname(input.videos[0]),
        source=lambda wc, input: (["--clips", input.clips] if wc.name in SAMPLED_DATASETS
                                  else ["--annotations", input.annotations]),
    priority: PRETRAIN_CHAIN_PRIORITY
    log:
        f"{LOGS}/packs/rgb_{{name}}.log",
    benchmark:
        f"{BENCH}/packs/rgb_{{name}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "mgfm packs rgb --name {wildcards.name:q} --pose-dir {params.pose_dir:q} --video-dir {params.video_dir:q}"
            " --manifest {input.manifest:q} {params.source:q} --out {output.data:q} --params {params.cfg:q} > {log:q} 2>&1",
            "{output.data:q}",
        )


# The RGB clip datasets (~500 GB at paper scale) are built only when an RGB model reads them, i.e. when
# eval.modalities lists rgb; otherwise `snakemake results/packs/rgb/<name>` still builds one on request.
RGB_DATASETS_NEEDED = "rgb" in config["eval"]["modalities"]
refresh_content(expand(RES.pack("{modality}", "{name}"), modality=("skeleton", "rgb"), name=CLIP_DATASETS))
TARGETS["datasets"] = [
    *expand(RES.pack("skeleton", "{name}"), name=CLIP_DATASETS),
    *(expand(RES.pack("rgb", "{name}"), name=CLIP_DATASETS) if RGB_DATASETS_NEEDED else []),
]

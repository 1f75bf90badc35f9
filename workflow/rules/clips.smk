# Rules of the clips stage (see README.md): rejection-sampled clips of every video (one aggregate job: the
# sampler needs milliseconds per video once the score column is read, far less than a job's overhead), the
# MG-IoD ablations (raw results; `mgfm tables iod` renders them as paper Tables VI/VII) and the duration
# figure (Fig. 4).
# Each rule is given only the `clips` keys it reads (mgfm.config.steps): changing tau reruns sampling and all
# that follows, never pose extraction; changing the figure's x-range redraws only the figure.

import os

CLIPS = config["clips"]
CLIP_TABLE = RES.clip_table
IOD_TABLE_FILES = [RES.table(name, ext) for name in IOD_TABLES.values() for ext in TABLE_FORMATS]


# label-free inputs only (a corrected outcome or class reruns nothing here): the tables' label-free views, and
# the pose files by content (ancient + content record: a rewrite with the same bytes reruns nothing)
CLIPS_INPUTS = {
    "pose": ancient(POSE_FILES),
    "pose_records": record_input(POSE_FILES),
    "metas": expand(RES.video_meta("{video_id}"), video_id=VIDEO_IDS),
    "manifest": VIDEO_VIEW,
    "annotations": INTERVAL_VIEW,
    "prior": [] if CLIPS["prior"] == "train_split" else [CLIPS["prior"]],
}


rule sample_clips:
    input:
        **CLIPS_INPUTS,
    output:
        clips=CLIP_TABLE,
        stats=RES.sampler_stats,
        record=record_of(CLIP_TABLE),
    params:
        cfg=params_json("sample_clips"),
        seed=config["seed"],
        pose_dir=lambda wc, input: os.path.dirname(input.pose[0]),
        video_dir=lambda wc, input: os.path.dirname(input.metas[0]),
    log:
        f"{LOGS}/clips/sample_clips.log",
    benchmark:
        f"{BENCH}/clips/sample_clips.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "mgfm clips sample --pose-dir {params.pose_dir:q} --video-dir {params.video_dir:q}"
            " --manifest {input.manifest:q} --annotations {input.annotations:q} --seed {params.seed:q}"
            " --out-clips {output.clips:q} --out-stats {output.stats:q} --params {params.cfg:q} > {log:q} 2>&1",
            "{output.clips:q}",
        )


rule iod:
    input:
        **CLIPS_INPUTS,
    output:
        RES.iod,
    params:
        cfg=params_json("iod"),
        seed=config["seed"],
        pose_dir=lambda wc, input: os.path.dirname(input.pose[0]),
        video_dir=lambda wc, input: os.path.dirname(input.metas[0]),
    log:
        f"{LOGS}/clips/iod.log",
    benchmark:
        f"{BENCH}/clips/iod.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm clips iod --pose-dir {params.pose_dir:q} --video-dir {params.video_dir:q}"
        " --manifest {input.manifest:q} --annotations {input.annotations:q} --seed {params.seed:q}"
        " --out {output:q} --params {params.cfg:q} > {log:q} 2>&1"


rule iod_tables:
    input:
        RES.iod,
    output:
        IOD_TABLE_FILES,
    params:
        out_dir=lambda wc, output: os.path.dirname(output[0]),
        dataset=DATASET_LABEL,
    log:
        f"{LOGS}/clips/iod_tables.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm tables iod --iod {input:q} --out-dir {params.out_dir:q} --dataset {params.dataset:q} > {log:q} 2>&1"


rule duration_figure:
    input:
        clips=ancient(CLIP_TABLE),
        clips_record=record_input(CLIP_TABLE),
        # each annotated video's frame rate (a labeled video that gave no clip has one too)
        metas=CLIPS_INPUTS["metas"],
        manifest=VIDEO_VIEW,
        annotations=INTERVAL_VIEW,
    output:
        RES.figure("fig4_durations.png"),
    params:
        cfg=params_json("duration_figure"),
        video_dir=lambda wc, input: os.path.dirname(input.metas[0]),
    log:
        f"{LOGS}/clips/duration_figure.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm clips figure --clips {input.clips:q} --video-dir {params.video_dir:q} --manifest {input.manifest:q}"
        " --annotations {input.annotations:q} --out {output:q} --params {params.cfg:q} > {log:q} 2>&1"


refresh_content([CLIP_TABLE])

TARGETS["clips"] = [
    CLIP_TABLE,
    RES.sampler_stats,
    RES.iod,
    *IOD_TABLE_FILES,
    RES.figure("fig4_durations.png"),
]

# Rules of the clips stage (see README.md): rejection-sampled clips of every video (one aggregate job: the
# sampler needs milliseconds per video once the score column is read, far less than a job's overhead), the
# MG-IoD ablations (raw results; `mgfm tables iod` renders them as paper Tables VI/VII) and the duration
# figure (Fig. 4).
# Each rule is given only the `clips` keys it reads (mgfm.config.steps): changing tau reruns sampling and all
# that follows, never pose extraction; changing the figure's x-range redraws only the figure.

import os

CLIPS = config["clips"]
CLIPS_DIR = f"{RESULTS}/clips"
CLIP_TABLE = f"{CLIPS_DIR}/clips.parquet"
IOD_TABLE_FILES = [f"{RESULTS}/tables/{name}.{ext}" for name in IOD_TABLES.values() for ext in TABLE_FORMATS]


CLIPS_INPUTS = {
    "pose": expand(f"{RESULTS}/pose/{{video_id}}.parquet", video_id=VIDEO_IDS),
    "metas": expand(f"{RESULTS}/videos/{{video_id}}.json", video_id=VIDEO_IDS),
    "manifest": TABLES["manifest"],
    "annotations": TABLES["annotations"],
    "validated": f"{RESULTS}/dataset/validated.json",
    "prior": [] if CLIPS["prior"] == "train_split" else [CLIPS["prior"]],
}


rule sample_clips:
    input:
        **CLIPS_INPUTS,
    output:
        clips=CLIP_TABLE,
        stats=f"{CLIPS_DIR}/sampler_stats.csv",
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
        "mgfm clips sample --pose-dir {params.pose_dir:q} --video-dir {params.video_dir:q}"
        " --manifest {input.manifest:q} --annotations {input.annotations:q} --seed {params.seed:q}"
        " --out-clips {output.clips:q} --out-stats {output.stats:q} --params {params.cfg:q} > {log:q} 2>&1"


rule iod:
    input:
        **CLIPS_INPUTS,
    output:
        f"{CLIPS_DIR}/iod.json",
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
        f"{CLIPS_DIR}/iod.json",
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
        clips=CLIP_TABLE,
        manifest=TABLES["manifest"],
        annotations=TABLES["annotations"],
    output:
        f"{RESULTS}/figures/fig4_durations.png",
    params:
        cfg=params_json("duration_figure"),
    log:
        f"{LOGS}/clips/duration_figure.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm clips figure --clips {input.clips:q} --manifest {input.manifest:q}"
        " --annotations {input.annotations:q} --out {output:q} --params {params.cfg:q} > {log:q} 2>&1"


TARGETS["clips"] = [
    CLIP_TABLE,
    f"{CLIPS_DIR}/sampler_stats.csv",
    f"{CLIPS_DIR}/iod.json",
    *IOD_TABLE_FILES,
    f"{RESULTS}/figures/fig4_durations.png",
]

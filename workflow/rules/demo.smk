# The embedded demo (see docs/demo.md), included by common.smk when dataset.source is demo: its tables, its video
# ids and the rule that renders the corpus. The only rule file that imports mgfm.demo.
# The video ids are a pure function of dataset.demo (mgfm.demo.plan.demo_video_ids), so every downstream job is
# in the DAG before the corpus is rendered; no checkpoint is needed. The data-size plan (eval.smk) reads the
# tables as the renderer will make them (mgfm.demo.planned), before any job.

from mgfm.demo.plan import demo_video_ids
from mgfm.demo.planned import planned_tables

DEMO_DIR = RES.demo_dir
TABLES = {
    "manifest": f"{DEMO_DIR}/manifest.csv",
    "annotations": f"{DEMO_DIR}/annotations.csv",
    "taxonomy": f"{DEMO_DIR}/taxonomy.csv",
}
VIDEO_IDS = demo_video_ids(DATASET["demo"])
DEMO_PLAN_TABLES = planned_tables(DATASET["demo"])


rule demo_corpus:
    output:
        manifest=TABLES["manifest"],
        annotations=TABLES["annotations"],
        taxonomy=TABLES["taxonomy"],
        videos=expand(f"{DEMO_DIR}/raw/{{video_id}}.mp4", video_id=VIDEO_IDS),
        keypoints=expand(f"{DEMO_DIR}/keypoints/{{video_id}}.npz", video_id=VIDEO_IDS),
    params:
        cfg=json.dumps(DATASET["demo"], sort_keys=True),
        out=lambda wildcards, output: str(Path(output.manifest).parent),
    log:
        f"{LOGS}/demo/demo_corpus.log",
    benchmark:
        f"{BENCH}/demo_corpus.tsv"
    threads: 2
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm demo generate --out {params.out:q} --params {params.cfg:q} --threads {threads} > {log:q} 2>&1"

TARGETS["demo"] = [TABLES["manifest"]]

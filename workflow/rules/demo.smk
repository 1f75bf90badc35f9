# Rules of the demo stage (see README.md): the embedded synthetic corpus.
# Its video ids are a pure function of dataset.demo (mgfm.data.demo.plan.demo_video_ids, read in common.smk),
# so every downstream job is in the DAG before the corpus is rendered; no checkpoint is needed.

if DATASET["source"] == "demo":

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

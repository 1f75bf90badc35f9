# Rules of the ingest stage (see README.md): validate the dataset tables, fetch and normalise each video
# (one job per video), then check the annotations against the normalised videos.


rule validate_dataset:
    input:
        manifest=TABLES["manifest"],
        annotations=TABLES["annotations"],
        taxonomy=TABLES["taxonomy"],
    output:
        RES.validated,
    log:
        f"{LOGS}/ingest/validate.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm ingest validate --manifest {input.manifest:q} --annotations {input.annotations:q}"
        " --taxonomy {input.taxonomy:q} --out {output:q} > {log:q} 2>&1"


if DATASET["source"] == "demo":

    # the demo corpus is one job that rewrites every video anyway, so its records may come from one job too
    rule video_records:
        input:
            manifest=TABLES["manifest"],
            validated=RES.validated,
        output:
            expand(f"{VIDEO_RECORDS}/{{video_id}}.json", video_id=VIDEO_IDS),
        params:
            cfg=params_json("video_records"),
            out=lambda wildcards, output: str(Path(output[0]).parent),
        log:
            f"{LOGS}/ingest/video_records.log",
        conda:
            "../../envs/mgfm.yaml"
        shell:
            "mgfm ingest records --manifest {input.manifest:q} --out {params.out:q} --params {params.cfg:q}"
            " > {log:q} 2>&1"

    rule label_free_views:
        input:
            manifest=TABLES["manifest"],
            annotations=TABLES["annotations"],
            validated=RES.validated,
        output:
            videos=VIDEO_VIEW,
            intervals=INTERVAL_VIEW,
        params:
            out=lambda wildcards, output: str(Path(output.videos).parent),
        log:
            f"{LOGS}/ingest/label_free_views.log",
        conda:
            "../../envs/mgfm.yaml"
        shell:
            "mgfm ingest label-free --manifest {input.manifest:q} --annotations {input.annotations:q}"
            " --out {params.out:q} > {log:q} 2>&1"


if DATASET["source"] == "files":

    # one tiny job per video, run inside Snakemake on the machine that runs it (no process to start, no cluster
    # submission: thousands of them at paper scale); the record's text comes from the manifest at parse time, its
    # name carries the text's digest
    rule video_record:
        localrule: True
        output:
            f"{VIDEO_RECORDS}/{{video_id}}.{{record_digest}}.json",
        wildcard_constraints:
            video_id=VIDEO_ID_REGEX,
            record_digest="[0-9a-f]{16}",
        params:
            record=lambda wildcards: VIDEO_RECORD_TEXT[wildcards.video_id],
        log:
            f"{LOGS}/ingest/records/{{video_id}}.{{record_digest}}.log",
        run:
            from mgfm.ingest.records import write_versioned_record

            write_versioned_record(output[0], params.record)
            Path(log[0]).write_text(f"wrote {output[0]}\n")

    # the two label-free views, likewise: their text comes from the tables at parse time, their names carry its
    # digest (common.smk)
    rule label_free_view:
        localrule: True
        output:
            f"{LABEL_FREE}/{{view}}.{{view_digest}}.csv",
        wildcard_constraints:
            view="videos|intervals",
            view_digest="[0-9a-f]{16}",
        log:
            f"{LOGS}/ingest/label_free_{{view}}.{{view_digest}}.log",
        run:
            from mgfm.ingest.views import write_versioned_view

            write_versioned_view(output[0], VIEW_TEXT[f"{wildcards.view}.csv"])
            Path(log[0]).write_text(f"wrote {output[0]}\n")


rule download_video:
    # the video's own record, not the manifest or the validation: another row, a label or a split reruns
    # nothing here (a real manifest's rows are checked when common.smk loads it; the demo's records follow the
    # validation)
    input:
        record=video_record_input,
    output:
        video=RES.video("{video_id}"),
        meta=RES.video_meta("{video_id}"),
        record=record_of(RES.video("{video_id}")),
    wildcard_constraints:
        video_id=VIDEO_ID_REGEX,
    params:
        cfg=params_json("download_video"),
    log:
        f"{LOGS}/download/{{video_id}}.log",
    benchmark:
        f"{BENCH}/download/{{video_id}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(
            "mgfm ingest download --record {input.record:q}"
            " --out-video {output.video:q} --out-meta {output.meta:q} --threads {threads}"
            " --params {params.cfg:q} > {log:q} 2>&1",
            "{output.video:q}",
        )


rule check_annotations:
    # the annotations against the videos: which videos are labeled comes from the label-free view, so an outcome
    # reruns no check (and, through it, no dataset); the classes are validate_dataset's to check
    input:
        manifest=VIDEO_VIEW,
        annotations=TABLES["annotations"],
        metas=expand(RES.video_meta("{video_id}"), video_id=VIDEO_IDS),
    output:
        RES.annotations_checked,
    log:
        f"{LOGS}/ingest/check_annotations.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm ingest check-annotations --manifest {input.manifest:q} --annotations {input.annotations:q}"
        " --metas {input.metas:q} --out {output:q} > {log:q} 2>&1"


VIDEO_FILES = expand(RES.video("{video_id}"), video_id=VIDEO_IDS)
refresh_content(VIDEO_FILES)

TARGETS["download"] = [
    RES.validated,
    RES.annotations_checked,
    *[path for vid in VIDEO_IDS for path in (RES.video(vid), RES.video_meta(vid))],
]

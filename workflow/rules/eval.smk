# Rules of the eval stage (see README.md): every protocol of Tables VIII-XIII reads cached features (or, for
# fine-tuning, the encoders and packed datasets) and writes raw metrics under results/eval/<protocol>/; then
# the tables beside the paper's numbers, and the report. Modality and stream are wildcards, not copies.
# Each rule is given only the eval keys its step reads (mgfm.config.steps), so editing eval.emotion.epochs
# reruns the emotion protocol and the tables, never a fine-tuning. Streams are checked against pretrain.streams
# here, once, so no job depends on that list.

from mgfm.eval.checks import check_eval_config
from mgfm.eval.members import RGB_STREAM, emotion_members, member_name, modality_streams
from mgfm.core.layout import STREAMS as _ALL_STREAMS

EVAL = config["eval"]
PRETRAINED_STREAMS = list(config["pretrain"]["streams"])
try:
    # fail at parse time, before any job, naming the config key (a stream not pretrained, a modality not built)
    check_eval_config(EVAL, PRETRAINED_STREAMS)
except ValueError as err:
    raise WorkflowError(str(err)) from None
EVAL_MODALITIES = list(EVAL["modalities"])
EVAL_STREAMS = list(EVAL["streams"])

# What the data's size allows (mgfm.eval.plan), from the tables, before any job: a protocol the config leaves out
# or the data cannot run (too few training clips, no validation subjects) is no job, and its table, the report
# and the console say why; batch sizes above a stage's clips are said once here (each job trains with its clip
# count). The demo's tables are planned from its config (demo.smk), as the renderer makes them.
from mgfm.eval.plan import PlanError, plan_run

if DATASET["source"] == "demo":
    _PLAN_TABLES = DEMO_PLAN_TABLES
else:
    from mgfm.ingest.contract import load_annotations as _load_annotations

    _plan_manifest = load_manifest(TABLES["manifest"], labels=False)
    _PLAN_TABLES = (_plan_manifest, _load_annotations(TABLES["annotations"], _plan_manifest))
try:
    DATA_PLAN = plan_run(*_PLAN_TABLES, config)
except (PlanError, ValueError) as err:
    raise WorkflowError(str(err)) from None
if workflow.is_main_process:
    from snakemake.logging import logger as _logger

    for _line in DATA_PLAN.console_lines():
        _logger.warning(_line)
EVAL_RUNS = lambda protocol: DATA_PLAN.runs(protocol)  # noqa: E731
SKIPPED_JSON = json.dumps(DATA_PLAN.skipped, sort_keys=True)

# streams per modality: eval.streams for skeleton, the one RGB encoder (stream "rgb") for rgb
# the folders the report and the tables read as a whole (every path comes from RES, mgfm.core.results)
EVAL_PATHS = {"features": RES.features_dir, "models": RES.models_dir, "eval": RES.eval_dir,
              "tables": RES.tables_dir, "figures": RES.figures_dir}
EVAL_TABLE_NAMES = list(EVAL_TABLES.values())
# made by the clips stage, gathered by the report
CLIPS_REPORT_TABLES = [RES.table(name, "md") for name in IOD_TABLES.values()]
CLIPS_REPORT_FIGURES = [RES.figure("fig4_durations.png")]


EVAL_WILDCARDS = {"modality": "skeleton|rgb", "eval_stream": "|".join([*_ALL_STREAMS, RGB_STREAM]),
                  "ft_protocol": "semi_supervised|finetune|scratch"}


# the mg_train / mg_test feature tables and the encoders of one modality's evaluated streams (read by content:
# ancient + their records, as every large artifact here)
PROBE_FEATURES = lambda wc: [RES.features(wc.modality, s, n)  # noqa: E731
                             for s in modality_streams(wc.modality, EVAL_STREAMS) for n in ("mg_train", "mg_test")]
PROBE_ENCODERS = lambda wc: [RES.encoder(wc.modality, s) for s in modality_streams(wc.modality, EVAL_STREAMS)]  # noqa: E731


TEST_FEATURES = [RES.features(m, s, "mg_test") for m in EVAL_MODALITIES for s in modality_streams(m, EVAL_STREAMS)]


rule eval_linear_probe:
    wildcard_constraints:
        **EVAL_WILDCARDS,
    input:
        features=ancient(PROBE_FEATURES),
        feature_records=record_input(PROBE_FEATURES),
        encoders=ancient(PROBE_ENCODERS),
        encoder_records=record_input(PROBE_ENCODERS),
        dataset=ancient(RES.pack("{modality}", "mg_test")),
        dataset_record=record_input(RES.pack("{modality}", "mg_test")),
        taxonomy=TABLES["taxonomy"],
    output:
        metrics=RES.protocol_metrics("linear_probe", "{modality}"),
        scores=f"{RES.protocol_dir('linear_probe')}/{{modality}}/scores.npz",
        curves=f"{RES.protocol_dir('linear_probe')}/{{modality}}/probe_log.csv",
    params:
        features=feature_args,
        encoders=encoder_args,
        cfg=params_json("eval_linear_probe"),
        seed=config["seed"],
        out_dir=lambda wc, output: Path(output.metrics).parent,
    log:
        f"{LOGS}/eval/linear_probe_{{modality}}.log",
    benchmark:
        f"{BENCH}/eval/linear_probe_{{modality}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm eval linear-probe --modality {wildcards.modality:q} {params.features:q} {params.encoders:q} "
        "--test-pack {input.dataset:q} --taxonomy {input.taxonomy:q} "
        "--out-dir {params.out_dir:q} --params {params.cfg:q} --seed {params.seed:q} --threads {threads} "
        "> {log:q} 2>&1"


rule eval_retrieval:
    wildcard_constraints:
        **EVAL_WILDCARDS,
    input:
        features=ancient(PROBE_FEATURES),
        feature_records=record_input(PROBE_FEATURES),
        taxonomy=TABLES["taxonomy"],
    output:
        RES.protocol_metrics("retrieval", "{modality}"),
    params:
        features=feature_args,
        cfg=params_json("eval_retrieval"),
        out_dir=lambda wc, output: Path(output[0]).parent,
    log:
        f"{LOGS}/eval/retrieval_{{modality}}.log",
    benchmark:
        f"{BENCH}/eval/retrieval_{{modality}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm eval retrieval --modality {wildcards.modality:q} {params.features:q} "
        "--taxonomy {input.taxonomy:q} --out-dir {params.out_dir:q} --params {params.cfg:q} "
        "--threads {threads} > {log:q} 2>&1"


# the inputs of a fine-tuning job (the three protocols read the same encoder and datasets)
FINETUNE_INPUT = dict(
    encoder=ancient(RES.encoder("{modality}", "{eval_stream}")),
    encoder_record=record_input(RES.encoder("{modality}", "{eval_stream}")),
    card=RES.card("{modality}", "{eval_stream}"),
    train=ancient(RES.pack("{modality}", "mg_train")),
    test=ancient(RES.pack("{modality}", "mg_test")),
    dataset_records=record_input([RES.pack("{modality}", "mg_train"), RES.pack("{modality}", "mg_test")]),
    taxonomy=TABLES["taxonomy"],
    init=finetune_init,
)
FINETUNE_SHELL = (
    "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- "
    "mgfm eval finetune --protocol {params.protocol:q} --modality {wildcards.modality:q} "
    "--stream {wildcards.eval_stream:q} --model-dir {params.model_dir:q} --train {input.train:q} --test {input.test:q} "
    "--taxonomy {input.taxonomy:q} --out-dir {params.out_dir:q} --params {params.cfg:q} "
    "--seed {params.seed:q} --threads {threads} {params.export:q} > {log:q} 2>&1"
)
# inference's classifier of each stream: the finetune protocol's model of the first of eval.seeds, exported by its job
CLASSIFIER = f"{RES.classifiers_dir}/{{modality}}/{{eval_stream}}"


rule eval_finetune:
    wildcard_constraints:
        **EVAL_WILDCARDS,
    input:
        **FINETUNE_INPUT,
    output:
        metrics=RES.protocol_metrics("finetune", "{modality}", "{eval_stream}"),
        scores=f"{RES.protocol_dir('finetune')}/{{modality}}/{{eval_stream}}/scores.npz",
        info=f"{CLASSIFIER}/classifier.json",
        head=f"{CLASSIFIER}/head.safetensors",
        encoder=f"{CLASSIFIER}/encoder.safetensors",
        card=f"{CLASSIFIER}/card.json",
        record=record_of(f"{CLASSIFIER}/encoder.safetensors"),
    params:
        protocol="finetune",
        model_dir=lambda wc, input: Path(input.encoder).parent,
        cfg=params_json("eval_finetune"),
        seed=config["seed"],
        out_dir=lambda wc, output: Path(output.metrics).parent,
        export=lambda wc, output: ["--export-dir", Path(output.info).parent],
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/eval/finetune_{{modality}}_{{eval_stream}}.log",
    benchmark:
        f"{BENCH}/eval/finetune_{{modality}}_{{eval_stream}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        recorded(FINETUNE_SHELL, "{output.encoder:q}")


# the semi-supervised and from-scratch protocols: the same code as eval_finetune, scores only
rule eval_finetune_variant:
    wildcard_constraints:
        **{**EVAL_WILDCARDS, "ft_protocol": "semi_supervised|scratch"},
    input:
        **FINETUNE_INPUT,
    output:
        metrics=RES.protocol_metrics("{ft_protocol}", "{modality}", "{eval_stream}"),
        scores=f"{RES.eval_dir}/{{ft_protocol}}/{{modality}}/{{eval_stream}}/scores.npz",
    params:
        protocol=lambda wc: wc.ft_protocol,
        model_dir=lambda wc, input: Path(input.encoder).parent,
        cfg=lambda wc: params_json(f"eval_{wc.ft_protocol}"),
        seed=config["seed"],
        out_dir=lambda wc, output: Path(output.metrics).parent,
        export=[],
    resources:
        gpu=GPU,
    log:
        f"{LOGS}/eval/{{ft_protocol}}_{{modality}}_{{eval_stream}}.log",
    benchmark:
        f"{BENCH}/eval/{{ft_protocol}}_{{modality}}_{{eval_stream}}.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        FINETUNE_SHELL


rule eval_ensemble:
    input:
        [f"{RES.protocol_dir('finetune')}/{m}/{s}/{f}" for m in EVAL_MODALITIES for s in modality_streams(m, EVAL_STREAMS)
         for f in ("metrics.json", "scores.npz")],
    output:
        RES.protocol_metrics("ensemble"),
    params:
        members=[a for m in EVAL_MODALITIES for s in modality_streams(m, EVAL_STREAMS)
                 for a in ("--member", f"{member_name(m, s)}={RES.protocol_metrics('finetune', m, s)}")],
        out_dir=lambda wc, output: Path(output[0]).parent,
        cfg=params_json("eval_ensemble"),
    log:
        f"{LOGS}/eval/ensemble.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm eval ensemble {params.members:q} --out-dir {params.out_dir:q} "
        "--params {params.cfg:q} > {log:q} 2>&1"


# the emotion model reads MG-FM-Skele (the streams of eval.emotion.skeleton_streams) and MG-FM-RGB
EMOTION_MEMBERS = emotion_members(EVAL_MODALITIES, EVAL_STREAMS, EVAL["emotion"]["skeleton_streams"])
EMOTION_FEATURES = [RES.features(m, s, "video_clips") for m, s in EMOTION_MEMBERS]


rule eval_emotion:
    input:
        features=ancient(EMOTION_FEATURES),
        feature_records=record_input(EMOTION_FEATURES),
        manifest=TABLES["manifest"],
    output:
        RES.protocol_metrics("emotion"),
    params:
        members=[a for m, s in EMOTION_MEMBERS for a in ("--member", f"{member_name(m, s)}={RES.features(m, s, 'video_clips')}")],
        out_dir=lambda wc, output: Path(output[0]).parent,
        cfg=params_json("eval_emotion"),
        seed=config["seed"],
    log:
        f"{LOGS}/eval/emotion.log",
    benchmark:
        f"{BENCH}/eval/emotion.tsv"
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm eval emotion {params.members:q} --manifest {input.manifest:q} "
        "--out-dir {params.out_dir:q} --params {params.cfg:q} "
        "--seed {params.seed:q} --threads {threads} > {log:q} 2>&1"


# the win/lose aggregator inference applies to spotted windows: the skeleton members of the emotion protocol
# (windows have no RGB features), trained as its first seed on every labeled train video
EMOTION_MODEL_MEMBERS = [(m, s) for m, s in EMOTION_MEMBERS if m == "skeleton"]
EMOTION_MODEL_FEATURES = [RES.features(m, s, "video_clips") for m, s in EMOTION_MODEL_MEMBERS]
EMOTION_MODEL_ENCODERS = [RES.encoder(m, s) for m, s in EMOTION_MODEL_MEMBERS]


rule eval_emotion_model:
    input:
        features=ancient(EMOTION_MODEL_FEATURES),
        feature_records=record_input(EMOTION_MODEL_FEATURES),
        encoders=ancient(EMOTION_MODEL_ENCODERS),
        encoder_records=record_input(EMOTION_MODEL_ENCODERS),
        manifest=TABLES["manifest"],
    output:
        info=f"{RES.emotion_dir}/emotion.json",
        weights=f"{RES.emotion_dir}/aggregator.safetensors",
    params:
        cfg=params_json("eval_emotion_model"),
        seed=config["seed"],
        members=[a for m, s in EMOTION_MODEL_MEMBERS for a in (
            "--member", f"{member_name(m, s)}={RES.features(m, s, 'video_clips')}",
            "--encoder", f"{member_name(m, s)}={m}/{s}")],
        out_dir=lambda wc, output: Path(output.info).parent,
    log:
        f"{LOGS}/eval/emotion_model.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm eval emotion-model {params.members:q} --manifest {input.manifest:q} --out-dir {params.out_dir:q} "
        "--params {params.cfg:q} --seed {params.seed:q} --threads {threads} > {log:q} 2>&1"


rule eval_tables:
    input:
        # the protocols that run (DATA_PLAN): a skipped one's table says why, from --skipped
        [RES.protocol_metrics(p, m) for p in ("linear_probe", "retrieval") if EVAL_RUNS(p)
         for m in EVAL_MODALITIES],
        [RES.protocol_metrics(p, m, s) for p in ("semi_supervised", "finetune", "scratch") if EVAL_RUNS(p)
         for m in EVAL_MODALITIES for s in modality_streams(m, EVAL_STREAMS)],
        [RES.protocol_metrics(p) for p in ("ensemble", "emotion") if EVAL_RUNS(p)],
    output:
        [RES.table(t, ext) for t in EVAL_TABLE_NAMES for ext in TABLE_FORMATS],
    params:
        dirs=EVAL_PATHS,
        cfg=params_json("eval_tables"),
        dataset=DATASET_LABEL,
        skipped=SKIPPED_JSON,
    log:
        f"{LOGS}/eval/tables.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm tables render --eval-dir {params.dirs[eval]:q} --out-dir {params.dirs[tables]:q} --params {params.cfg:q} "
        "--dataset {params.dataset:q} --skipped {params.skipped:q} > {log:q} 2>&1"


rule eval_report:
    input:
        tables=[RES.table(t, "md") for t in EVAL_TABLE_NAMES],
        clips_tables=CLIPS_REPORT_TABLES,
        clips_figures=CLIPS_REPORT_FIGURES,
        spotting_tables=[RES.table(t, "md") for t in SPOTTING_TABLES] if EVAL_RUNS("spotting") else [],
        scores=[f"{RES.protocol_dir('linear_probe')}/{m}/scores.npz" for m in EVAL_MODALITIES] if EVAL_RUNS("linear_probe")
        else [],
        test_features=ancient(TEST_FEATURES),
        test_feature_records=record_input(TEST_FEATURES),
        taxonomy=TABLES["taxonomy"],
        manifest=TABLES["manifest"],
        annotations=TABLES["annotations"],
    output:
        report=RES.report,
        figures=[RES.figure("confusion_best.png"), RES.figure("embedding_test.png")],
    params:
        dirs=EVAL_PATHS,
        cfg=params_json("eval_report"),
        seed=config["seed"],
        extra=lambda wc, input: [*(a for t in input.clips_tables for a in ("--extra-table", t)),
                                 *(a for f in input.clips_figures for a in ("--extra-figure", f))],
        dataset=DATASET_LABEL,
        digest=CONFIG_DIGEST,
        benchmarks=BENCH,
        skipped=SKIPPED_JSON,
    log:
        f"{LOGS}/eval/report.log",
    conda:
        "../../envs/mgfm.yaml"
    shell:
        "mgfm tables report --out {output.report:q} --tables-dir {params.dirs[tables]:q} --eval-dir {params.dirs[eval]:q} "
        "--features-dir {params.dirs[features]:q} --models-dir {params.dirs[models]:q} "
        "--figures-dir {params.dirs[figures]:q} "
        "--taxonomy {input.taxonomy:q} --manifest {input.manifest:q} --annotations {input.annotations:q} "
        "--dataset {params.dataset:q} --config-digest {params.digest:q} --benchmarks-dir {params.benchmarks:q} "
        "{params.extra:q} --skipped {params.skipped:q} --params {params.cfg:q} --seed {params.seed:q} > {log:q} 2>&1"


TARGETS["eval"] = [RES.table(t, ext) for t in EVAL_TABLE_NAMES for ext in TABLE_FORMATS] + [
    RES.report
]

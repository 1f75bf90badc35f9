"""Which config keys each workflow step reads: the rule passes exactly these, the step resolves exactly these.

Snakemake reruns a job when its params change, so a rule given a whole section reruns on a change of any key in
it (a new figure x-range would resample every clip). Each rule therefore passes ``step_params(step, config)``,
and the function behind it resolves its ``--params`` with ``resolve_step(step, values)``, which keeps only the
same keys: a step that read a key missing here would fail with a KeyError in its first test instead of
silently depending on a default its rule never passes.
"""

from __future__ import annotations

from collections.abc import Mapping

from mgfm.config import ConfigError, resolve

# step (rule name) -> (config section, top-level keys of it that the step reads; None = the whole section)
STEPS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "download_video": ("download", None),
    # the demo's per-video records: which urls are local files (mgfm.ingest.records)
    "video_records": ("download", ("ytdlp_hosts",)),
    "pose": ("pose", None),
    "sample_clips": ("clips", ("prior", "quota", "tau", "retry_budget", "min_video_fraction")),
    "iod": ("clips", ("prior", "tau", "retry_budget", "iod_quotas", "iod_taus", "iod_tau_table_quota")),
    "duration_figure": ("clips", ("prior", "figure_max_s")),
    "pack_skeleton": ("skeleton", None),
    "pack_rgb": ("rgb", None),
    "pretrain_skeleton": ("pretrain", ("model", "loss", "augment", "train")),
    "extract_features": ("pretrain", ("features",)),
    # Stage 2 reads Stage 1's model file, so Stage 1's keys reach it through that input, never through params
    "pretrain_rgb_stage1": ("rgb_pretrain", ("model", "init", "teacher", "masking", "motion", "augment",
                                             "decay_exempt", "stage1")),
    "pretrain_rgb_stage2": ("rgb_pretrain", ("model", "teacher", "masking", "augment", "decay_exempt", "stage2")),
    "extract_rgb_features": ("rgb_pretrain", ("features",)),
    "eval_linear_probe": ("eval", ("linear_probe", "seeds", "validation", "verify_clips", "streams")),
    "eval_retrieval": ("eval", ("retrieval", "streams")),
    # the three fine-tuning protocols share one rule; only the semi-supervised one reads its fraction
    "eval_semi_supervised": ("eval", ("finetune", "semi_supervised", "seeds", "validation")),
    "eval_finetune": ("eval", ("finetune", "seeds", "validation")),
    "eval_scratch": ("eval", ("finetune", "seeds", "validation")),
    "eval_ensemble": ("eval", ("ensemble", "seeds", "validation", "modalities", "streams")),
    "eval_emotion": ("eval", ("emotion", "seeds", "modalities", "streams")),
    # the emotion aggregator inference applies: trained as the protocol's first seed (its members are the rule's)
    "eval_emotion_model": ("eval", ("emotion", "seeds")),
    "eval_tables": ("eval", ("modalities", "streams")),
    "eval_report": ("eval", ("report", "modalities", "streams")),
    # inference reads the classifiers eval_finetune exports and eval_emotion_model's aggregator
    "infer_calibrate": ("infer", ("windows", "merge", "evaluate", "batch_size")),
    # spotting the labeled test videos (and, with the same keys, the videos a user lists: rule infer_video)
    "infer_spot": ("infer", ("batch_size",)),
}


def _step(step: str) -> tuple[str, tuple[str, ...] | None]:
    try:
        return STEPS[step]
    except KeyError:
        raise ConfigError(f"unknown workflow step {step!r} (steps: {', '.join(STEPS)})") from None


def step_keys(step: str) -> tuple[str, tuple[str, ...] | None]:
    """(section, keys) that ``step`` reads; keys is None when it reads the whole section."""
    return _step(step)


def resolve_step(step: str, values: Mapping | None = None) -> dict:
    """``values`` (the step's slice, or its whole section) validated, defaults filled, cut to the step's keys."""
    section, keys = _step(step)
    return resolve(section, values, keys=keys)


def step_params(step: str, config: Mapping) -> dict:
    """The slice of a whole (resolved) workflow config that a rule passes to its step as ``--params``."""
    section, _ = _step(step)
    return resolve_step(step, config.get(section))

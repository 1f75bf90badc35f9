"""What a dataset's size allows, decided from its tables while the workflow parses, before the first job:

- which protocols run, and why each of the others does not: left out by the config (``eval.protocols``,
  ``infer.spotting``) or not runnable on this data (too few training clips, no validation subjects). A skipped
  protocol is no job; its table, the report and the console give the reason, and the run goes on;
- which batch sizes exceed the clips their stage will have: each such stage trains with its clip count (one
  warning naming the key, on the console here and in the job's log), in every stage alike;
- whether validation subjects can be held out at all.

The counts are the protocols' own: the MG-instance datasets are the annotated instances of the labeled train and
test videos, and the validation subjects and the semi-supervised subset are drawn by ``mgfm.eval.splits`` with the
seeds the protocols use. The pretraining clips exist only once sampled: their bound (``clips.quota`` per unlabeled
video) is checked here, their count in the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from mgfm.common.seeding import derive_seed
from mgfm.eval.splits import semi_supervised_rows, validation_rows

#: the paper's protocols (Tables VIII-XIII), as config key eval.protocols names them
PROTOCOLS = ("linear_probe", "retrieval", "semi_supervised", "finetune", "scratch", "ensemble", "emotion")
SPOTTING = "spotting"
#: fine-tuning trains on at least this many clips (batch norm needs two samples)
MIN_FINETUNE_CLIPS = 2


class PlanError(ValueError):
    """Data the workflow cannot run at all; the message names what is missing and the config key or table."""


@dataclass
class DataPlan:
    """Protocols (and ``spotting``) that do not run, with the reason; warnings about the data's size."""

    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def runs(self, name: str) -> bool:
        return name not in self.skipped

    def console_lines(self) -> list[str]:
        """What the console says before the first job: each warning, then each skipped protocol."""
        return [*self.warnings, *(f"skipped: {name}: {why}" for name, why in self.skipped.items())]


@dataclass(frozen=True)
class _Sizes:
    """The training side of the MG-instance datasets, per seed of eval.seeds."""

    n_train: int
    n_test: int
    subjects: list[str]               # labeled train subjects with annotated instances
    classes: int                      # classes among the training instances
    pool: dict[int, int]              # seed -> training clips outside the validation subjects
    semi: dict[int, int]              # seed -> clips of the semi-supervised subset
    validation: bool                  # whether validation subjects are held out


def _sizes(manifest: pd.DataFrame, annotations: pd.DataFrame, eval_cfg: dict, global_seed: int) -> _Sizes:
    lab = manifest[manifest["subset"] == "labeled"]
    train_ids = set(lab.loc[lab["split"] == "train", "video_id"])
    test_ids = set(lab.loc[lab["split"] == "test", "video_id"])
    subject = dict(zip(manifest["video_id"], manifest["subject_id"].astype(str)))
    train = annotations[annotations["video_id"].isin(train_ids)]
    meta = pd.DataFrame({"subject_id": train["video_id"].map(subject).to_numpy()})
    fraction = float(eval_cfg["validation"]["fraction"])
    subjects = sorted(meta["subject_id"].unique())
    validation = fraction > 0 and len(subjects) >= 2
    pool, semi = {}, {}
    for seed in eval_cfg["seeds"]:
        split_seed = derive_seed(global_seed, "eval", int(seed))
        is_val = validation_rows(meta, fraction if validation else 0.0, split_seed)
        n = int((~is_val).sum())
        pool[int(seed)] = n
        frac = float(eval_cfg["semi_supervised"]["fraction"])
        semi[int(seed)] = len(semi_supervised_rows(n, frac, split_seed)) if n else 0
    return _Sizes(len(train), int(annotations["video_id"].isin(test_ids).sum()), subjects,
                  int(train["class_id"].nunique()) if len(train) else 0, pool, semi, validation)


def _fewest(counts: dict[int, int]) -> tuple[int, int]:
    """(seed, count) of the seed with the fewest clips."""
    seed = min(counts, key=lambda s: (counts[s], s))
    return seed, counts[seed]


def _batch_warning(key: str, batch: int, clips: int, what: str, even: bool = False) -> str | None:
    """The one warning of a batch size above the clips a stage has (None when it fits)."""
    if batch <= clips or clips < 1:
        return None
    used = clips - clips % 2 if even else clips
    return (f"{key} {batch} is more than the {clips} {what}: that stage trains with batch size {used} "
            "(the clip count)")


def _skip_reasons(s: _Sizes, eval_cfg: dict, spotting: bool) -> dict[str, str]:
    """Why each protocol the config asks for cannot run on this data (absent when it can)."""
    why: dict[str, str] = {}
    requested = set(eval_cfg["protocols"])
    for p in PROTOCOLS:
        if p not in requested:
            why[p] = "left out of config key eval.protocols"
    if not spotting:
        why[SPOTTING] = "config key infer.spotting is false"
    no_instances = ("the labeled train videos have no annotated instance" if s.n_train == 0 else
                    "the labeled test videos have no annotated instance" if s.n_test == 0 else "")
    fraction = float(eval_cfg["validation"]["fraction"])
    seed, pool = _fewest(s.pool) if s.pool else (0, 0)
    for p in ("linear_probe", "retrieval", "semi_supervised", "finetune", "scratch", SPOTTING):
        if p not in why and no_instances:
            why[p] = no_instances
    for p in ("finetune", "scratch"):
        if p not in why and pool < MIN_FINETUNE_CLIPS:
            why[p] = (f"{pool} training clip(s) outside the validation subjects (seed {seed}); fine-tuning needs at "
                      f"least {MIN_FINETUNE_CLIPS}: annotate more instances or lower eval.validation.fraction")
    if "linear_probe" not in why and pool < 1:
        why["linear_probe"] = (f"no training clip outside the validation subjects (seed {seed}): lower "
                               "eval.validation.fraction")
    if "semi_supervised" not in why:
        semi_seed, kept = _fewest(s.semi)
        frac = float(eval_cfg["semi_supervised"]["fraction"])
        if kept < MIN_FINETUNE_CLIPS:
            need = MIN_FINETUNE_CLIPS / max(s.pool[semi_seed], 1)
            why["semi_supervised"] = (
                f"eval.semi_supervised.fraction {frac:g} keeps {kept} of the {s.pool[semi_seed]} training clips "
                f"(seed {semi_seed}); fine-tuning needs at least {MIN_FINETUNE_CLIPS}: raise the fraction to "
                f"{min(need, 1.0):.3g} or more, or annotate more instances")
    no_validation = ""
    if fraction <= 0:
        no_validation = "eval.validation.fraction is 0, so there is no validation video"
    elif not s.validation:
        no_validation = (f"eval.validation.fraction {fraction:g} needs at least 2 labeled train subjects with "
                         f"annotated instances, the tables have {len(s.subjects)} ({', '.join(s.subjects[:3])})")
    if "ensemble" not in why:
        if "finetune" in why:
            why["ensemble"] = f"it fuses the finetune protocol's scores, and finetune does not run ({why['finetune']})"
        elif eval_cfg["ensemble"]["select"] == "validation" and no_validation:
            why["ensemble"] = (f"eval.ensemble.select is 'validation' but {no_validation}: hold out validation "
                               "subjects, or set eval.ensemble.select: config with eval.ensemble.weights")
    if SPOTTING not in why:
        first = int(eval_cfg["seeds"][0])
        if no_validation:
            why[SPOTTING] = (f"its threshold is chosen on validation videos and {no_validation}: hold out "
                             "validation subjects (eval.validation.fraction, e.g. 0.25 with 4 or more train "
                             "subjects)")
        elif s.pool[first] < MIN_FINETUNE_CLIPS:
            why[SPOTTING] = (f"its classifiers are fine-tuned on the {s.pool[first]} training clip(s) outside the "
                             f"validation subjects (seed {first}); fine-tuning needs at least {MIN_FINETUNE_CLIPS}")
    return {name: why[name] for name in (*PROTOCOLS, SPOTTING) if name in why}


def _warnings(s: _Sizes, config: dict, skipped: dict[str, str], n_unlabeled: int) -> list[str]:
    eval_cfg = config["eval"]
    out = []
    fraction = float(eval_cfg["validation"]["fraction"])
    if fraction > 0 and not s.validation:
        out.append(f"eval.validation.fraction {fraction:g} needs at least 2 labeled train subjects with annotated "
                   f"instances, the tables have {len(s.subjects)}: no validation subject is held out")
    # pretraining: the sampled clips of the unlabeled videos, at most clips.quota each
    bound = int(config["clips"]["quota"]) * n_unlabeled
    what = (f"clips the sampler can draw from the {n_unlabeled} unlabeled video(s) at most "
            f"(clips.quota {config['clips']['quota']} each)")
    keys = [("pretrain.train.batch_size", int(config["pretrain"]["train"]["batch_size"]))]
    rgb = "rgb" in eval_cfg["modalities"]
    if rgb:
        keys += [(f"rgb_pretrain.{st}.batch_size", int(config["rgb_pretrain"][st]["batch_size"]))
                 for st in ("stage1", "stage2")]
    for key, batch in keys:
        out.append(_batch_warning(key, batch, bound, what))
    # fine-tuning (and the spotting classifiers, trained as the finetune protocol), semi-supervised, linear probe
    ft = eval_cfg["finetune"]
    ft_keys = [("eval.finetune.train.batch_size", int(ft["train"]["batch_size"]))]
    if rgb and ft["rgb"]["train"]["batch_size"] is not None:
        ft_keys.append(("eval.finetune.rgb.train.batch_size", int(ft["rgb"]["train"]["batch_size"])))
    if s.pool:
        seed, pool = _fewest(s.pool)
        semi_seed, semi = _fewest(s.semi)
        for key, batch in ft_keys:
            if any(p not in skipped for p in ("finetune", "scratch", SPOTTING)):
                out.append(_batch_warning(key, batch, pool, f"training clips outside the validation subjects "
                                                            f"(seed {seed})", even=True))
            if "semi_supervised" not in skipped:
                out.append(_batch_warning(key, batch, semi, f"clips of the semi-supervised subset (seed "
                                                            f"{semi_seed})", even=True))
        if "semi_supervised" not in skipped and semi < s.classes:
            out.append(f"eval.semi_supervised.fraction {eval_cfg['semi_supervised']['fraction']:g} keeps {semi} "
                       f"training clips (seed {semi_seed}) for the {s.classes} classes of the training instances: "
                       "most classes have no labeled example in that subset")
        if "linear_probe" not in skipped:
            out.append(_batch_warning("eval.linear_probe.batch_size", int(eval_cfg["linear_probe"]["batch_size"]),
                                      pool, f"training clips outside the validation subjects (seed {seed})"))
    return [w for w in out if w]


def plan_run(manifest: pd.DataFrame, annotations: pd.DataFrame, config: dict) -> DataPlan:
    """The plan of a run on these tables (``manifest``: video_id, subject_id, subset, split; ``annotations``:
    video_id, class_id, start_frame, end_frame) with the resolved ``config``. Raises PlanError when no
    protocol can run at all (no unlabeled video to pretrain on)."""
    n_unlabeled = int((manifest["subset"] == "unlabeled").sum())
    if n_unlabeled == 0:
        raise PlanError("the manifest has no unlabeled video: pretraining reads the sampled clips of the unlabeled "
                        "videos only (subset 'unlabeled', empty split), and every protocol reads the pretrained "
                        "encoders. Add unlabeled videos to config key dataset.manifest's table")
    eval_cfg = config["eval"]
    sizes = _sizes(manifest, annotations, eval_cfg, int(config["seed"]))
    skipped = _skip_reasons(sizes, eval_cfg, bool(config["infer"]["spotting"]))
    return DataPlan(skipped=skipped, warnings=_warnings(sizes, config, skipped, n_unlabeled))


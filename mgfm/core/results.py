"""The results folder's layout, in one place: where every stage's artifacts live under the configured ``results``.

The rules ask ``Results(config["results"])`` for every path they declare, and the stage functions that read a
family of artifacts (the eval protocols, the report) ask the same object, so a folder is renamed here and nowhere
else. A wildcard passes through unchanged: ``Results("results").pose("{video_id}")`` is
``"results/pose/{video_id}.parquet"``, which is how the rules declare per-video outputs.

    results/demo/                        the demo's tables, raw renders, ground-truth keypoints (demo only)
    results/ingest/                      contract check, per-video download records, label-free views
    results/content/                     content records of the large artifacts
    results/videos/, pose/, clips/       normalised videos, pose Parquet, sampled clips
    results/packs/{modality}/{name}/     packed clip datasets
    results/models/{modality}/{stream}/  encoders; models/pose/ (fetched pose models), classifiers/, emotion/
    results/features/{modality}/{stream}/{name}.parquet
    results/eval/{protocol}/...          per-protocol metrics, logs and scores
    results/infer/, tables/, figures/, report.html, benchmarks/
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

#: The RGB branch's evaluated encoder (MG-FM-RGB, SMILE Stage 2) is stream "rgb" of modality "rgb".
RGB_STREAM = "rgb"
#: SMILE's Stage 1 model, the start of Stage 2.
RGB_STAGE1 = "stage1"


#: Folders renamed since the previous release: old name -> new name, under the results folder (and under its
#: content/ and benchmarks/ folders, which mirror it).
RENAMED_FOLDERS = {"dataset": "ingest", "datasets": "packs"}


def migration_moves(root: str | Path) -> list[tuple[Path, Path]]:
    """The (old, new) folder moves that bring a results folder of the previous release to this layout: only
    those whose old folder exists and whose new one does not."""
    root = Path(root)
    moves = []
    for parent in (root, root / "content", root / "benchmarks"):
        for old, new in RENAMED_FOLDERS.items():
            if (parent / old).is_dir() and not (parent / new).exists():
                moves.append((parent / old, parent / new))
    return moves


def migration_message(root: str | Path) -> str | None:
    """What to run before this release can use ``root``, or None when nothing is in the old layout. Without the
    moves every job would run again (its files are where the workflow no longer looks)."""
    moves = migration_moves(root)
    if not moves:
        return None
    mv = " && ".join(f"mv {shlex.quote(str(a))} {shlex.quote(str(b))}" for a, b in moves)
    return (f"{root} holds results of the previous layout ({', '.join(str(a) for a, _ in moves)}). Move them, "
            f"then mark the moved results up to date once (this release renamed commands and folders, not what "
            f"they compute), before changing anything else:\n  {mv}\n  snakemake --touch --cores 1\n"
            "(README, \"Results layout\")")


def feature_file(features_dir: str, modality: str, stream: str, name: str) -> str:
    """A frozen-feature table inside the features folder."""
    return f"{features_dir}/{modality}/{stream}/{name}.parquet"


def model_folder(models_dir: str, modality: str, stream: str) -> str:
    """An encoder's folder (encoder.safetensors, card.json, train_log.csv) inside the models folder."""
    return f"{models_dir}/{modality}/{stream}"


def pack_folder(packs_dir: str, modality: str, name: str) -> str:
    """A packed clip dataset inside the packs folder."""
    return f"{packs_dir}/{modality}/{name}"


def metrics_file(eval_dir: str, protocol: str, modality: str | None = None, stream: str | None = None) -> str:
    """A protocol's metrics.json: per protocol, per modality, or per (modality, stream)."""
    parts = [p for p in (modality, stream) if p is not None]
    return "/".join((str(eval_dir), protocol, *parts, "metrics.json"))


@dataclass(frozen=True)
class Results:
    """Paths under one results folder (strings, as Snakemake declares them)."""

    root: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", str(self.root).rstrip("/") or ".")

    def _(self, *parts: str) -> str:
        return "/".join((self.root, *parts))

    # ---- the folders of each stage -------------------------------------------------------------------
    @property
    def demo_dir(self) -> str:
        return self._("demo")

    @property
    def videos_dir(self) -> str:
        return self._("videos")

    @property
    def pose_dir(self) -> str:
        return self._("pose")

    @property
    def packs_dir(self) -> str:
        return self._("packs")

    @property
    def models_dir(self) -> str:
        return self._("models")

    @property
    def features_dir(self) -> str:
        return self._("features")

    @property
    def eval_dir(self) -> str:
        return self._("eval")

    @property
    def infer_dir(self) -> str:
        return self._("infer")

    @property
    def tables_dir(self) -> str:
        return self._("tables")

    @property
    def figures_dir(self) -> str:
        return self._("figures")

    @property
    def benchmarks_dir(self) -> str:
        return self._("benchmarks")

    # ---- ingest --------------------------------------------------------------------------------------
    @property
    def validated(self) -> str:
        return self._("ingest", "validated.json")

    @property
    def annotations_checked(self) -> str:
        return self._("ingest", "annotations_checked.json")

    @property
    def video_records_dir(self) -> str:
        return self._("ingest", "videos")

    @property
    def label_free_dir(self) -> str:
        return self._("ingest", "label_free")

    def video(self, video_id: str) -> str:
        return self._("videos", f"{video_id}.mp4")

    def video_meta(self, video_id: str) -> str:
        return self._("videos", f"{video_id}.json")

    # ---- pose, clips, packs --------------------------------------------------------------------------
    def pose(self, video_id: str) -> str:
        return self._("pose", f"{video_id}.parquet")

    @property
    def pose_models_dir(self) -> str:
        return self._("models", "pose")

    @property
    def clip_table(self) -> str:
        return self._("clips", "clips.parquet")

    @property
    def sampler_stats(self) -> str:
        return self._("clips", "sampler_stats.csv")

    @property
    def iod(self) -> str:
        return self._("clips", "iod.json")

    def pack(self, modality: str, name: str) -> str:
        return pack_folder(self.packs_dir, modality, name)

    # ---- models and features -------------------------------------------------------------------------
    def model_dir(self, modality: str, stream: str) -> str:
        return model_folder(self.models_dir, modality, stream)

    def encoder(self, modality: str, stream: str) -> str:
        return f"{self.model_dir(modality, stream)}/encoder.safetensors"

    def card(self, modality: str, stream: str) -> str:
        return f"{self.model_dir(modality, stream)}/card.json"

    def smile_model(self, stage: str) -> str:
        """The whole SMILE model (student + decoder) of an RGB stage, what the next stage starts from."""
        return f"{self.model_dir('rgb', stage)}/smile_model.safetensors"

    def features(self, modality: str, stream: str, name: str) -> str:
        return feature_file(self.features_dir, modality, stream, name)

    # ---- what inference loads ------------------------------------------------------------------------
    @property
    def classifiers_dir(self) -> str:
        return self._("models", "classifiers")

    @property
    def emotion_dir(self) -> str:
        return self._("models", "emotion")

    @property
    def spotter(self) -> str:
        return self._("models", "spotter.json")

    # ---- evaluation and reporting --------------------------------------------------------------------
    def protocol_dir(self, protocol: str) -> str:
        return self._("eval", protocol)

    def protocol_metrics(self, protocol: str, modality: str | None = None, stream: str | None = None) -> str:
        return metrics_file(self.eval_dir, protocol, modality, stream)

    def table(self, name: str, ext: str) -> str:
        return self._("tables", f"{name}.{ext}")

    def figure(self, name: str) -> str:
        return self._("figures", name)

    @property
    def report(self) -> str:
        return self._("report.html")

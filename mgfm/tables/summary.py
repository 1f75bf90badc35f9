"""What the report opens with: which dataset the numbers come from, its size, the run that made them, and the
main results beside the paper's and beside the chance and majority-class baselines.

Everything here is read from the run's own files (dataset tables, protocol metrics, Snakemake benchmark files)
or from the machine at report time (git revision, package versions, device), never written in by hand: a
report made from the synthetic demo says so in its title, in its headline and in every table caption.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mgfm.common.digest import sha256_file
from mgfm.ingest.contract import load_annotations, load_manifest, load_taxonomy

#: packages whose versions decide the numbers (the report lists the installed ones)
PACKAGES = ("mgfm", "torch", "numpy", "pandas", "onnxruntime", "snakemake", "decord", "opencv-python-headless")


#: how every label of the embedded demo begins (the report recognises a demo run by it)
DEMO_LABEL = "the synthetic demo corpus"


def is_demo_label(label: str | None) -> bool:
    return bool(label) and label.startswith(DEMO_LABEL)


@dataclass(frozen=True)
class DatasetId:
    """Which dataset a run used: the embedded demo (and its seed) or a manifest (and its digest)."""

    source: str                 # demo | files
    demo_seed: int | None
    manifest: str
    manifest_sha256: str

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"

    @property
    def short(self) -> str:
        """For titles and captions."""
        if self.is_demo:
            return f"{DEMO_LABEL} (seed {self.demo_seed}), not iMiGUE-3K"
        return f"manifest {Path(self.manifest).name} (sha256 {self.manifest_sha256[:12]})"


def dataset_id(source: str, manifest: str | os.PathLike, demo_seed: int | None = None) -> DatasetId:
    """The identity of the dataset behind ``manifest`` (``source``: config key dataset.source). The demo is
    named by its seed (its manifest need not exist yet: the workflow names it before rendering it); a files
    dataset by its manifest's sha256."""
    if source not in ("demo", "files"):
        raise ValueError(f"config key dataset.source: expected 'demo' or 'files', got {source!r}")
    if source == "demo":
        if demo_seed is None:
            raise ValueError("the demo dataset needs its seed (config key dataset.demo.seed)")
        return DatasetId(source, int(demo_seed), str(manifest), "")
    return DatasetId(source, None, str(manifest), sha256_file(manifest))


def dataset_label(source: str, manifest: str | os.PathLike, demo_seed: int | None = None) -> str:
    """What every caption and the report's title name as the data of this run."""
    return dataset_id(source, manifest, demo_seed).short


def dataset_summary(manifest: str | os.PathLike, annotations: str | os.PathLike,
                    taxonomy: str | os.PathLike) -> pd.DataFrame:
    """Videos, subjects and MG instances per split (train, test, unlabeled, all) and the number of classes."""
    man = load_manifest(manifest)
    ann = load_annotations(annotations)
    n_classes = len(load_taxonomy(taxonomy))
    split = man["split"].where(man["subset"] == "labeled", "unlabeled").replace("", "unlabeled")
    per_video = ann.groupby("video_id").size()
    rows = []
    for name in ("train", "test", "unlabeled"):
        vids = man.loc[split == name]
        rows.append({"split": name, "videos": len(vids), "subjects": vids["subject_id"].nunique(),
                     "instances": int(per_video.reindex(vids["video_id"]).fillna(0).sum()),
                     "classes present": int(ann.loc[ann["video_id"].isin(vids["video_id"]), "class_id"].nunique())})
    rows.append({"split": "all", "videos": len(man), "subjects": man["subject_id"].nunique(),
                 "instances": len(ann), "classes present": int(ann["class_id"].nunique())})
    out = pd.DataFrame(rows)
    out.attrs["num_classes"] = n_classes
    return out


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_describe() -> str:
    """The checkout's revision (and '+ local changes' when its tracked files differ), or why there is none."""
    where = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=where)
        if rev.returncode:
            return "not a git checkout"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=where).stdout.strip()
        return rev.stdout.strip() + (" + local changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


def device_description() -> str:
    """GPUs torch sees, else the CPU model and core count (of the machine that writes the report)."""
    try:
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            return ", ".join(f"{n} x{names.count(n)}" for n in dict.fromkeys(names))
    except Exception:  # noqa: BLE001 - a broken CUDA setup must not stop the report
        pass
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} logical cores, no GPU"


def stage_wall_times(benchmarks_dir: str | os.PathLike) -> pd.DataFrame:
    """Wall time per stage (first folder level of the benchmark files; top-level files by name): jobs, summed
    seconds, longest job. Empty when no benchmark file exists."""
    root = Path(benchmarks_dir)
    rows = []
    for f in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        rel = f.relative_to(root)
        stage = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        try:
            s = float(pd.read_csv(f, sep="\t")["s"].sum())
        except (KeyError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        rows.append({"stage": stage, "s": s})
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "total_s", "longest_s"])
    df = pd.DataFrame(rows)
    return (df.groupby("stage", sort=False)["s"].agg(jobs="count", total_s="sum", longest_s="max").reset_index())


def fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"

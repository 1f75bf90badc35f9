#!/usr/bin/env python3
"""DAG scale benchmark: a dry run of the whole workflow for a synthetic manifest of the paper's size.

Writes a synthetic iMiGUE-3K-shaped release (3,484 videos: 248 + 93 labeled train/test, 3,143 unlabeled; 32
classes; a few annotations per labeled video) to a temporary folder, then times two dry runs of the default
target from the repository:
  1. baseline: the local profile (no grouping): every job is its own unit;
  2. the SLURM profile (profiles/slurm): per-video rules batched with groups/group-components.
It reports the DAG (dry-run) wall time, the number of jobs, and the number of cluster submissions after grouping
(group jobs + ungrouped non-local jobs), with the ratios to the baseline. Targets (issue 7): the dry run under a
minute, the full corpus in at most a few hundred submissions.

    python benchmarks/bench_dag.py [--videos 3484] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 60.0
TARGET_SUBMISSIONS = 500

GROUP_LINE = re.compile(r"Group job (\S+) \(jobs in lexicogr\. order\):")
TOP_RULE_LINE = re.compile(r"^(local)?rule (\w+):")


def declared_local_rules() -> set[str]:
    """Rules whose jobs Snakemake runs itself, never submitted (`localrule: True`): a dry run prints them as
    plain rules, so they are read from the rule files."""
    local, rule = set(), None
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        for line in path.read_text().splitlines():
            if m := re.match(r"^\s*rule (\w+):", line):
                rule = m.group(1)
            elif rule and re.match(r"^\s+localrule:\s*True", line):
                local.add(rule)
    return local


LOCAL_RULES = declared_local_rules()


def write_tables(folder: Path, n_videos: int) -> dict[str, str]:
    """A manifest/annotations/taxonomy triple in the dataset contract's format, shaped like iMiGUE-3K."""
    n_train, n_test = round(n_videos * 248 / 3484), round(n_videos * 93 / 3484)
    n_unlabeled = n_videos - n_train - n_test
    folder.mkdir(parents=True, exist_ok=True)
    taxonomy = folder / "taxonomy.csv"
    groups = ("Head", "Body", "Hand", "Body-Hand", "Head-Hand", "non-MG")
    with taxonomy.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class_id", "name", "group"])
        for c in range(32):
            w.writerow([c, f"class_{c:02d}", groups[c % len(groups)]])
    manifest = folder / "manifest.csv"
    annotations = folder / "annotations.csv"
    with manifest.open("w", newline="") as fm, annotations.open("w", newline="") as fa:
        m, a = csv.writer(fm), csv.writer(fa)
        m.writerow(["video_id", "url", "subject_id", "outcome", "subset", "split"])
        a.writerow(["video_id", "class_id", "start_frame", "end_frame"])
        plan = [("labeled", "train")] * n_train + [("labeled", "test")] * n_test + [("unlabeled", "")] * n_unlabeled
        for i, (subset, split) in enumerate(plan):
            vid = f"v{i:05d}"
            # subject-disjoint splits: train subjects 0-36, test 37-74, unlabeled 75+
            subject = {"train": i % 37, "test": 37 + i % 38}.get(split, 75 + i % 400)
            m.writerow([vid, f"https://example.org/imigue3k/{vid}.mp4", f"s{subject:03d}",
                        "win" if i % 5 else "lose", subset, split])
            if subset == "labeled":
                for k in range(4):
                    a.writerow([vid, (i + k) % 32, 100 + 300 * k, 160 + 300 * k])
    return {"source": "files", "manifest": str(manifest), "annotations": str(annotations), "taxonomy": str(taxonomy)}


def dry_run(workdir: Path, dataset: dict, profile: str | None) -> dict:
    """Time `snakemake -n` of the default target and count jobs and submissions in its output."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(ROOT / "workflow" / "configs" / "paper.yaml"),
           "--config", f"dataset={json.dumps(dataset)}"]
    if profile:
        cmd += ["--workflow-profile", str(ROOT / "profiles" / profile)]
    else:
        cmd += ["--workflow-profile", "none", "--cores", "1"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"dry run failed ({' '.join(cmd[:6])} ...)")
    groups: Counter = Counter()
    jobs: Counter = Counter()
    top_level: Counter = Counter()
    local_jobs = 0
    for line in proc.stdout.splitlines() + proc.stderr.splitlines():
        if g := GROUP_LINE.search(line):
            groups[g.group(1)] += 1
        elif t := TOP_RULE_LINE.match(line):
            top_level[t.group(2)] += 1
            # the default target has no command: snakemake finishes it locally, nothing is submitted
            local_jobs += bool(t.group(1)) or t.group(2) == "all" or t.group(2) in LOCAL_RULES
        elif t := re.match(r"^\s+(local)?rule (\w+):", line):
            jobs[t.group(2)] += 1
    for rule, n in top_level.items():
        jobs[rule] += n
    submissions = sum(groups.values()) + sum(top_level.values()) - local_jobs
    return {"seconds": seconds, "jobs": sum(jobs.values()), "jobs_per_rule": dict(jobs),
            "groups": dict(groups), "submissions": submissions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3484, help="videos in the synthetic manifest")
    parser.add_argument("--keep", type=Path, help="write the tables and dry-run workdir here and keep them")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mgfm-bench-dag-")) if args.keep is None else args.keep
    try:
        dataset = write_tables(tmp / "tables", args.videos)
        workdir = tmp / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        # rules name a few repository files by relative path (e.g. the demo pose model under mgfm/): make them
        # visible from the scratch working directory, which keeps this repository's results/ out of the count
        for name in ("mgfm",):
            if not (workdir / name).exists():
                (workdir / name).symlink_to(ROOT / name)
        # the slurm profile's partition/account (mgfm.common.slurm) ask scontrol only when these are unset
        os.environ.setdefault("MGFM_SLURM_PARTITION_NEEDED", "no")
        os.environ.setdefault("MGFM_SLURM_ACCOUNT_NEEDED", "no")
        base = dry_run(workdir, dataset, None)
        slurm = dry_run(workdir, dataset, "slurm")
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"synthetic manifest: {args.videos} videos")
    print(f"jobs in the DAG: {slurm['jobs']}  (" + ", ".join(f"{r} {n}" for r, n in
                                                       sorted(slurm['jobs_per_rule'].items())) + ")")
    print(f"dry run, local profile (baseline): {base['seconds']:.1f} s, {base['submissions']} units of work")
    print(f"dry run, slurm profile:            {slurm['seconds']:.1f} s, {slurm['submissions']} cluster submissions "
          f"({', '.join(f'{g} {n}' for g, n in sorted(slurm['groups'].items()))} group jobs)")
    print(f"ratio dry-run time slurm/baseline: {slurm['seconds'] / base['seconds']:.2f}")
    print(f"ratio submissions slurm/jobs: {slurm['submissions'] / max(slurm['jobs'], 1):.3f} "
          f"({slurm['jobs'] / max(slurm['submissions'], 1):.1f} jobs per submission)")
    ok_time = slurm["seconds"] < TARGET_SECONDS
    ok_subs = slurm["submissions"] <= TARGET_SUBMISSIONS
    print(f"target dry run < {TARGET_SECONDS:.0f} s: {'met' if ok_time else 'MISSED'} "
          f"(ratio to target {slurm['seconds'] / TARGET_SECONDS:.2f}); "
          f"target <= {TARGET_SUBMISSIONS} submissions: {'met' if ok_subs else 'MISSED'}")
    return 0 if ok_time and ok_subs else 1


if __name__ == "__main__":
    sys.exit(main())

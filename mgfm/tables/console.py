"""The last lines a workflow run prints (the Snakefile's ``onsuccess:`` handler): where the report is, and
the headline numbers, each protocol on one line, read from the run's metrics."""

from __future__ import annotations

import os
from pathlib import Path

from mgfm.tables.build import headline_results


def _group(rows: list[dict], prefix: str) -> list[dict]:
    return [r for r in rows if r["result"].startswith(prefix)]


def _line(label: str, rows: list[dict]) -> str | None:
    if not rows:
        return None
    parts = ", ".join(f"{r['result'].split(', ', 1)[1]} {r['ours']['mean']:.1f}" for r in rows)
    base = rows[0]
    tail = ""
    if base.get("chance") is not None and base.get("majority") is not None:
        tail = f" (chance {base['chance']:.1f}, majority class {base['majority']:.1f})"
    return f"  {label}: {parts}{tail}"


def success_lines(results: str | os.PathLike, modalities: list[str], streams: list[str],
                  dataset: str | None = None, skipped: dict[str, str] | None = None) -> list[str]:
    """What to print after a successful run: the report's path (or where the results are, when this run did
    not make it), one line per protocol (last-epoch Top-1 in percent, mean over seeds), spotting's F1 at tIoU
    0.3 beside its class-prior baseline, and each protocol that did not run (``skipped``) with its reason."""
    from mgfm.tables.spotting import spotting_headline

    results = Path(results)
    skipped = skipped or {}
    report = results / "report.html"
    if not report.is_file():
        return [f"Done. Results are under {results}/ (this run did not build {report})."]
    lines = [f"Done. Open {report}" + (f" (made from {dataset})" if dataset else "")]
    rows, _ = headline_results(results / "eval", modalities, streams, skipped)
    for label, prefix in (("Linear probe Top-1", "Linear probe"), ("Fine-tuned Top-1", "Fine-tuned"),
                          ("From scratch Top-1", "From scratch"), ("Semi-supervised Top-1", "Semi-supervised"),
                          ("Retrieval Top-1", "Retrieval")):
        line = _line(label, _group(rows, prefix))
        if line:
            lines.append(line)
    emotion = _group(rows, "Emotion")
    if emotion:
        r = emotion[0]
        lines.append(f"  Emotion accuracy: {r['ours']['mean']:.1f} (majority outcome {r['majority']:.1f})")
    spot = None if "spotting" in skipped else spotting_headline(results / "eval" / "spotting" / "metrics.json")
    if spot is not None:
        lines.append(f"  Spotting F1 at tIoU {spot['tiou']}: {spot['f1']:.1f} (class-prior baseline "
                     f"{spot['baseline_f1']:.1f}; {spot['n_test_videos']} test videos)")
    lines += [f"  Not run: {name}: {why}" for name, why in skipped.items()]
    return lines

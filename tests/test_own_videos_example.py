"""docs/own-videos.md's worked example, run as written: its shell blocks (``bash worked-example``) in order from the
repository's checkout, its config block (``yaml worked-example <file>``) saved where it says, from ten rendered
videos to the report; then what the page promises: the skipped protocol and its reason, said before the first job
and in the closing lines, every table, and the report."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.workflow import REPO

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]

DOC = REPO / "docs" / "own-videos.md"
BLOCK = re.compile(r"^```(bash|yaml) worked-example ?(\S*)\n(.*?)^```$", re.M | re.S)


def example_blocks() -> list[tuple[str, str, str]]:
    """(language, file name or "", text) of each block of the worked example, in the page's order."""
    return [m.groups() for m in BLOCK.finditer(DOC.read_text())]


def test_the_page_has_the_example():
    kinds = [(lang, name) for lang, name, _ in example_blocks()]
    assert kinds == [("bash", ""), ("yaml", "example.yaml"), ("bash", "")]


def test_the_worked_example_runs_from_videos_to_report(tmp_path):
    mg = tmp_path / "mg-example"
    env = {**os.environ, "MG": str(mg), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    console = []
    start = time.monotonic()
    for lang, name, text in example_blocks():
        if lang == "yaml":
            (mg / name).write_text(text)
            continue
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", text], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=1200)
        console.append(proc.stdout + proc.stderr)
        assert proc.returncode == 0, f"{text}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    minutes = (time.monotonic() - start) / 60
    out = console[-1]
    # what the page says the console says, word for word
    quoted = re.search(r'"(skipped: semi_supervised: .*?)"', " ".join(DOC.read_text().split())).group(1)
    lines = out.splitlines()
    assert quoted in lines, out[-4000:]
    assert lines.index(quoted) < next(i for i, line in enumerate(lines) if line.startswith("["))  # before any job
    assert any(line.startswith("eval.finetune.train.batch_size 32 is more than the 11 training clips") for line in lines)
    assert f"Done. Open results-own/report.html (made from manifest manifest.csv" in out
    assert "  Not run: semi_supervised: eval.semi_supervised.fraction 0.1 keeps 1" in out
    assert re.search(r"^  Spotting F1 at tIoU 0\.3: \d+\.\d \(class-prior baseline \d+\.\d; 2 test videos\)$", out,
                     re.M), out[-3000:]
    res = mg / "results-own"
    report = (res / "report.html").read_text()
    assert "<strong>semi_supervised</strong>: eval.semi_supervised.fraction 0.1 keeps 1" in report
    assert "Spotting in the untrimmed test videos (2 videos" in report
    assert "Not run: semi_supervised: eval.semi_supervised.fraction 0.1" in (res / "tables" / "table9_semi_supervised.md").read_text()
    for table in ("table8_linear_probe", "table10_finetune", "table11_ensemble", "table12_retrieval",
                  "table13_emotion", "table_spotting"):
        assert (res / "tables" / f"{table}.md").is_file(), table
    assert not (REPO / ".snakemake" / "log").exists() or not any(
        p.stat().st_mtime > time.time() - 60 * minutes - 60 for p in (REPO / ".snakemake" / "log").iterdir())
    print(f"worked example: {minutes:.1f} min")

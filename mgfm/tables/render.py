r"""A generic table writer: one table -> Markdown, CSV and LaTeX files written atomically, same stem.

Every table of the package goes through it (Tables VI-XIII): give display cells for people (Markdown,
LaTeX) and, optionally, raw records for machines (CSV; defaults to the display cells). The caption holds no
"Table VIII:" of its own: Markdown prints the number before it, LaTeX numbers its tables itself. A method's
citation as the paper prints it ("BlockGCN [blockgcn]") becomes ``\cite{blockgcn}`` in LaTeX, and
``references.bib`` beside the tables holds every key (``mgfm.tables.bib``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mgfm.common.atomic import atomic_path


@dataclass
class Table:
    name: str                                  # file stem, e.g. "table8_linear_probe"
    title: str                                 # the caption, without "Table VIII:"
    columns: list[str]
    rows: list[list[str]]                      # display cells, one list per row
    notes: list[str] = field(default_factory=list)
    records: list[dict] | None = None          # raw values for the CSV (default: the display cells)
    number: str = ""                           # "VIII": Markdown's heading says "Table VIII: <title>"
    groups: dict[int, str] = field(default_factory=dict)   # row index -> group heading printed above that row

    @property
    def heading(self) -> str:
        return f"Table {self.number}: {self.title}" if self.number else self.title

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.name}: row {i} has {len(row)} cells for {len(self.columns)} columns")
        bad = [i for i in self.groups if not 0 <= i < len(self.rows)]
        if bad:
            raise ValueError(f"table {self.name}: group headings before rows {bad}, which do not exist")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    lines = [f"### {table.heading}", "", "| " + " | ".join(_md_cell(c) for c in table.columns) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    for i, row in enumerate(table.rows):
        if i in table.groups:       # a group heading as the paper prints it: a row with only its first cell
            lines.append(f"| **{_md_cell(table.groups[i])}** |" + " |" * (len(table.columns) - 1))
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    if table.notes:
        lines.append("")
        lines += [f"- {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "≥": r"$\geq$"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


CITATION = re.compile(r"\s*\[([A-Za-z][\w:-]*(?:,\s*[A-Za-z][\w:-]*)*)\]")


def _tex_cell(text: str) -> str:
    """A cell in LaTeX, its "[key]" citations as \\cite{key}."""
    parts, pos = [], 0
    for m in CITATION.finditer(str(text)):
        keys = ",".join(k.strip() for k in m.group(1).split(","))
        parts.append(_tex(str(text)[pos:m.start()]) + "~\\cite{" + keys + "}")
        pos = m.end()
    return "".join(parts) + _tex(str(text)[pos:])


def to_latex(table: Table) -> str:
    spec = "l" + "r" * (len(table.columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{_tex_cell(table.title)}}}",
             f"\\label{{tab:{table.name}}}", f"\\begin{{tabular}}{{{spec}}}",
             r"\hline", " & ".join(_tex(c) for c in table.columns) + r" \\", r"\hline"]
    for i, row in enumerate(table.rows):
        if i in table.groups:
            lines.append(f"\\multicolumn{{{len(table.columns)}}}{{l}}{{\\textit{{{_tex_cell(table.groups[i])}}}}} \\\\")
        lines.append(" & ".join(_tex_cell(c) for c in row) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    if table.notes:
        lines.append(r"\par\footnotesize " + " ".join(_tex(n) for n in table.notes))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_frame(table: Table) -> pd.DataFrame:
    if table.records is not None:
        return pd.DataFrame(table.records)
    return pd.DataFrame(table.rows, columns=table.columns)


def write_table(table: Table, out_dir: str | os.PathLike, latex: bool = True) -> dict[str, Path]:
    """Write ``<out_dir>/<name>.md``, ``.csv`` (and ``.tex``); returns the paths by suffix."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / f"{table.name}.md", "csv": out_dir / f"{table.name}.csv"}
    with atomic_path(paths["md"]) as tmp:
        Path(tmp).write_text(to_markdown(table))
    with atomic_path(paths["csv"]) as tmp:
        to_frame(table).to_csv(tmp, index=False)
    if latex:
        paths["tex"] = out_dir / f"{table.name}.tex"
        with atomic_path(paths["tex"]) as tmp:
            Path(tmp).write_text(to_latex(table))
    return paths

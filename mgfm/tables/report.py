"""The human-readable report: one self-contained HTML page (figures embedded) with every table and figure.

Gathers Tables VI-XIII (Markdown files, converted here), the sampler figure, pretraining / probe /
fine-tuning curves, the confusion matrix of the best model (highest test Top-1 among the linear probes
and fine-tuned models of the first seed: a display choice, not a model selection) and a PCA embedding of
that model's stream's test features coloured by class.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mgfm.common.atomic import atomic_path
from mgfm.core.feature_store import read_features
from mgfm.eval.metrics import confusion_matrix, topk_accuracy
from mgfm.eval.paths import feature_table, modality_streams, protocol_metrics
from mgfm.tables import figures

log = logging.getLogger(__name__)


BOLD = re.compile(r"[*][*](.+?)[*][*]")


def markdown_to_html(text: str) -> str:
    """The subset of Markdown our tables use: ### headings, pipe tables, '- ' bullets, paragraphs."""
    out, table, bullets = [], [], []

    def flush() -> None:
        if table:
            rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-: ")]
            cells = [[c.strip().replace("\\|", "|") for c in _split_row(r)] for r in rows]
            out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cells[0]) +
                       "</tr></thead><tbody>" + "".join(
                           "<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in cells[1:]) +
                       "</tbody></table>")
            table.clear()
        if bullets:
            out.append("<ul>" + "".join(f"<li>{html.escape(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for line in text.splitlines():
        s = line.strip()
        if s.startswith("|"):
            if bullets:
                flush()
            table.append(s)
            continue
        if s.startswith("- ") or s.startswith("* "):
            if table:
                flush()
            bullets.append(s[2:])
            continue
        flush()
        if s.startswith("#"):
            level = min(max(len(s) - len(s.lstrip("#")), 3), 6)
            out.append(f"<h{level}>{html.escape(s.lstrip('#').strip())}</h{level}>")
        elif s:
            out.append("<p>" + BOLD.sub(r"<strong>\1</strong>", html.escape(s)) + "</p>")
    flush()
    return "\n".join(out)


def _split_row(row: str) -> list[str]:
    cells, cur, esc = [], "", False
    for ch in row.strip()[1:-1] if row.strip().endswith("|") else row.strip()[1:]:
        if ch == "|" and not esc:
            cells.append(cur)
            cur = ""
        else:
            cur += ch
        esc = ch == "\\"
    cells.append(cur)
    return cells


def _cell(c: str) -> str:
    cls = ""
    if c.startswith("cited"):
        cls = "cited"
    elif c.startswith("not built") or c.startswith("not available") or c.startswith("not evaluated"):
        cls = "missing"
    return f'<span class="{cls}">{html.escape(c)}</span>' if cls else html.escape(c)


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def best_model(eval_dir: Path, modalities: list[str], streams: list[str]) -> dict | None:
    """The first seed's highest-Top-1 test scores among the linear probes and fine-tuned models."""
    cands = []
    for m in modalities:
        p = protocol_metrics(eval_dir, "linear_probe", m).parent / "scores.npz"
        if p.is_file():
            z = np.load(p)
            for name in z["names"]:
                cands.append({"label": f"linear probe {m}/{name}", "logits": z[f"logits_{name}"], "y": z["y_test"],
                              "modality": m, "stream": str(name) if str(name) in modality_streams(m, streams)
                              else modality_streams(m, streams)[0]})
        for protocol in ("finetune", "semi_supervised", "scratch"):
            for s in modality_streams(m, streams):
                mp = protocol_metrics(eval_dir, protocol, m, s)
                sp = mp.parent / "scores.npz"
                if sp.is_file():
                    z = np.load(sp)
                    keys = sorted(k for k in z.files if k.startswith("test_last_seed"))
                    if keys:
                        cands.append({"label": f"{protocol} {m}/{s}", "logits": z[keys[0]], "y": z["y_test"],
                                      "modality": m, "stream": s})
    if not cands:
        return None
    for c in cands:
        c["top1"] = topk_accuracy(c["logits"], c["y"], (1,))[1]
    return max(cands, key=lambda c: c["top1"])


def build_report(out: str | os.PathLike, tables_dir: str | os.PathLike, eval_dir: str | os.PathLike,
                 features_dir: str | os.PathLike, models_dir: str | os.PathLike, figures_dir: str | os.PathLike,
                 class_names: list[str], modalities: list[str], streams: list[str],
                 extra_tables: list[str] = (), extra_figures: list[str] = (), max_points: int = 5000,
                 seed: int = 0) -> Path:
    """Write the figures to ``figures_dir`` and the page to ``out``."""
    tables_dir, eval_dir, figures_dir = Path(tables_dir), Path(eval_dir), Path(figures_dir)
    sections = []
    figs: list[tuple[Path, str]] = [(Path(f), f"{Path(f).name} (clip sampler)") for f in extra_figures
                                    if Path(f).is_file()]
    missing = [f for f in list(extra_figures) + list(extra_tables) if not Path(f).is_file()]
    figures_dir.mkdir(parents=True, exist_ok=True)

    for m in modalities:
        logs = {s: Path(models_dir) / m / s / "train_log.csv" for s in modality_streams(m, streams)}
        if m == "rgb":   # the two SMILE stages (Stage 2 is the evaluated encoder)
            logs = {"stage 1": Path(models_dir) / "rgb" / "stage1" / "train_log.csv", "stage 2": logs["rgb"]}
        p = figures.training_curves(logs, figures_dir / f"pretrain_curves_{m}.png", f"Pretraining ({m}), per stream")
        if p:
            figs.append((p, f"Pretraining curves ({m}): every numeric column of train_log.csv, one line per stream"))
        probe = protocol_metrics(eval_dir, "linear_probe", m).parent / "probe_log.csv"
        if probe.is_file():
            import pandas as pd

            df = pd.read_csv(probe)
            first = df[df["seed"] == df["seed"].min()]
            logs = {}
            for s, g in first.groupby("stream"):
                tmp = figures_dir / f".probe_{m}_{s}.csv"
                g.drop(columns=["seed", "stream"]).to_csv(tmp, index=False)
                logs[str(s)] = tmp
            p = figures.training_curves(logs, figures_dir / f"probe_curves_{m}.png", f"Linear probe ({m}), first seed")
            for tmp in logs.values():
                tmp.unlink()
            if p:
                figs.append((p, f"Linear-probe curves ({m}): loss, lr, train/test/validation Top-1 per stream"))
        for protocol in ("finetune", "semi_supervised", "scratch"):
            logs = {}
            for s in modality_streams(m, streams):
                seeds = sorted((eval_dir / protocol / m / s).glob("seed*/train_log.csv"))
                if seeds:
                    logs[s] = seeds[0]
            p = figures.training_curves(logs, figures_dir / f"{protocol}_curves_{m}.png", f"{protocol} ({m}), first seed")
            if p:
                figs.append((p, f"Training curves of {protocol} ({m}), first seed"))

    best = best_model(eval_dir, modalities, streams)
    if best is not None:
        cm = confusion_matrix(best["logits"].argmax(1), best["y"], len(class_names))
        p = figures.confusion_figure(cm, class_names, figures_dir / "confusion_best.png",
                                     f"{best['label']} (test Top-1 {best['top1']:.2f}%)")
        figs.append((p, f"Confusion matrix of the best model on test: {best['label']}, Top-1 {best['top1']:.2f}% "
                        "(rows: true class, colour: row-normalised)"))
        ft = feature_table(features_dir, best["modality"], best["stream"], "mg_test")
        if ft.is_file():
            meta, x = read_features(ft)
            p = figures.embedding_figure(x, meta["label"].to_numpy().astype(int), class_names,
                                         figures_dir / "embedding_test.png",
                                         f"PCA of frozen {best['modality']}/{best['stream']} test features",
                                         max_points, seed)
            figs.append((p, f"2-D PCA embedding of the frozen {best['modality']}/{best['stream']} test features, "
                            "coloured by class"))

    table_files = [Path(f) for f in extra_tables if Path(f).is_file()] + sorted(tables_dir.glob("table*_*.md"),
                                                                              key=_table_order)
    seen = set()
    for f in table_files:
        if f.resolve() in seen:
            continue
        seen.add(f.resolve())
        sections.append(f'<section id="{html.escape(f.stem)}">{markdown_to_html(f.read_text())}'
                        f'<p class="src">Source: {html.escape(str(f))} (CSV beside it)</p></section>')
    page = _page(sections, figs, missing)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page)
    log.info("report: wrote %s (%d tables, %d figures)", out, len(sections), len(figs))
    return out


def _table_order(p: Path) -> int:
    digits = "".join(ch for ch in p.stem.split("_")[0] if ch.isdigit())
    return int(digits or 0)


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child,td:nth-child(2){text-align:left}th{background:#f2f2f2}.cited{color:#777;font-style:italic}
.missing{color:#b35900}figure{display:inline-block;margin:1em;vertical-align:top;max-width:100%}
img{max-width:100%}figcaption{font-size:12px;color:#555;max-width:700px}.src{font-size:11px;color:#888}"""


def _page(sections: list[str], figs: list[tuple[Path, str]], missing: list[str]) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>mgfm report</title><style>{CSS}</style>"
             "</head><body><h1>mgfm: iMiGUE-3K benchmark report</h1>",
             f"<p>Generated {now}. Each table shows the paper's number beside ours; rows marked "
             "<span class='cited'>cited, not reproduced</span> are other methods' numbers quoted by the paper; rows "
             "marked <span class='missing'>not evaluated</span> belong to a modality this run left out of eval.modalities.</p>"]
    if missing:
        parts.append("<p class='missing'>Missing inputs: " + ", ".join(html.escape(m) for m in missing) + "</p>")
    parts.append("<h2>Tables</h2>")
    parts += sections
    parts.append("<h2>Figures</h2>")
    parts += [_img(p, c) for p, c in figs]
    parts.append("</body></html>")
    return "\n".join(parts)

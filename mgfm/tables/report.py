"""The human-readable report: one self-contained HTML page (figures embedded), in Sections.

It opens with a summary (the dataset it was made from, its size, the main results beside the paper's and the
chance / majority baselines, what those numbers say, and the run: git revision, config digest, packages,
device, wall time per stage), then Tables VI-XIII (Markdown files, converted here), then the figures:
the sampler figure, pretraining / probe / fine-tuning curves (one colour per stream), the confusion matrix
of the best model (highest test Top-1 among the linear probes and fine-tuned models of the first seed: a
display choice, not a model selection) and a PCA embedding of that model's stream's test features.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.atomic import atomic_path
from mgfm.core.feature_store import read_features
from mgfm.eval.metrics import confusion_matrix, topk_accuracy
from mgfm.eval.members import feature_table, modality_streams, protocol_metrics
from mgfm.eval.results import read_json
from mgfm.tables import figures
from mgfm.tables.build import fmt

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
    elif c.startswith(("not built", "not available", "not evaluated", "skipped")):
        cls = "missing"
    text = BOLD.sub(r"<strong>\1</strong>", html.escape(c))      # a group heading is bold
    return f'<span class="{cls}">{text}</span>' if cls else text


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def best_model(eval_dir: Path, modalities: list[str], streams: list[str],
               skipped: dict[str, str] | None = None) -> dict | None:
    """The first seed's highest-Top-1 test scores among the linear probes and fine-tuned models (with that
    seed, so the figure can name it); protocols in ``skipped`` did not run, so their files are not read."""
    skipped = skipped or {}
    cands = []
    for m in modalities:
        p = protocol_metrics(eval_dir, "linear_probe", m).parent / "scores.npz"
        if "linear_probe" not in skipped and p.is_file():
            z = np.load(p)
            seeds = read_json(p.parent / "metrics.json").get("seeds", [0]) if (p.parent / "metrics.json").is_file() \
                else [0]
            for name in z["names"]:
                cands.append({"label": f"linear probe {m}/{name}", "logits": z[f"logits_{name}"], "y": z["y_test"],
                              "modality": m, "stream": str(name) if str(name) in modality_streams(m, streams)
                              else modality_streams(m, streams)[0],
                              "seed": int(seeds[0])})
        for protocol in ("finetune", "semi_supervised", "scratch"):
            for s in modality_streams(m, streams):
                mp = protocol_metrics(eval_dir, protocol, m, s)
                sp = mp.parent / "scores.npz"
                if protocol not in skipped and sp.is_file():
                    z = np.load(sp)
                    keys = sorted((k for k in z.files if k.startswith("test_last_seed")),
                                  key=lambda k: int(k[len("test_last_seed"):]))
                    if keys:
                        cands.append({"label": f"{protocol} {m}/{s}", "logits": z[keys[0]], "y": z["y_test"],
                                      "modality": m, "stream": s, "seed": int(keys[0][len("test_last_seed"):])})
    if not cands:
        return None
    for c in cands:
        c["top1"] = topk_accuracy(c["logits"], c["y"], (1,))[1]
    return max(cands, key=lambda c: c["top1"])


@dataclass(frozen=True)
class Section:
    """One block of the page: an anchor id, a heading and its HTML body. A new part of the report (another
    stage's results) is one more Section passed to ``build_report(extra_sections=...)``."""

    id: str
    title: str
    body: str

    def html(self) -> str:
        return f'<section id="{html.escape(self.id)}"><h2>{html.escape(self.title)}</h2>{self.body}</section>'


def _html_table(columns: list[str], rows: list[list[str]]) -> str:
    return ("<table><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "</tr></thead><tbody>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
            + "</tbody></table>")


def _pct(ms: dict | float | None) -> str:
    if ms is None:
        return "—"
    if isinstance(ms, dict):
        return fmt(ms, digits=1)
    return f"{ms:.1f}"


def spotting_summary_html(spot: dict | None, skipped: dict[str, str]) -> str:
    """Spotting's headline: F1 at tIoU 0.3 beside the class-prior baseline, with the gap computed here."""
    if "spotting" in skipped:
        return f"<p><strong>Spotting:</strong> not run: {html.escape(skipped['spotting'])}.</p>"
    if spot is None:
        return ""
    gap = spot["f1"] - spot["baseline_f1"]
    word = "above" if gap > 0 else "below" if gap < 0 else "level with"
    return (f"<h3>Spotting in the untrimmed test videos ({spot['n_test_videos']} videos, "
            f"{html.escape(spot['fusion'])} fusion)</h3>"
            + _html_table(["result", "ours", "class-prior baseline"],
                          [[f"F1 at tIoU {spot['tiou']} (%)", f"{spot['f1']:.1f}", f"{spot['baseline_f1']:.1f}"],
                           ["mAP (%)", f"{spot['map']:.1f}", f"{spot['baseline_map']:.1f}"]])
            + f"<p>F1 at tIoU {spot['tiou']}: {abs(gap):.1f} points {word} the class-prior baseline (the same "
              "windows, merging and threshold with the training class frequencies as scores).</p>")


def skipped_html(skipped: dict[str, str]) -> str:
    """The protocols this run did not run, each with its reason (mgfm.eval.plan)."""
    if not skipped:
        return ""
    return ("<h3>Not run</h3><ul class='verdicts'>" + "".join(
        f"<li><strong>{html.escape(p)}</strong>: {html.escape(why)}</li>" for p, why in skipped.items()) + "</ul>")


def headline_section(dataset: str | None, dataset_tables: dict | None, eval_dir: Path, modalities: list[str],
                     streams: list[str], benchmarks_dir: str | os.PathLike | None,
                     config_digest: str | None, skipped: dict[str, str] | None = None) -> Section:
    """What the page is about, before any table: the dataset, the main results against the paper and the
    baselines, spotting against its baseline, what they say (computed), what did not run and why, and the run
    that made them."""
    from mgfm.tables.spotting import spotting_headline

    skipped = skipped or {}
    from mgfm.tables.build import headline_results
    from mgfm.tables.summary import (dataset_summary, device_description, fmt_seconds, git_describe,
                                     is_demo_label, package_versions, stage_wall_times)

    body = []
    if is_demo_label(dataset):
        body.append("<p class='banner'>Made from the <strong>synthetic demo corpus</strong>, not from iMiGUE-3K: "
                    "its numbers check that every stage runs and learns; they are not a reproduction of the "
                    "paper. The paper's numbers are shown beside them for reference only.</p>")
    body.append(f"<p><strong>Dataset:</strong> {html.escape(dataset or 'not named')}</p>")
    if dataset_tables:
        ds = dataset_summary(dataset_tables["manifest"], dataset_tables["annotations"], dataset_tables["taxonomy"])
        body.append(f"<p>{ds.attrs['num_classes']} classes in the taxonomy.</p>")
        body.append(_html_table([c for c in ds.columns], ds.astype(str).values.tolist()))
    rows, verdicts = headline_results(eval_dir, modalities, streams, skipped)
    if rows:
        body.append("<h3>Main results (last epoch, mean ± std over seeds, percent)</h3>")
        body.append(_html_table(["result", "ours", "paper (iMiGUE-3K)", "chance", "majority class"],
                                [[r["result"], _pct(r["ours"]), _pct(r["paper"]), _pct(r["chance"]),
                                  _pct(r["majority"])] for r in rows]))
    if verdicts:
        body.append("<ul class='verdicts'>" + "".join(f"<li>{html.escape(v)}</li>" for v in verdicts) + "</ul>")
    spot = None if "spotting" in skipped else spotting_headline(eval_dir / "spotting" / "metrics.json")
    body.append(spotting_summary_html(spot, skipped))
    body.append(skipped_html(skipped))
    run = [["git revision", git_describe()], ["config digest (sha256 of the resolved config)",
                                              config_digest or "not given"],
           ["device (machine that wrote this report)", device_description()],
           ["packages", ", ".join(f"{k} {v}" for k, v in package_versions().items())]]
    body.append("<h3>Run</h3>" + _html_table(["what", "value"], run))
    if benchmarks_dir is not None:
        wt = stage_wall_times(benchmarks_dir)
        if len(wt):
            body.append("<p>Wall time per stage, summed over its jobs (Snakemake benchmark files; jobs run in "
                        f"parallel, so the sum can exceed the elapsed time): total {fmt_seconds(wt['total_s'].sum())}."
                        "</p>")
            body.append(_html_table(["stage", "jobs", "wall time (sum)", "longest job"],
                                    [[r.stage, int(r.jobs), fmt_seconds(r.total_s), fmt_seconds(r.longest_s)]
                                     for r in wt.itertuples()]))
        else:
            body.append(f"<p>No benchmark files under {html.escape(str(benchmarks_dir))}.</p>")
    return Section("headline", "Summary", "\n".join(body))


def _finetune_frames(eval_dir: Path, protocol: str, modality: str, streams: list[str]) -> tuple[dict, int | None]:
    """{stream: frame of epoch, training loss, validation Top-1 (%)} of the first seed, and that seed. The
    validation Top-1 is computed from the per-epoch validation scores the protocol saves."""
    frames, first_seed = {}, None
    for s in streams:
        run = eval_dir / protocol / modality / s
        seeds = sorted(run.glob("seed*/train_log.csv"), key=lambda p: int(p.parent.name[4:] or 0))
        if not seeds:
            continue
        seed_dir = seeds[0].parent
        first_seed = int(seed_dir.name[4:])
        df = figures.read_log(seeds[0])
        if df is None:
            continue
        df = df[["epoch", "loss"]].copy() if "loss" in df.columns else df[["epoch"]].copy()
        scores = run / "scores.npz"
        y_key = f"y_val_seed{first_seed}"
        if scores.is_file():
            z = np.load(scores)
            if y_key in z.files and len(z[y_key]):
                vals = []
                for f in sorted((seed_dir / "scores").glob("epoch_*.npz")):
                    e = np.load(f)
                    if "val" in e.files:
                        vals.append({"epoch": int(f.stem.split("_")[1]),
                                     "val_top1": topk_accuracy(e["val"], z[y_key], (1,))[1]})
                if vals:
                    df = df.merge(pd.DataFrame(vals), on="epoch", how="outer")
        frames[s] = df.sort_values("epoch")
    return frames, first_seed


def figures_section(eval_dir: Path, features_dir: Path, models_dir: Path, figures_dir: Path,
                    class_names: list[str], modalities: list[str], streams: list[str], extra_figures: list[str],
                    max_points: int, seed: int, skipped: dict[str, str] | None = None
                    ) -> tuple[Section, list[tuple[Path, str]]]:
    """Training curves, the best model's confusion matrix and a PCA of its test features (one colour per
    stream in every curve); nothing of a protocol that did not run (``skipped``)."""
    skipped = skipped or {}
    figs: list[tuple[Path, str]] = [(Path(f), "Durations of the annotated MG instances and of the sampled clips "
                                     "(clip sampler; Fig. 4 of the paper)") for f in extra_figures
                                    if Path(f).is_file()]
    figures_dir.mkdir(parents=True, exist_ok=True)
    for m in modalities:
        logs = {s: Path(models_dir) / m / s / "train_log.csv" for s in modality_streams(m, streams)}
        if m == "rgb":   # the two SMILE stages (Stage 2 is the evaluated encoder)
            logs = {"stage 1": Path(models_dir) / "rgb" / "stage1" / "train_log.csv", "stage 2": logs["rgb"]}
        p = figures.pretraining_figure(logs, figures_dir / f"pretrain_curves_{m}.png",
                                       f"Self-supervised pretraining ({m}), per stream")
        if p:
            figs.append((p, f"Pretraining ({m}): total loss, each loss term (summed over grains) and the learning "
                            "rate per epoch, one colour per stream; per-grain terms are in each stream's "
                            "train_log.csv."))
        probe = protocol_metrics(eval_dir, "linear_probe", m).parent / "probe_log.csv"
        if "linear_probe" not in skipped and probe.is_file():
            df = pd.read_csv(probe)
            first = int(df["seed"].min())
            frames = {str(s): g.drop(columns=["seed", "stream"]) for s, g in df[df["seed"] == first].groupby("stream")}
            p = figures.curves_figure(frames, [("loss", "training loss"), ("val_top1", "validation Top-1 (%)"),
                                               ("test_top1", "test Top-1 (%)")],
                                      figures_dir / f"probe_curves_{m}.png", f"Linear probe ({m}), seed {first}")
            if p:
                figs.append((p, f"Linear probe ({m}), seed {first}: training loss, Top-1 on the validation "
                                "subjects and on test at each evaluated epoch, one colour per stream."))
        for protocol, name in (("finetune", "Fine-tuning"), ("semi_supervised", "Semi-supervised fine-tuning"),
                               ("scratch", "Training from scratch")):
            if protocol in skipped:
                continue
            frames, first = _finetune_frames(eval_dir, protocol, m, modality_streams(m, streams))
            p = figures.curves_figure(frames, [("loss", "training loss"), ("val_top1", "validation Top-1 (%)")],
                                      figures_dir / f"{protocol}_curves_{m}.png", f"{name} ({m}), seed {first}")
            if p:
                figs.append((p, f"{name} ({m}), seed {first}: training loss per epoch and Top-1 on the held-out "
                                "validation subjects at each evaluated epoch, one colour per stream."))

    best = best_model(eval_dir, modalities, streams, skipped)
    if best is not None:
        cm = confusion_matrix(best["logits"].argmax(1), best["y"], len(class_names))
        p = figures.confusion_figure(cm, class_names, figures_dir / "confusion_best.png",
                                     f"{best['label']}, seed {best['seed']} (test Top-1 {best['top1']:.2f}%)")
        figs.append((p, f"Confusion matrix on test of the highest-Top-1 model of its first seed: {best['label']}, "
                        f"seed {best['seed']}, Top-1 {best['top1']:.2f}% (rows: true class; colour: share of the "
                        "true class; numbers: counts). A display choice, not a model selection."))
        ft = feature_table(features_dir, best["modality"], best["stream"], "mg_test")
        if ft.is_file():
            meta, x = read_features(ft)
            p = figures.embedding_figure(x, meta["label"].to_numpy().astype(int), class_names,
                                         figures_dir / "embedding_test.png",
                                         f"PCA of frozen {best['modality']}/{best['stream']} test features",
                                         max_points, seed)
            figs.append((p, f"The frozen (pretrained, not fine-tuned) {best['modality']}/{best['stream']} "
                            "features of the test instances, standardised and projected on their first two "
                            "principal components, coloured by class."))
    return Section("figures", "Figures", "\n".join(_img(p, c) for p, c in figs)), figs


def tables_section(tables_dir: Path, extra_tables: list[str],
                   skipped: dict[str, str] | None = None) -> tuple[Section, int]:
    """Tables VI-XIII (Markdown files of the clips and eval stages) as HTML, in the paper's order; the spotting
    tables only when spotting ran (``skipped``: a file an earlier run left is not this run's)."""
    from mgfm.core.constants import SPOTTING_TABLES

    spotting_off = "spotting" in (skipped or {})
    table_files = [Path(f) for f in extra_tables if Path(f).is_file()] + sorted(
        (f for f in tables_dir.glob("table*_*.md") if not (spotting_off and f.stem in SPOTTING_TABLES)),
        key=_table_order)
    seen, parts = set(), []
    for f in table_files:
        if f.resolve() in seen:
            continue
        seen.add(f.resolve())
        parts.append(f'<section id="{html.escape(f.stem)}">{markdown_to_html(f.read_text())}'
                     f'<p class="src">Source: {html.escape(str(f))} (CSV and LaTeX beside it)</p></section>')
    intro = ("<p>Each table shows the paper's number beside ours; rows marked <span class='cited'>cited, not "
             "reproduced</span> are other methods' numbers quoted by the paper; rows marked <span class='missing'>"
             "not built</span> belong to branches this repository does not build yet, rows marked <span "
             "class='missing'>skipped</span> to protocols this run did not run (the reason is beside them); "
             "<em>baseline</em> rows are chance and the majority class on the same test set.</p>")
    return Section("tables", "Tables", intro + "\n".join(parts)), len(parts)


def build_report(out: str | os.PathLike, tables_dir: str | os.PathLike, eval_dir: str | os.PathLike,
                 features_dir: str | os.PathLike, models_dir: str | os.PathLike, figures_dir: str | os.PathLike,
                 class_names: list[str], modalities: list[str], streams: list[str],
                 extra_tables: list[str] = (), extra_figures: list[str] = (), max_points: int = 5000,
                 seed: int = 0, *, dataset: str | None = None, dataset_tables: dict | None = None,
                 benchmarks_dir: str | os.PathLike | None = None, config_digest: str | None = None,
                 extra_sections: list[Section] = (), skipped: dict[str, str] | None = None) -> Path:
    """Write the figures to ``figures_dir`` and the page to ``out``.

    ``dataset``: what the title names as the data (mgfm.tables.summary.dataset_label); ``dataset_tables``:
    {manifest, annotations, taxonomy} paths for the dataset summary; ``benchmarks_dir``: the Snakemake
    benchmark files (wall time per stage); ``extra_sections``: further Sections, placed before the figures;
    ``skipped``: protocol (or "spotting") -> why it did not run (mgfm.eval.plan), said in the summary.
    """
    tables_dir, eval_dir, figures_dir = Path(tables_dir), Path(eval_dir), Path(figures_dir)
    skipped = dict(skipped or {})
    missing = [f for f in list(extra_figures) + list(extra_tables) if not Path(f).is_file()]
    headline = headline_section(dataset, dataset_tables, eval_dir, modalities, streams, benchmarks_dir,
                                config_digest, skipped)
    tables, n_tables = tables_section(tables_dir, list(extra_tables), skipped)
    figs_section, figs = figures_section(eval_dir, Path(features_dir), Path(models_dir), figures_dir, class_names,
                                         modalities, streams, list(extra_figures), max_points, seed, skipped)
    page = _page(dataset, [headline, tables, *extra_sections, figs_section], missing)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(page)
    log.info("report: wrote %s (%d tables, %d figures)", out, n_tables, len(figs))
    return out


def _table_order(p: Path) -> int:
    digits = "".join(ch for ch in p.stem.split("_")[0] if ch.isdigit())
    return int(digits) if digits else 1000     # tables beside the paper's (spotting) after Tables VI-XIII


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child,td:nth-child(2){text-align:left}th{background:#f2f2f2}.cited{color:#777;font-style:italic}
.missing{color:#b35900}figure{display:inline-block;margin:1em;vertical-align:top;max-width:100%}
img{max-width:100%}figcaption{font-size:12px;color:#555;max-width:700px}.src{font-size:11px;color:#888}
.banner{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em}.verdicts li{margin:.3em 0}"""


def report_title(dataset: str | None) -> str:
    return f"mgfm benchmark report: {dataset}" if dataset else "mgfm benchmark report"


def _page(dataset: str | None, sections: list[Section], missing: list[str]) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = report_title(dataset)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>Generated {now} by mgfm. Micro-gesture benchmark protocols of the iMiGUE-3K paper (Tables "
             "VI-XIII), run on the dataset named above.</p>"]
    if missing:
        parts.append("<p class='missing'>Missing inputs: " + ", ".join(html.escape(m) for m in missing) + "</p>")
    parts += [s.html() for s in sections]
    parts.append("</body></html>")
    return "\n".join(parts)

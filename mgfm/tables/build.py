"""Tables VIII-XIII: the paper's number beside ours on every row the paper has, cited rows marked, rows of
branches we do not build marked, and our extra rows (from-scratch baseline, skeleton-only ensembles) added.
(Tables VI/VII, the clips stage's MG-IoD ablations, are ``mgfm.tables.iod``.)

Reads only the protocols' ``metrics.json`` files (``results/eval/...``); every number of ours in a table is
read from there, i.e. computed by this run of the workflow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from mgfm.core.constants import EVAL_TABLES
from mgfm.eval.checks import MODALITIES
from mgfm.eval.members import modality_streams, protocol_metrics
from mgfm.eval.results import read_json
from mgfm.tables.paper import CITED, NOT_BUILT, TABLES, PaperRow, PaperTable
from mgfm.tables.bib import write_bib
from mgfm.tables.render import Table, write_table

log = logging.getLogger(__name__)
METRIC_LABEL = {"top1": "Top-1 (%)", "top5": "Top-5 (%)", "accuracy": "Accuracy", "balanced_accuracy":
                "Balanced acc.", "macro_f1": "Macro-F1"}
REPORT_SHORT = {"best_test": "best seen", "last": "last epoch", "val_selected": "val-selected", "value": ""}
TABLE_NAMES = EVAL_TABLES
#: group headings of our rows in tables where the paper prints group headings
EXTRA_GROUP = "Ours, not in the paper"
BASELINE_GROUP = "Baselines"


def fmt(ms: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    """mean ± std (std only with more than one seed)."""
    if ms is None:
        return "—"
    if ms.get("n", 1) > 1:
        return f"{ms['mean'] * scale:.{digits}f} ± {ms['std'] * scale:.{digits}f}"
    return f"{ms['mean'] * scale:.{digits}f}"


def paper_cell(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _seeds_note(n: int) -> str:
    return f"Ours: mean ± std over {n} seeds." if n > 1 else "Ours: one seed (no std)."


def caption(ptable: PaperTable, dataset: str | None) -> str:
    """The paper's caption, then which data each side comes from."""
    return f"{ptable.title}. Ours: {dataset or 'this run (dataset not named)'}; paper: iMiGUE-3K."


def topk_table(ptable: PaperTable, lookup, reports: list[str], extra: list[tuple[str, dict]], notes: list[str],
               extra_columns: dict[str, callable] | None = None, baselines: list[tuple[str, dict]] = (),
               dataset: str | None = None) -> Table:
    """``lookup(row) -> {report: {metric: mean_std}} | str`` (a str is a status: not built / not available).

    ``extra``: our rows the paper does not have, as (label, {report: {metric: mean_std}}); ``baselines``:
    (label, {metric: value}) rows (chance, majority class), the same value under every report. A status
    (cited, not built) is written once per row, in its first "ours" cell.
    """
    extra_columns = extra_columns or {}
    groups: dict[int, str] = {}
    group: str | None = None
    cols = ["Method", "Source"]
    for m in ptable.metrics:
        cols.append(f"{METRIC_LABEL[m]} paper")
        cols += [f"{METRIC_LABEL[m]} ours" + (f" ({REPORT_SHORT[r]})" if REPORT_SHORT[r] else "") for r in reports]
    cols += list(extra_columns)
    rows, records = [], []

    def add(label: str, source: str, paper: dict, ours, row_key) -> None:
        cells = [label, source]
        status_shown = False
        for m in ptable.metrics:
            cells.append(paper_cell(paper.get(m)) if paper else "—")
            for r in reports:
                if isinstance(ours, str):
                    cells.append("" if status_shown else ours)
                    status_shown = True
                    status, ms = ours, None
                else:
                    ms = (ours.get(r) or {}).get(m) if ours else None
                    cells.append(fmt(ms))
                    status = "computed" if ms is not None else "not available"
                records.append({"method": label, "source": source, "group": group, "metric": m, "report": r,
                                "paper": paper.get(m) if paper else None,
                                "ours_mean": ms["mean"] if ms else None, "ours_std": ms["std"] if ms else None,
                                "n_seeds": ms["n"] if ms else None, "status": status})
        cells += [fn(row_key) for fn in extra_columns.values()] if not isinstance(row_key, tuple) else \
            [""] * len(extra_columns)
        rows.append(cells)

    def start_group(heading: str | None) -> None:
        # the paper's group headings ("RGB-based Methods", ...) above their rows; where the paper has them, our
        # own rows and the baselines get one too, so they never sit under one of the paper's
        nonlocal group
        if heading is not None and heading != group:
            groups[len(rows)] = heading
        group = heading

    sectioned = any(prow.section for prow in ptable.rows)
    for prow in ptable.rows:
        start_group(prow.section)
        if prow.kind == "cited":
            add(prow.method, "paper", prow.values, CITED, prow)
        else:
            add(prow.method, "paper + ours", prow.values, lookup(prow), prow)
    for label, ours in extra:
        start_group(EXTRA_GROUP if sectioned else None)
        add(label, "ours (not in paper)", {}, ours, label)
    for label, values in baselines:
        start_group(BASELINE_GROUP if sectioned else None)
        ours = {r: {m: {"mean": v, "std": 0.0, "n": 1} for m, v in values.items() if v is not None} for r in reports}
        add(label, "baseline", {}, ours, ("baseline", label))
    name = TABLE_NAMES[ptable.number]
    return Table(name, caption(ptable, dataset), cols, rows, notes, records, number=ptable.number, groups=groups)


def topk_baselines(lp: dict) -> list[tuple[str, dict]]:
    """Chance (uniform guess) and majority-class rows from a linear probe's metrics (same test set as every
    top-k table): Top-1 and Top-5 of a uniform guess, Top-1 of always answering the training split's most
    frequent class (its Top-5 would need the class counts, which the metrics do not keep)."""
    k = int(lp["num_classes"])
    return [("Chance (uniform guess)", {"top1": float(lp["chance_top1"]), "top5": 100.0 * min(5, k) / k}),
            ("Majority class of the training split", {"top1": float(lp["majority_top1"]), "top5": None})]


def _last_top1(results: dict) -> dict | None:
    return ((results or {}).get("last") or {}).get("top1")


def compare(a: dict, b: dict) -> str:
    """How mean ``a`` stands against ``b`` (mean_std dicts, percent): above / below / level, with the gap in
    points, "within the seeds' spread" when the gap is under the larger std."""
    gap = a["mean"] - b["mean"]
    spread = max(a.get("std", 0.0) if a.get("n", 1) > 1 else 0.0, b.get("std", 0.0) if b.get("n", 1) > 1 else 0.0)
    word = "above" if gap > 0 else "below" if gap < 0 else "level with"
    tail = ", within the seeds' spread" if spread and abs(gap) < spread else ""
    return f"{a['mean']:.1f} vs {b['mean']:.1f}: {abs(gap):.1f} points {word}{tail}"


def _status(prow: PaperRow, built_modalities: list[str]) -> str | None:
    if prow.modality in ("rgb", "multimodal") and not MODALITIES.get("rgb"):
        return NOT_BUILT
    if prow.modality not in (None, "multimodal") and prow.modality not in built_modalities:
        return f"not evaluated ({prow.modality} not in eval.modalities)"
    if prow.modality == "multimodal" and "rgb" not in built_modalities:
        return "not evaluated (rgb not in eval.modalities)"
    return None


def _reports_of(results: dict) -> list[str]:
    return ["best_test", "last"] + (["val_selected"] if _has_val(results) else [])


def linear_probe_table(lp: dict[str, dict], modalities: list[str], dataset: str | None = None) -> Table:
    """Table VIII from the linear probe's metrics of each modality."""
    def lookup(prow: PaperRow):
        st = _status(prow, modalities)
        if st:
            return st
        res = lp[prow.modality]["results"]
        key = prow.member if prow.member in res else None
        return res[key] if key else "not available (stream not evaluated)"

    any_lp = next(iter(lp.values()))
    return topk_table(TABLES["VIII"], lookup, _reports_of(any_lp["results"]), [], [
        _seeds_note(any_lp["n_seeds"]),
        reports_note(any_lp["config"]["eval_every"], "classifier", _has_val(any_lp["results"])),
        f"3-stream: {any_lp['fusion_method']}.",
        f"Chance Top-1 = {any_lp['chance_top1']:.2f}%, majority-class Top-1 = {any_lp['majority_top1']:.2f}% "
        f"({any_lp['num_classes']} classes, {any_lp['n_test']} test instances).",
        *_probe_verdict(any_lp),
    ], baselines=topk_baselines(any_lp), dataset=dataset)


def reports_note(eval_every: int, model: str, validation: bool) -> str:
    """What the report columns mean (one sentence, the validation column only when there is one)."""
    text = (f"best seen = best test Top-1 over the evaluations every {eval_every} epochs (the public reference's "
            f"protocol, selected on test); last epoch = the {model} after the final epoch")
    if validation:
        return text + ("; val-selected = the epoch with the best Top-1 on validation subjects held out of the "
                       "training split.")
    return text + " (no validation split: eval.validation.fraction is 0)."


def _probe_verdict(lp: dict) -> list[str]:
    """Each probed stream's last-epoch Top-1 against the majority class, computed from the metrics."""
    majority = {"mean": float(lp["majority_top1"]), "std": 0.0, "n": 1}
    parts = [f"{name} {compare(r['last']['top1'], majority)}" for name, r in lp["results"].items()
             if _last_top1(r)]
    return [f"Last-epoch Top-1 against the majority class: {'; '.join(parts)}."] if parts else []


def skipped_status(protocol: str, skipped: dict[str, str]) -> str:
    """The cell of a row whose protocol did not run: "skipped: <protocol> did not run (<reason>)"."""
    return f"skipped: {protocol} did not run ({skipped.get(protocol, 'no metrics')})"


def _finetune_lookup(ft: dict, ens: dict | None, protocol: str, modalities: list[str],
                     skipped: dict[str, str] | None = None):
    def lookup(prow: PaperRow):
        st = _status(prow, modalities)
        if st:
            return st
        if prow.member == "3-stream":         # the equal-weight fusion, reported as its members are
            return ens["results"]["equal_reports"] if ens else skipped_status("ensemble", skipped or {})
        r = ft[protocol].get((prow.modality, prow.member))
        return r["results"] if r else "not available (stream not evaluated)"
    return lookup


def semi_supervised_table(ft: dict, ens: dict | None, modalities: list[str], baselines: list[tuple[str, dict]] = (),
                          dataset: str | None = None, skipped: dict[str, str] | None = None) -> Table:
    """Table IX from the semi-supervised runs ({protocol: {(modality, stream): metrics}})."""
    any_semi = next(iter(ft["semi_supervised"].values()))
    covered = lambda prow: _covered(ft["semi_supervised"], prow)  # noqa: E731
    return topk_table(TABLES["IX"], _finetune_lookup(ft, ens, "semi_supervised", modalities, skipped),
                      _reports_of(any_semi["results"]), [], [
        _seeds_note(any_semi["n_seeds"]),
        reports_note(any_semi["config"]["finetune"]["eval_every"], "fine-tuned model", _has_val(any_semi["results"])),
        f"Labeled subset: the training instances shuffled with a fixed seed, first "
        f"int({any_semi['config']['semi_supervised']['fraction']} N) kept (per seed); it may miss classes: "
        "'Classes covered' gives, per seed, how many of the classes it contains.",
        "Encoder and classifier are fine-tuned together (loop: mgfm.train.loop.fit).",
        *semi_supervised_verdict(ft["semi_supervised"], baselines),
    ], extra_columns={"Classes covered": covered}, baselines=baselines, dataset=dataset)


def semi_supervised_verdict(semi: dict, baselines: list[tuple[str, dict]]) -> list[str]:
    """Whether each semi-supervised model beats the majority class, from the numbers."""
    majority = dict(baselines).get("Majority class of the training split", {}).get("top1")
    if majority is None:
        return []
    base = {"mean": majority, "std": 0.0, "n": 1}
    runs = {f"{m}/{s}": _last_top1(r["results"]) for (m, s), r in semi.items() if _last_top1(r["results"])}
    below = [k for k, v in runs.items() if v["mean"] <= majority]
    detail = "; ".join(f"{k} {compare(v, base)}" for k, v in runs.items())
    if not runs:
        return []
    if len(below) == len(runs):
        return [f"On this dataset every semi-supervised model scores at or below the majority-class baseline "
                f"({majority:.1f}%), last epoch: {detail}. The labeled subset is too small for these models to "
                "beat always answering the most frequent class."]
    if below:
        return [f"Against the majority-class baseline ({majority:.1f}%), last epoch: {detail}. "
                f"{', '.join(below)} do(es) not beat it."]
    return [f"Every semi-supervised model beats the majority-class baseline ({majority:.1f}%), last epoch: {detail}."]


def finetune_table(ft: dict, ens: dict | None, modalities: list[str], streams: list[str],
                   baselines: list[tuple[str, dict]] = (), dataset: str | None = None,
                   skipped: dict[str, str] | None = None) -> Table:
    """Table X from the fine-tuning runs, with our from-scratch rows of the same budget (a status in their
    place when the scratch protocol did not run)."""
    any_ft = next(iter(ft["finetune"].values()))
    scratch_rows = [(f"Same encoder from scratch ({m}/{s}), same budget",
                     ft["scratch"][(m, s)]["results"] if (m, s) in ft["scratch"] else
                     skipped_status("scratch", skipped or {}))
                    for m in modalities for s in modality_streams(m, streams)]
    return topk_table(TABLES["X"], _finetune_lookup(ft, ens, "finetune", modalities, skipped),
                      _reports_of(any_ft["results"]),
                      scratch_rows, [
        _seeds_note(any_ft["n_seeds"]),
        reports_note(any_ft["config"]["finetune"]["eval_every"], "fine-tuned model", _has_val(any_ft["results"])),
        "MG-FM-Skele (3-stream): equal-weight fusion of the fine-tuned streams' softmax scores at each scored "
        "epoch, reported as the streams are (best seen, last epoch, validation-selected).",
        "'from scratch' rows: the same architecture, randomly initialised, trained with the same data, epochs "
        "and optimiser.",
        *pretraining_verdict(ft, modalities, streams),
    ], baselines=baselines, dataset=dataset)


def pretraining_verdict(ft: dict, modalities: list[str], streams: list[str]) -> list[str]:
    """Fine-tuned from the pretrained encoder vs the same encoder from scratch, per stream (last epoch), and
    what that says about pretraining on this dataset: computed, never assumed."""
    pairs = []
    for m in modalities:
        for s in modality_streams(m, streams):
            a = _last_top1(ft["finetune"].get((m, s), {}).get("results"))
            b = _last_top1(ft["scratch"].get((m, s), {}).get("results"))
            if a and b:
                pairs.append((f"{m}/{s}", a, b))
    if not pairs:
        return []
    detail = "; ".join(f"{k} {compare(a, b)}" for k, a, b in pairs)
    above = [k for k, a, b in pairs if a["mean"] > b["mean"]]
    if len(above) == len(pairs):
        verdict = "fine-tuning the pretrained encoder beats training from scratch on every stream: here " \
                  "pretraining helps."
    elif not above:
        verdict = "fine-tuning the pretrained encoder scores below training from scratch on every stream: on " \
                  "this dataset pretraining does not help (the paper's claim is not reproduced here)."
    else:
        verdict = f"pretraining helps on {', '.join(above)} only."
    return [f"Fine-tuned vs from scratch, last-epoch Top-1: {detail}. So {verdict}"]


def ensemble_table(ens: dict, modalities: list[str], baselines: list[tuple[str, dict]] = (),
                   dataset: str | None = None) -> Table:
    """Table XI: the paper's ensembles are cited; ours is the weighted skeleton ensemble."""
    members = "+".join(ens["members"])
    w = ens["weights"][0]
    wtxt = ", ".join(f"{k} {v:.2f}" for k, v in w.items())
    res = ens["results"]
    skeleton = "+".join(ens.get("skeleton_members", ens["members"]))

    def lookup(prow: PaperRow):
        st = _status(prow, modalities)
        if st:
            return st
        if prow.member == "ensemble" and "multimodal_weighted" in res:
            return {"value": res["multimodal_weighted"]}
        return "not available"

    extra = [(f"MG-FM-Skele ensemble ({skeleton}), weights from {ens['select']}", {"value": res["weighted"]})]
    if "rgb" in res:
        extra.append(("MG-FM-RGB (single fine-tuned model)", {"value": res["rgb"]}))
    if "multimodal_equal" in res:
        extra.append((f"MG-FM Skele+RGB ({members}), equal weights", {"value": res["multimodal_equal"]}))
    return topk_table(TABLES["XI"], lookup, ["value"], extra, [
        _seeds_note(ens["n_seeds"]),
        f"Weighted sum of the fine-tuned members' last-epoch softmax scores; weights ({ens['select']}; "
        f"first seed: {wtxt}) come from the config or a grid search on the validation split, never from test.",
    ], baselines=baselines, dataset=dataset)


def retrieval_table(rt: dict[str, dict], modalities: list[str], dataset: str | None = None) -> Table:
    """Table XII from the retrieval metrics of each modality (deterministic: one value, no std)."""
    def lookup(prow: PaperRow):
        st = _status(prow, modalities)
        if st:
            return st
        r = rt[prow.modality]["results"].get(prow.member)
        if r is None:
            return "not available (stream not evaluated)"
        return {"value": {k: {"mean": v, "std": 0.0, "n": 1} for k, v in r.items()}}

    any_rt = next(iter(rt.values()))
    return topk_table(TABLES["XII"], lookup, ["value"], [], [
        any_rt["definition"],
        f"Gallery: {any_rt['n_gallery']} training instances; queries: {any_rt['n_query']} test instances; "
        "cosine similarity of L2-normalised frozen features. Deterministic: no seeds.",
        "No chance or majority row: the chance level of nearest-neighbour retrieval depends on the class "
        "frequencies of both gallery and queries, which the retrieval metrics do not keep.",
    ], dataset=dataset)


def skipped_table(number: str, reason: str, dataset: str | None = None) -> Table:
    """A table whose protocol did not run: the paper's rows, and ours marked skipped with the reason."""
    status = f"skipped: {reason}"
    ptable = TABLES[number]
    if number == "XIII":
        cols = ["Method", "Source", "Model+Modality", "Accuracy paper", "Accuracy ours"]
        rows, records = [], []
        for prow in ptable.rows:
            ours = CITED if prow.kind == "cited" else status
            rows.append([prow.method, "paper" if prow.kind == "cited" else "paper + ours",
                         prow.extra.get("model", ""), paper_cell(prow.values["accuracy"]), ours])
            records.append({"method": prow.method, "metric": "accuracy", "paper": prow.values["accuracy"],
                            "ours_mean": None, "ours_std": None, "n_seeds": None, "status": ours})
        return Table(TABLE_NAMES[number], caption(ptable, dataset), cols, rows, [f"Not run: {reason}."], records,
                     number=number)
    return topk_table(ptable, lambda prow: status, ["last"], [], [f"Not run: {reason}."], dataset=dataset)


def build_tables(eval_dir: str | os.PathLike, out_dir: str | os.PathLike, modalities: list[str],
                 streams: list[str], dataset: str | None = None,
                 skipped: dict[str, str] | None = None) -> dict[str, dict]:
    """Write Tables VIII-XIII from ``eval_dir`` (``dataset``: what every caption names as our data; see
    mgfm.tables.summary.DatasetId.short) and ``references.bib``; returns {table number: written paths}.

    ``skipped``: protocol -> why it did not run (mgfm.eval.plan). Its metrics are never read (a file an earlier
    run left there is not this run's); its table, or its rows in another table, say so with the reason."""
    eval_dir = Path(eval_dir)
    skipped = dict(skipped or {})
    written = {}

    def metrics(protocol: str, *parts: str) -> dict | None:
        return None if protocol in skipped else read_json(protocol_metrics(eval_dir, protocol, *parts))

    def table(number: str, protocol: str, make) -> None:
        written[number] = write_table(make() if protocol not in skipped else
                                      skipped_table(number, f"{protocol}: {skipped[protocol]}", dataset), out_dir)

    lp = {m: metrics("linear_probe", m) for m in modalities} if "linear_probe" not in skipped else {}
    table("VIII", "linear_probe", lambda: linear_probe_table(lp, modalities, dataset))
    baselines = topk_baselines(next(iter(lp.values()))) if lp else []

    ft = {p: {(m, s): metrics(p, m, s) for m in modalities for s in modality_streams(m, streams)}
          if p not in skipped else {} for p in ("semi_supervised", "finetune", "scratch")}
    ens = metrics("ensemble")
    if ens is not None and "equal_reports" not in ens["results"]:
        raise ValueError(f"{protocol_metrics(eval_dir, 'ensemble')}: no per-epoch stream fusion (written by an older "
                         "mgfm); rerun the fine-tuning and the ensemble (snakemake --forcerun eval_finetune)")
    table("IX", "semi_supervised", lambda: semi_supervised_table(ft, ens, modalities, baselines, dataset, skipped))
    table("X", "finetune", lambda: finetune_table(ft, ens, modalities, streams, baselines, dataset, skipped))
    table("XI", "ensemble", lambda: ensemble_table(ens, modalities, baselines, dataset))

    rt = {m: metrics("retrieval", m) for m in modalities} if "retrieval" not in skipped else {}
    table("XII", "retrieval", lambda: retrieval_table(rt, modalities, dataset))

    em = metrics("emotion")
    table("XIII", "emotion", lambda: emotion_table(em, modalities, dataset))
    write_bib(out_dir)
    log.info("tables: wrote %s%s", ", ".join(f"Table {k}" for k in written),
             "".join(f"; skipped {p}: {why}" for p, why in skipped.items()))
    return written


def _has_val(results: dict) -> bool:
    """Whether a validation split selected an epoch: ``results`` is one run's {report: ...} (fine-tuning) or
    {member: {report: ...}} (the linear probe's streams and fusion)."""
    if "last" in results:
        return results.get("val_selected") is not None
    return any(r.get("val_selected") is not None for r in results.values())


def _covered(semi: dict, prow: PaperRow) -> str:
    r = semi.get((prow.modality, prow.member))
    if r is None:
        return "—"
    return ", ".join(f"{c}/{r['num_classes']}" for c in r["classes_covered"])


def emotion_table(em: dict, modalities: list[str], dataset: str | None = None) -> Table:
    """Table XIII: the paper prints accuracy as a fraction; ours adds balanced accuracy and macro-F1."""
    cols = ["Method", "Source", "Model+Modality", "Accuracy paper", "Accuracy ours", "Balanced acc. ours",
            "Macro-F1 ours"]
    rows, records = [], []
    res = em["results"]
    agg = em["config"]["aggregator"]
    both = any(m == "rgb" or m.startswith("rgb-") for m in em["members"])   # Skele+RGB clip features
    ours = [fmt(res["accuracy"], 0.01, 3), fmt(res["balanced_accuracy"], 0.01, 3), fmt(res["macro_f1"], 0.01, 3)]

    def add_ours(label: str, paper: float | None) -> None:
        for m in ("accuracy", "balanced_accuracy", "macro_f1"):
            records.append({"method": label, "metric": m, "paper": paper if m == "accuracy" else None,
                            "ours_mean": res[m]["mean"] / 100, "ours_std": res[m]["std"] / 100, "n_seeds": res[m]["n"],
                            "status": "computed"})

    models = emotion_models(em["members"])
    for prow in TABLES["XIII"].rows:
        model = prow.extra.get("model", "")
        if prow.kind != "cited" and prow.modality == "multimodal" and both:
            rows.append([prow.method, "paper + ours", f"{model}; ours: {agg}-pooling+linear, frozen {models}",
                         paper_cell(prow.values["accuracy"]), *ours])
            add_ours(prow.method, prow.values["accuracy"])
            continue
        if prow.kind == "cited":
            cells = [CITED, "", ""]
            status = CITED
        else:
            cells = [_status(prow, []), "", ""]
            status = cells[0]
        rows.append([prow.method, "paper" if prow.kind == "cited" else "paper + ours", model,
                     paper_cell(prow.values["accuracy"]), *cells])
        records.append({"method": prow.method, "metric": "accuracy", "paper": prow.values["accuracy"],
                        "ours_mean": None, "ours_std": None, "n_seeds": None, "status": status})
    if not both:
        label = f"{models} clip features, {agg} aggregator"
        rows.append([label, "ours (not in paper)", f"{agg}-pooling+linear, frozen skeleton", "—", *ours])
        add_ours(label, None)
    majority = em["majority_accuracy"] / 100
    # chance: a fair coin; majority class: always the training videos' more frequent outcome (balanced acc. 0.5)
    for blabel, acc, bal in (("Chance (fair coin)", 0.5, 0.5), ("Majority outcome of the training videos",
                                                                majority, 0.5)):
        rows.append([blabel, "baseline", "—", "—", f"{acc:.3f}", f"{bal:.3f}", "—"])
        records.append({"method": blabel, "metric": "accuracy", "paper": None, "ours_mean": acc, "ours_std": 0.0,
                        "n_seeds": 1, "status": "baseline"})
    verdict = compare(res["accuracy"], {"mean": em["majority_accuracy"], "std": 0.0, "n": 1})
    skeleton = [m for m in em["members"] if not (m == "rgb" or m.startswith("rgb-"))]
    n_models = len(skeleton) + (1 if both else 0)
    notes = [_seeds_note(em["n_seeds"]),
             f"Foundation models: {models}, {n_models} frozen encoder(s) "
             + ("(the paper's two: MG-FM-Skele is the joint-stream encoder here, eval.emotion.skeleton_streams)."
                if n_models == 2 and skeleton == ["joint"] else
                "(the paper's model reads two: MG-FM-Skele and MG-FM-RGB; eval.emotion.skeleton_streams and "
                "eval.modalities choose ours)."),
             "Fractions (as the paper prints them). Per video: frozen features of its sampled clips, padded to "
             f"{em['config']['max_clips']} clips with an attention mask; class-weighted cross-entropy.",
             f"Train videos {em['n_train_videos']} (win {em['train_counts']['win']}, lose "
             f"{em['train_counts']['lose']}); test videos {em['n_test_videos']} (win {em['test_counts']['win']}, "
             f"lose {em['test_counts']['lose']}); majority-class accuracy {majority:.3f}.",
             f"Accuracy against the majority outcome, in percent: {verdict}."
             + (" On this dataset the emotion model does not beat always answering the majority outcome."
                if res["accuracy"]["mean"] <= em["majority_accuracy"] else "")]
    return Table(TABLE_NAMES["XIII"], caption(TABLES["XIII"], dataset), cols, rows, notes, records, number="XIII")


def emotion_models(members: list[str]) -> str:
    """The emotion model's frozen encoders in the paper's names: "MG-FM-Skele (joint) + MG-FM-RGB"."""
    skeleton = [m for m in members if not (m == "rgb" or m.startswith("rgb-"))]
    names = [f"MG-FM-Skele ({'+'.join(skeleton)})"] if skeleton else []
    return " + ".join(names + ["MG-FM-RGB" for m in members if m == "rgb" or m.startswith("rgb-")])


def headline_results(eval_dir: str | os.PathLike, modalities: list[str], streams: list[str],
                     skipped: dict[str, str] | None = None) -> tuple[list[dict], list[str]]:
    """The report's main results: (rows of {result, ours, paper, chance, majority}, computed verdicts), last
    epoch, mean over seeds, Top-1 in percent (emotion: accuracy in percent). Protocols whose metrics are
    missing, or that did not run (``skipped``: their files would be an earlier run's), are left out."""
    eval_dir = Path(eval_dir)
    skipped = skipped or {}
    rows: list[dict] = []
    verdicts: list[str] = []
    # (modality, stream) -> metrics or None, per fine-tuning protocol, over every modality (for the verdicts)
    ft: dict[str, dict] = {"semi_supervised": {}, "finetune": {}, "scratch": {}}
    baselines: list[tuple[str, dict]] = []

    def metrics(*parts) -> dict | None:
        path = protocol_metrics(eval_dir, *parts)
        return read_json(path) if parts[0] not in skipped and path.is_file() else None

    def paper_top1(table: str, modality: str, member: str) -> float | None:
        return next((r.values.get("top1") for r in TABLES[table].rows
                     if r.kind == "ours" and r.modality == modality and r.member == member), None)

    for m in modalities:
        lp = metrics("linear_probe", m)
        base = {"chance": None, "majority": None}
        if lp is not None:
            base = {"chance": float(lp["chance_top1"]), "majority": float(lp["majority_top1"])}
            for member, r in lp["results"].items():
                if _last_top1(r):
                    rows.append({"result": f"Linear probe, {m}/{member}", "ours": _last_top1(r),
                                 "paper": paper_top1("VIII", m, member), **base})
        members = modality_streams(m, streams)
        for protocol, label, table in (("finetune", "Fine-tuned", "X"), ("scratch", "From scratch", None),
                                       ("semi_supervised", "Semi-supervised", "IX")):
            for s in members:
                r = ft[protocol][(m, s)] = metrics(protocol, m, s)
                if r and _last_top1(r["results"]):
                    rows.append({"result": f"{label}, {m}/{s}", "ours": _last_top1(r["results"]),
                                 "paper": paper_top1(table, m, s) if table else None, **base})
        baselines = baselines or (topk_baselines(lp) if lp is not None else [])
        rt = metrics("retrieval", m)
        for s in members if rt else []:
            r = rt["results"].get(s)
            if r and "top1" in r:
                rows.append({"result": f"Retrieval, {m}/{s}", "ours": {"mean": r["top1"], "std": 0.0, "n": 1},
                             "paper": paper_top1("XII", m, s), "chance": None, "majority": None})
    # one verdict per protocol over every modality evaluated ("every model" then means every one shown)
    if ft["finetune"] and all(ft["finetune"].values()) and all(ft["scratch"].values()):
        verdicts += pretraining_verdict(ft, modalities, streams)
    if ft["semi_supervised"] and all(ft["semi_supervised"].values()):
        verdicts += semi_supervised_verdict(ft["semi_supervised"], baselines)
    em = metrics("emotion")
    if em is not None:
        rows.append({"result": "Emotion (win/lose per video), accuracy (paper: RGB + skeleton model)",
                     "ours": em["results"]["accuracy"],
                     "paper": 100.0 * TABLES["XIII"].rows[-1].values["accuracy"], "chance": 50.0,
                     "majority": float(em["majority_accuracy"])})
        verdicts.append("Emotion accuracy against the majority outcome: "
                        + compare(em["results"]["accuracy"], {"mean": em["majority_accuracy"], "std": 0.0, "n": 1})
                        + ".")
    return rows, verdicts

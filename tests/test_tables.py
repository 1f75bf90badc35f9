"""Paper numbers, the table writer, Tables VIII-XIII from a full synthetic evaluation, and the report."""

import json
from pathlib import Path

import pandas as pd
import pytest

from mgfm.eval.emotion import run_emotion
from mgfm.eval.ensemble import run_ensemble
from mgfm.eval.finetune import run_finetune
from mgfm.eval.linear_probe import run_linear_probe
from mgfm.eval.results import read_json
from mgfm.eval.retrieval import run_retrieval
from mgfm.tables.build import build_tables
from mgfm.tables.paper import CITED, NOT_BUILT, TABLE_VI_IOD_QUOTA, TABLE_VII_IOD_TAU, TABLES
from mgfm.tables.render import Table, to_latex, to_markdown, write_table
from mgfm.tables.report import build_report, markdown_to_html

from tests.support.features import write_synthetic_encoders, write_synthetic_features

# shared/ lies beside the repository (and beside CI's clone of it)
PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "imigue3k-paper.txt"
STREAMS = ["joint", "bone", "motion"]

# The paper's tables VIII-XIII, copied by hand from the paper text: each row's method and its cells after the
# method, as printed ("-" where the paper prints no number).
PRINTED = {
    "VIII": [("P&C [su2020predict]", "31.67", "64.93"), ("U-S-VAE Z [liu2021imigue]", "32.43", "64.30"),
             ("MG-FM-RGB (RGB)", "43.59", "80.48"), ("MG-FM-Skele (joint)", "53.65", "83.76"),
             ("MG-FM-Skele (bone)", "52.34", "83.99"), ("MG-FM-Skele (motion)", "51.94", "83.39"),
             ("MG-FM-Skele (3-stream)", "57.61", "86.97")],
    "IX": [("MG-FM-Skele (joint)", "44.73", "81.16"), ("MG-FM-Skele (bone)", "44.19", "79.67"),
           ("MG-FM-Skele (motion)", "46.89", "77.14"), ("MG-FM-RGB", "60.16", "89.97")],
    "X": [("Temporal Relational + RGB (TRN) [trn]", "55.24", "-"), ("Temporal Shift + RGB (TSM) [tsm]", "58.77", "-"),
          ("CLIP-MG [clip-mg]", "61.82", "-"), ("MMGesture (RGB-only) [mmgesture]", "66.62", "-"),
          ("MG-FM-RGB (Ours)", "69.42", "93.08"), ("BlockGCN (joint) [blockgcn]", "51.94", "82.96"),
          ("BlockGCN (bone)", "52.09", "82.74"), ("BlockGCN (motion)", "52.18", "81.81"),
          ("BlockGCN (4-stream)", "57.85", "86.51"), ("PoseC3D (joint) [posec3d]", "56.13", "85.40"),
          ("MG-FM-Skele (joint) (Ours)", "53.16", "85.45"), ("MG-FM-Skele (bone) (Ours)", "52.73", "85.14"),
          ("MG-FM-Skele (motion) (Ours)", "51.62", "82.76"), ("MG-FM-Skele (3-stream) (Ours)", "57.52", "86.78")],
    "XI": [("CLIP + 3DCNN [wang2024multimodal]", "68.90", "92.43"), ("Res2Net3D [huang2024multi]", "70.19", "93.69"),
           ("Prototype Learning [chen2024prototype]", "70.25", "-"), ("MM-Gesture [mmgesture]", "71.42", "-"),
           ("MG-FM (Ours)", "71.60", "95.07")],
    "XII": [("MG-FM-RGB", "22.56", "53.06"), ("MG-FM-Skele (joint)", "37.12", "67.04"),
            ("MG-FM-Skele (bone)", "38.46", "66.88"), ("MG-FM-Skele (motion)", "40.06", "66.86")],
    "XIII": [("Method 1 (ISPCAST) [Shahane]", "Transformer+RGB+Face", "0.63"),
             ("Method 2 (Haozhebu) [Haozhebu]", "CNN+RGB+Face", "0.63"),
             ("Ours", "Transformer+RGB+Skel", "0.64")],
}
# Tables VI (tau 0.3) and VII (quota 80): setting -> (generated samples, MG-IoD precision %), as printed.
PRINTED_VI = {50: ("4374", "39.39"), 80: ("6159", "40.57"), 100: ("6919", "40.16")}
PRINTED_VII = {0.1: ("6726", "39.47"), 0.3: ("6159", "40.57"), 0.5: ("5708", "39.87"), 0.75: ("4324", "40.24")}


def as_printed(row) -> tuple[str, ...]:
    """A row of mgfm.tables.paper as the paper prints it: method, extra cells, numbers to 2 decimals or "-"."""
    return (row.method, *row.extra.values(), *(f"{v:.2f}" if v is not None else "-" for v in row.values.values()))


def test_paper_numbers_are_the_papers():
    assert sorted(TABLES) == sorted(PRINTED)
    for number, table in TABLES.items():
        assert [as_printed(row) for row in table.rows] == PRINTED[number], number
    assert {k: (str(n), f"{p:.2f}") for k, (n, p) in TABLE_VI_IOD_QUOTA.items()} == PRINTED_VI
    assert {k: (str(n), f"{p:.2f}") for k, (n, p) in TABLE_VII_IOD_TAU.items()} == PRINTED_VII


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper text (shared/paper/, beside the repository) is absent")
def test_the_copied_numbers_are_in_the_paper_text():
    """The hand copy above, row by row, is a table line of the paper text."""
    lines = {ln.strip() for ln in PAPER.read_text().splitlines()}
    for number, rows in PRINTED.items():
        for cells in rows:
            assert "| " + " | ".join(cells) + " |" in lines, (number, cells)
    for rows, unit in ((PRINTED_VI, "%"), (PRINTED_VII, "%")):
        for setting, (n, p) in rows.items():
            assert f"| {setting:g} | {n} | {p}{unit} |" in lines, (setting, n, p)


@pytest.mark.skipif(not PAPER.is_file(), reason="the paper text (shared/paper/, beside the repository) is absent")
def test_group_headings_are_the_papers():
    """Each group heading is a heading line of the paper text (a row whose other cells are empty)."""
    lines = [ln.strip() for ln in PAPER.read_text().splitlines()]
    headings = {r.section for t in TABLES.values() for r in t.rows if r.section}
    assert headings == {"Ours", "RGB-based Methods", "Skeleton-based Method"}
    for heading in headings:
        assert any(ln.startswith(f"| {heading} |") and not ln[len(heading) + 4:].strip("| ") for ln in lines), heading


def test_cited_rows_are_the_briefs():
    cited = {r.method.split(" [")[0].split(" (")[0] for t in TABLES.values() for r in t.rows if r.kind == "cited"}
    for name in ("P&C", "U-S-VAE Z", "Temporal Relational + RGB", "Temporal Shift + RGB", "CLIP-MG", "MMGesture",
                 "BlockGCN", "PoseC3D", "CLIP + 3DCNN", "Res2Net3D", "Prototype Learning", "MM-Gesture",
                 "Method 1", "Method 2"):
        assert name in cited, name


def test_writer(tmp_path):
    t = Table("t_demo", "Demo 50% | x", ["Method", "A_b"], [["a|b", "1 ± 2"], ["c", "3"]], ["note & more"],
              [{"method": "a|b", "value": 1.0}])
    paths = write_table(t, tmp_path)
    md = paths["md"].read_text()
    assert "a\\|b" in md and "- note & more" in md
    assert pd.read_csv(paths["csv"]).to_dict("records") == [{"method": "a|b", "value": 1.0}]
    tex = paths["tex"].read_text()
    assert r"50\%" in tex and r"A\_b" in tex and r"$\pm$" in tex and r"note \& more" in tex
    assert to_markdown(t).count("\n|") == 4 and "tabular" in to_latex(t)
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        Table("x", "x", ["a", "b"], [["only"]])
    html = markdown_to_html(md)
    assert "<table>" in html and "a|b" in html and "<li>note &amp; more</li>" in html


def markdown_rows(md: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The header and the rows (method -> {column: cell}) of the one table in a written Markdown file."""
    lines = [ln.strip() for ln in md.splitlines() if ln.startswith("|")]
    split = lambda ln: [c.strip() for c in ln.strip("|").split("|")]  # noqa: E731
    header = split(lines[0])
    return header, {cells[0]: dict(zip(header, cells)) for cells in map(split, lines[2:])}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    p = write_synthetic_features(root, num_classes=4, separation=0.6)
    write_synthetic_encoders(root, streams=tuple(STREAMS), num_classes=4, n_train=40, n_test=20, frames=8, hidden=8)
    params = {"seeds": [0, 1], "validation": {"fraction": 0.25}, "semi_supervised": {"fraction": 0.25},
              "linear_probe": {"epochs": 10, "batch_size": 32, "lr": 0.05, "milestones": [8], "feature_norm": "standardize"},
              "finetune": {"eval_every": 1, "train": {"epochs": 1, "batch_size": 16, "warmup_epochs": 0}},
              "ensemble": {"select": "validation", "grid_step": 0.5}, "emotion": {"epochs": 30}}
    ev = root / "eval"
    feats = {s: (str(root / "features" / "skeleton" / s / "mg_train.parquet"),
                 str(root / "features" / "skeleton" / s / "mg_test.parquet")) for s in STREAMS}
    run_linear_probe(feats, str(p["taxonomy"]), params, str(ev / "linear_probe" / "skeleton"))
    run_retrieval(feats, str(p["taxonomy"]), params, str(ev / "retrieval" / "skeleton"))
    for protocol in ("semi_supervised", "finetune", "scratch"):
        for s in STREAMS:
            run_finetune(protocol, str(root / "models" / "skeleton" / s), str(root / "packs" / "skeleton" / "mg_train"),
                         str(root / "packs" / "skeleton" / "mg_test"), str(p["taxonomy"]), params,
                         str(ev / protocol / "skeleton" / s))
    run_ensemble({s: str(ev / "finetune" / "skeleton" / s / "metrics.json") for s in STREAMS}, params, str(ev / "ensemble"))
    run_emotion({s: str(root / "features" / "skeleton" / s / "video_clips.parquet") for s in STREAMS},
                str(p["manifest"]), params, str(ev / "emotion"))
    written = build_tables(ev, root / "tables", ["skeleton"], STREAMS)
    return root, p, written


def test_tables_have_paper_and_ours(evaluated):
    root, _, written = evaluated
    assert set(written) == {"VIII", "IX", "X", "XI", "XII", "XIII"}
    for number, paths in written.items():
        md = paths["md"].read_text()
        header, rows = markdown_rows(md)
        paper_columns = [c for c in header if c.endswith(" paper")]
        assert paper_columns, (number, header)
        for method, *cells in PRINTED[number]:             # every paper row, with the paper's own numbers
            assert [rows[method][c] for c in paper_columns] == cells[-len(paper_columns):], (number, method)
        if number != "IX":
            assert CITED in md or number == "XII"
        assert "not evaluated (rgb not in eval.modalities)" in md or number == "XIII"  # RGB rows, skeleton-only run
        assert "seeds" in md or number == "XII"
    lp = read_json(root / "eval" / "linear_probe" / "skeleton" / "metrics.json")
    csv = pd.read_csv(written["VIII"]["csv"])
    row = csv[(csv["method"] == "MG-FM-Skele (joint)") & (csv["metric"] == "top1") & (csv["report"] == "last")]
    assert row["paper"].item() == 53.65
    assert row["ours_mean"].item() == pytest.approx(lp["results"]["joint"]["last"]["top1"]["mean"])
    assert row["status"].item() == "computed"
    rgb = csv[csv["method"] == "MG-FM-RGB (RGB)"]
    assert set(rgb["status"]) == {"not evaluated (rgb not in eval.modalities)"} and rgb["ours_mean"].isna().all()
    cited = csv[csv["method"].str.startswith("P&C")]
    assert set(cited["status"]) == {CITED}
    # every computed number of ours comes from this run's JSON, none is a copy of the paper's
    computed = csv[csv["status"] == "computed"]
    assert len(computed) and not (computed["ours_mean"] == computed["paper"]).any()
    x = pd.read_csv(written["X"]["csv"])
    assert x["method"].str.contains("from scratch").any()
    # a validation split is used: IX and X report the validation-selected epoch too, and X's multi-stream row has
    # every report of its streams (best seen included), computed from the per-epoch fusion
    ens = read_json(root / "eval" / "ensemble" / "metrics.json")
    for number in ("IX", "X"):
        header, _ = markdown_rows(written[number]["md"].read_text())
        assert {"Top-1 (%) ours (best seen)", "Top-1 (%) ours (last epoch)", "Top-1 (%) ours (val-selected)"} \
            <= set(header), (number, header)
    three = x[(x["method"] == "MG-FM-Skele (3-stream) (Ours)") & (x["metric"] == "top1")].set_index("report")
    assert set(three.index) == {"best_test", "last", "val_selected"} and (three["status"] == "computed").all()
    for report in ("best_test", "last", "val_selected"):
        assert three.loc[report, "ours_mean"] == pytest.approx(ens["results"]["equal_reports"][report]["top1"]["mean"])
    assert three.loc["best_test", "ours_mean"] >= three.loc["last", "ours_mean"]
    assert ens["results"]["equal_reports"]["last"]["top1"]["mean"] == pytest.approx(
        ens["results"]["equal"]["top1"]["mean"])
    # the paper's group headings above their rows, ours and the baselines under their own
    md = written["X"]["md"].read_text()
    order = [md.index(f"| **{h}** |") for h in ("RGB-based Methods", "Skeleton-based Method", "Ours, not in the paper",
                                                "Baselines")]
    assert order == sorted(order) and md.index("| **Skeleton-based Method** |") < md.index("| MG-FM-Skele (joint) (Ours)")
    assert "| **Ours** |" in written["VIII"]["md"].read_text() and "**" not in written["XII"]["md"].read_text()
    assert "\\multicolumn" in written["X"]["tex"].read_text()
    assert set(x["group"].dropna()) == {"RGB-based Methods", "Skeleton-based Method", "Ours, not in the paper",
                                        "Baselines"}
    ix = written["IX"]["md"].read_text()
    assert "Classes covered" in ix and "/4" in ix
    xii = written["XII"]["md"].read_text()
    assert "5 nearest" in xii or "k nearest" in xii


def test_report(evaluated, tmp_path):
    root, p, written = evaluated
    extra_md = tmp_path / "table6_iod_quota.md"
    extra_md.write_text("### Table VI\n\n| quota | IoD |\n|---|---|\n| 50 | 39.1 |\n")
    out = build_report(tmp_path / "report.html", root / "tables", root / "eval", root / "features", root / "models",
                       tmp_path / "figures", [f"class{i}" for i in range(4)], ["skeleton"], STREAMS,
                       [str(extra_md)], [str(tmp_path / "fig4_missing.png")], 200, 0)
    html = out.read_text()
    for number in ("VIII", "IX", "X", "XI", "XII", "XIII", "VI"):
        assert f"Table {number}" in html
    assert html.count("data:image/png;base64") >= 4
    assert "fig4_missing.png" in html                   # a missing input is named, not silently dropped
    assert "<td><strong>Skeleton-based Method</strong></td>" in html   # the paper's group headings
    for name in ("confusion_best.png", "embedding_test.png", "probe_curves_skeleton.png"):
        assert (tmp_path / "figures" / name).is_file()


# ---- honesty: what the tables and the report say is computed from the numbers --------------------------------
from mgfm.tables.bib import REFERENCES  # noqa: E402
from mgfm.tables.build import compare, headline_results, pretraining_verdict, semi_supervised_verdict  # noqa: E402
from mgfm.tables.figures import STREAM_COLORS, pretraining_figure, stream_color  # noqa: E402
from mgfm.tables.render import CITATION  # noqa: E402
from mgfm.tables.summary import dataset_label  # noqa: E402

DEMO = "the synthetic demo corpus (seed 7), not iMiGUE-3K"


def _ms(mean: float, std: float = 0.0, n: int = 2) -> dict:
    return {"mean": mean, "std": std, "n": n, "values": [mean] * n}


def _ft(ft_top1: dict[str, float], scratch_top1: dict[str, float]) -> dict:
    res = lambda v: {"results": {"last": {"top1": _ms(v, 1.0)}}}  # noqa: E731
    return {"finetune": {("skeleton", s): res(v) for s, v in ft_top1.items()},
            "scratch": {("skeleton", s): res(v) for s, v in scratch_top1.items()}}


def test_pretraining_verdict_follows_the_numbers():
    below = " ".join(pretraining_verdict(_ft({"joint": 39.7}, {"joint": 43.9}), ["skeleton"], ["joint"]))
    assert "39.7 vs 43.9: 4.2 points below" in below and "pretraining does not help" in below
    assert "buys" not in below
    above = " ".join(pretraining_verdict(_ft({"joint": 50.0}, {"joint": 40.0}), ["skeleton"], ["joint"]))
    assert "10.0 points above" in above and "pretraining helps" in above
    mixed = " ".join(pretraining_verdict(_ft({"joint": 50.0, "bone": 30.0}, {"joint": 40.0, "bone": 35.0}),
                                         ["skeleton"], ["joint", "bone"]))
    assert "helps on skeleton/joint only" in mixed


def test_semi_supervised_verdict_against_the_majority_class():
    semi = {("skeleton", "joint"): {"results": {"last": {"top1": _ms(15.0)}}},
            ("skeleton", "bone"): {"results": {"last": {"top1": _ms(17.0)}}}}
    base = [("Chance (uniform guess)", {"top1": 9.1}), ("Majority class of the training split", {"top1": 21.5})]
    text = " ".join(semi_supervised_verdict(semi, base))
    assert "every semi-supervised model scores at or below the majority-class baseline (21.5%)" in text
    assert "15.0 vs 21.5: 6.5 points below" in text
    semi[("skeleton", "joint")]["results"]["last"]["top1"] = _ms(30.0)
    assert "skeleton/bone do(es) not beat it" in " ".join(semi_supervised_verdict(semi, base))
    assert compare(_ms(20.0, 5.0), _ms(18.0, 1.0)).endswith("within the seeds' spread")


def test_headline_covers_every_modality_with_one_verdict_per_protocol(tmp_path):
    """The headline reads each modality's own members (rgb's is "rgb"), and its verdicts judge all of them at
    once, so "every model" never means "every skeleton model"."""
    import json

    def write(value: dict, *parts: str) -> None:
        path = tmp_path.joinpath(*parts, "metrics.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))

    last = lambda v: {"results": {"last": {"top1": _ms(v)}}}  # noqa: E731
    for m, members in (("skeleton", ("joint",)), ("rgb", ("rgb",))):
        write({"num_classes": 11, "chance_top1": 9.1, "majority_top1": 21.5,
               "results": {s: {"last": {"top1": _ms(40.0)}} for s in members}}, "linear_probe", m)
        for s in members:
            write(last({"joint": 48.0, "rgb": 21.0}[s]), "finetune", m, s)
            write(last({"joint": 35.0, "rgb": 22.0}[s]), "scratch", m, s)
            write(last({"joint": 27.0, "rgb": 8.0}[s]), "semi_supervised", m, s)
    rows, verdicts = headline_results(tmp_path, ["skeleton", "rgb"], ["joint"])
    assert {"Fine-tuned, rgb/rgb", "From scratch, rgb/rgb", "Semi-supervised, rgb/rgb"} <= {r["result"] for r in rows}
    assert sum(v.startswith("Fine-tuned vs from scratch") for v in verdicts) == 1
    text = " ".join(verdicts)
    assert "pretraining helps on skeleton/joint only" in text and "rgb/rgb 21.0 vs 22.0" in text
    assert "rgb/rgb do(es) not beat it" in text and "Every semi-supervised model" not in text


def test_tables_name_the_dataset_and_show_baselines(evaluated, tmp_path):
    root, _, _ = evaluated
    written = build_tables(root / "eval", tmp_path, ["skeleton"], STREAMS, dataset=DEMO)
    lp = read_json(root / "eval" / "linear_probe" / "skeleton" / "metrics.json")
    for number, paths in written.items():
        md = paths["md"].read_text()
        assert md.startswith(f"### Table {number}: ") and f"Ours: {DEMO}" in md.splitlines()[0]
        tex = paths["tex"].read_text()
        caption = next(ln for ln in tex.splitlines() if ln.startswith("\\caption{"))
        assert "Table" not in caption.split("}")[0][len("\\caption{"):] and DEMO.split(",")[0] in caption
        body = tex.replace("\\begin{table}[t]", "")
        assert not CITATION.search(body), number                            # every "[key]" became \cite{key}
        if number != "XII":                                                   # retrieval has no chance level
            header, rows = markdown_rows(md)
            assert any(m.startswith("Chance") for m in rows) and any(m.startswith("Majority") for m in rows)
        for row in md.splitlines():                                           # a status once per row at most
            assert row.count(CITED) <= 1 and row.count(NOT_BUILT) <= 1
    _, rows = markdown_rows(written["VIII"]["md"].read_text())
    chance = rows["Chance (uniform guess)"]
    assert chance["Top-1 (%) ours (last epoch)"] == f"{lp['chance_top1']:.2f}"
    assert rows["Majority class of the training split"]["Top-1 (%) ours (last epoch)"] == f"{lp['majority_top1']:.2f}"
    x = written["X"]["md"].read_text()
    assert "what pretraining buys" not in x and "Fine-tuned vs from scratch, last-epoch Top-1:" in x
    keys = {k.strip() for t in written.values() for k in
            sum((m.group(1).split(",") for m in CITATION.finditer(t["md"].read_text())), [])}
    assert keys and keys <= set(REFERENCES)
    bib = (tmp_path / "references.bib").read_text()
    assert all(f"{{{k}," in bib for k in keys)


def test_dataset_label_names_demo_seed_or_manifest_digest(tmp_path):
    assert dataset_label("demo", tmp_path / "absent.csv", 7) == DEMO
    m = tmp_path / "m.csv"
    m.write_text("video_id\n")
    import hashlib
    assert dataset_label("files", m) == f"manifest m.csv (sha256 {hashlib.sha256(b'video_id' + bytes([10])).hexdigest()[:12]})"


def test_pretraining_figure_shows_loss_terms_and_lr(tmp_path):
    cols = {"epoch": [1, 2, 3], "step": [1, 2, 3], "lr": [1e-3, 5e-4, 1e-4], "loss": [3.0, 2.0, 1.5],
            "sim": [1.0, 0.8, 0.6], "vac": [1.5, 1.0, 0.7], "xcorr": [0.5, 0.2, 0.2], "sim_instance": [0.3] * 3,
            "clips_per_s": [10.0] * 3, "seconds": [1.0] * 3}
    logs = {}
    for s in STREAMS:
        logs[s] = tmp_path / f"{s}.csv"
        pd.DataFrame(cols).to_csv(logs[s], index=False)
    import matplotlib.pyplot as plt
    calls = []
    orig = plt.Axes.set_ylabel
    plt.Axes.set_ylabel = lambda self, label, *a, **k: (calls.append(label), orig(self, label, *a, **k))[1]
    try:
        assert pretraining_figure(logs, tmp_path / "p.png", "t").is_file()
    finally:
        plt.Axes.set_ylabel = orig
    assert calls == ["total loss", "loss term: sim", "loss term: vac", "loss term: xcorr", "learning rate"]
    assert stream_color("skeleton/joint") == STREAM_COLORS["joint"] != stream_color("bone")


def test_report_opens_with_a_summary_that_names_the_dataset(evaluated, tmp_path):
    root, p, _ = evaluated
    tables = tmp_path / "tables"
    build_tables(root / "eval", tables, ["skeleton"], STREAMS, dataset=DEMO)
    bench = tmp_path / "benchmarks"
    (bench / "pose").mkdir(parents=True)
    for i, s in enumerate((12.0, 30.0)):
        (bench / "pose" / f"v{i}.tsv").write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:{int(s):02d}\t10\n")
    man = pd.read_csv(p["manifest"])
    ann = pd.DataFrame({"video_id": man.loc[man["subset"] == "labeled", "video_id"].iloc[:1], "class_id": 0,
                        "start_frame": 0, "end_frame": 5})
    ann.to_csv(tmp_path / "ann.csv", index=False)
    out = build_report(tmp_path / "report.html", tables, root / "eval", root / "features", root / "models",
                       tmp_path / "figures", [f"class{i}" for i in range(4)], ["skeleton"], STREAMS, [], [], 200, 0,
                       dataset=DEMO, dataset_tables={"manifest": p["manifest"], "annotations": tmp_path / "ann.csv",
                                                     "taxonomy": p["taxonomy"]},
                       benchmarks_dir=bench, config_digest="0123456789abcdef")
    html = out.read_text()
    assert f"<title>mgfm benchmark report: {DEMO}</title>" in html and "iMiGUE-3K benchmark report" not in html
    assert html.index('id="headline"') < html.index('id="tables"') < html.index('id="figures"')
    head = html[html.index('id="headline"'):html.index('id="tables"')]
    for text in ("synthetic demo corpus", "Main results", "chance", "majority class", "0123456789abcdef",
                 "torch", "pose</td><td>2</td><td>0m42s", "Fine-tuned vs from scratch", "<td>train</td>"):
        assert text in head, text
    assert ", seed 0" in html and "confusion" in html.lower()


def test_skipped_protocols_are_never_read_and_their_tables_say_why(evaluated, tmp_path):
    """A skipped protocol's files (here: an earlier run's, still on disk) are not this run's: never read."""
    root, _, _ = evaluated
    skipped = {"semi_supervised": "eval.semi_supervised.fraction 0.1 keeps 1 of the 14 training clips",
               "ensemble": "left out of config key eval.protocols", "scratch": "left out of config key eval.protocols"}
    written = build_tables(root / "eval", tmp_path, ["skeleton"], STREAMS, dataset=DEMO, skipped=skipped)
    assert set(written) == {"VIII", "IX", "X", "XI", "XII", "XIII"}
    ix = written["IX"]["md"].read_text()
    _, rows = markdown_rows(ix)
    assert rows["MG-FM-Skele (joint)"]["Top-1 (%) ours (last epoch)"] == \
        "skipped: semi_supervised: eval.semi_supervised.fraction 0.1 keeps 1 of the 14 training clips"
    assert "Not run: semi_supervised: eval.semi_supervised.fraction 0.1 keeps 1" in ix
    _, rows = markdown_rows(written["X"]["md"].read_text())
    assert rows["MG-FM-Skele (joint) (Ours)"]["Top-1 (%) ours (last epoch)"] not in ("", "—")   # finetune ran
    three = [c for c in rows["MG-FM-Skele (3-stream) (Ours)"].values() if c.startswith("skipped")]
    assert three == ["skipped: ensemble did not run (left out of config key eval.protocols)"]
    scratch = rows["Same encoder from scratch (skeleton/joint), same budget"]
    assert "skipped: scratch did not run" in " ".join(scratch.values())
    assert "Not run: ensemble: left out" in written["XI"]["md"].read_text()
    pd.read_csv(written["IX"]["csv"])                                   # the CSV is written too
    from mgfm.tables.report import build_report

    report = build_report(tmp_path / "report.html", tmp_path, root / "eval", root / "features", root / "models",
                          tmp_path / "figs", [f"c{i}" for i in range(4)], ["skeleton"], STREAMS, max_points=50,
                          skipped={**skipped, "spotting": "config key infer.spotting is false"})
    page = report.read_text()
    assert "<strong>semi_supervised</strong>: eval.semi_supervised.fraction 0.1 keeps 1" in page
    assert "Spotting:</strong> not run: config key infer.spotting is false" in page
    assert "Semi-supervised, skeleton/joint" not in page              # its stale metrics were not read
    from mgfm.tables.console import success_lines

    (tmp_path / "eval").symlink_to(root / "eval")
    lines = success_lines(tmp_path, ["skeleton"], STREAMS, DEMO, skipped)
    assert lines[0] == f"Done. Open {tmp_path / 'report.html'} (made from {DEMO})"
    assert not any("Semi-supervised Top-1" in line for line in lines)
    assert lines[-3:] == [f"  Not run: {k}: {v}" for k, v in skipped.items()]


def test_spotting_is_in_the_summary_and_the_closing_lines(tmp_path):
    from mgfm.tables.console import success_lines
    from mgfm.tables.report import headline_section

    tiou = lambda f1: {"0.3": {"f1": f1}, "0.5": {"f1": f1 / 2}}  # noqa: E731
    metrics = {"ours": {"tiou": tiou(18.2), "map_mean": 13.4}, "fusion": "Skele+RGB", "n_test_videos": 7,
               "class_prior_baseline": {"tiou": tiou(11.0), "map_mean": 2.4}}
    (tmp_path / "eval" / "spotting").mkdir(parents=True)
    (tmp_path / "eval" / "spotting" / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "report.html").write_text("")
    assert success_lines(tmp_path, ["skeleton"], ["joint"])[-1] == \
        "  Spotting F1 at tIoU 0.3: 18.2 (class-prior baseline 11.0; 7 test videos)"
    body = headline_section(None, None, tmp_path / "eval", ["skeleton"], ["joint"], None, None).body
    assert "<td>F1 at tIoU 0.3 (%)</td><td>18.2</td><td>11.0</td>" in body
    assert "F1 at tIoU 0.3: 7.2 points above the class-prior baseline" in body

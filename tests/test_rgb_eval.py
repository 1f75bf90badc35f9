"""The eval protocols with modality rgb, through the CLI as the rules call it: linear probe (with the cache check),
retrieval, fine-tuning of the RGB encoder, the Skele+RGB ensemble (weights on validation) and the tables."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mgfm.cli import main

from tests.support.features import write_synthetic_encoders
from tests.support.rgb import add_rgb_branch

pytest.importorskip("transformers")
PARAMS = {"modalities": ["skeleton", "rgb"], "streams": ["joint"], "seeds": [0], "validation": {"fraction": 0.25},
          "linear_probe": {"epochs": 20, "batch_size": 32, "lr": 0.05, "milestones": [15], "eval_every": 5},
          "finetune": {"eval_every": 1, "train": {"epochs": 2, "batch_size": 16, "lr": 0.002, "warmup_epochs": 0,
                                                   "checkpoint_every": 1}},
          "ensemble": {"select": "validation", "grid_step": 0.5}}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("rgbeval")
    paths = write_synthetic_encoders(root, streams=("joint",), num_classes=4, n_train=64, n_test=32, frames=8,
                                     hidden=8)
    add_rgb_branch(root)
    ev = root / "eval"
    p = json.dumps(PARAMS)
    common = ["--taxonomy", str(paths["taxonomy"]), "--params", p]
    for modality in ("skeleton", "rgb"):
        stream = "joint" if modality == "skeleton" else "rgb"
        feats = ["--train-features", f"{stream}={root / 'features' / modality / stream / 'mg_train.parquet'}",
                 "--test-features", f"{stream}={root / 'features' / modality / stream / 'mg_test.parquet'}"]
        packs = root / "packs" / modality
        assert main(["eval", "linear-probe", "--modality", modality, *feats,
                     "--encoder", f"{stream}={root / 'models' / modality / stream}", "--test-pack", str(packs / "mg_test"),
                     "--out-dir", str(ev / "linear_probe" / modality), "--pretrained-streams", "joint", *common]) == 0
        assert main(["eval", "retrieval", "--modality", modality, *feats,
                     "--out-dir", str(ev / "retrieval" / modality), "--pretrained-streams", "joint", *common]) == 0
        for protocol in ("finetune", "semi_supervised", "scratch"):
            # as the workflow: the finetune protocol exports the classifier inference loads
            export = ["--export-dir", str(root / "models" / "classifiers" / modality / stream)] \
                if protocol == "finetune" else []
            assert main(["eval", "finetune", "--protocol", protocol, "--modality", modality, "--stream", stream,
                         "--model-dir", str(root / "models" / modality / stream), "--train", str(packs / "mg_train"),
                         "--test", str(packs / "mg_test"),
                         "--out-dir", str(ev / protocol / modality / stream), "--pretrained-streams", "joint",
                         *export, *common]) == 0
    assert main(["eval", "ensemble", "--member", f"joint={ev / 'finetune' / 'skeleton' / 'joint' / 'metrics.json'}",
                 "--member", f"rgb={ev / 'finetune' / 'rgb' / 'rgb' / 'metrics.json'}",
                 "--out-dir", str(ev / "ensemble"), "--params", p, "--pretrained-streams", "joint"]) == 0
    return root, paths, ev


def test_rgb_protocol_outputs(evaluated):
    _, _, ev = evaluated
    lp = json.loads((ev / "linear_probe" / "rgb" / "metrics.json").read_text())
    assert lp["modality"] == "rgb" and "rgb" in lp["results"]
    rt = json.loads((ev / "retrieval" / "rgb" / "metrics.json").read_text())
    assert "rgb" in rt["results"]
    ft = json.loads((ev / "finetune" / "rgb" / "rgb" / "metrics.json").read_text())
    assert ft["modality"] == "rgb" and ft["stream"] == "rgb" and ft["n_test"] == 32
    assert (ev / "finetune" / "rgb" / "rgb" / "seed0" / "train_log.csv").is_file()


def test_skele_rgb_ensemble_weights_from_validation(evaluated):
    _, _, ev = evaluated
    ens = json.loads((ev / "ensemble" / "metrics.json").read_text())
    assert ens["members"] == ["joint", "rgb"] and ens["skeleton_members"] == ["joint"]
    assert ens["modality_of"] == {"joint": "skeleton", "rgb": "rgb"}
    res = ens["results"]
    assert {"equal", "weighted", "multimodal_equal", "multimodal_weighted", "joint", "rgb"} <= set(res)
    assert set(ens["weights_multimodal"][0]) == {"joint", "rgb"}
    assert res["equal"]["top1"]["mean"] == pytest.approx(res["joint"]["top1"]["mean"])  # one skeleton member


def test_tables_fill_the_rgb_rows(evaluated, tmp_path):
    from mgfm.tables.build import linear_probe_table, retrieval_table, ensemble_table, finetune_table
    from mgfm.eval.results import read_json
    from mgfm.tables.render import write_table

    _, _, ev = evaluated
    lp = {m: read_json(ev / "linear_probe" / m / "metrics.json") for m in ("skeleton", "rgb")}
    t8 = write_table(linear_probe_table(lp, ["skeleton", "rgb"]), tmp_path)
    csv = pd.read_csv(t8["csv"])
    rgb = csv[csv["method"] == "MG-FM-RGB (RGB)"]
    assert len(rgb) and (rgb["status"] == "computed").all()
    assert not csv["status"].astype(str).str.startswith("not built").any()
    ens = read_json(ev / "ensemble" / "metrics.json")
    t11 = pd.read_csv(write_table(ensemble_table(ens, ["skeleton", "rgb"]), tmp_path)["csv"])
    ours = t11[t11["method"] == "MG-FM (Ours)"]
    assert len(ours) and (ours["status"] == "computed").all()
    ft = {p: {(m, s): read_json(ev / p / m / s / "metrics.json") for m, s in (("skeleton", "joint"), ("rgb", "rgb"))}
          for p in ("semi_supervised", "finetune", "scratch")}
    t10 = pd.read_csv(write_table(finetune_table(ft, ens, ["skeleton", "rgb"], ["joint"]), tmp_path)["csv"])
    assert (t10[t10["method"] == "MG-FM-RGB (Ours)"]["status"] == "computed").all()
    rt = {m: read_json(ev / "retrieval" / m / "metrics.json") for m in ("skeleton", "rgb")}
    t12 = pd.read_csv(write_table(retrieval_table(rt, ["skeleton", "rgb"]), tmp_path)["csv"])
    assert (t12[t12["method"] == "MG-FM-RGB"]["status"] == "computed").all()


def test_report_with_rgb(evaluated, tmp_path):
    import shutil

    from mgfm.tables.report import build_report

    root, _, ev = evaluated
    rgb_model = root / "models" / "rgb"
    (rgb_model / "stage1").mkdir(exist_ok=True)
    for stage, losses in (("stage1", "1.3,1.1"), ("rgb", "1.0,0.8")):   # the two stages' curves
        a, b = losses.split(",")
        (rgb_model / stage / "train_log.csv").write_text(f"epoch,loss,lr\n1,{a},0.001\n2,{b},0.0005\n")
    tables = tmp_path / "tables"
    tables.mkdir()
    out = build_report(tmp_path / "report.html", tables, ev, root / "features", root / "models", tmp_path / "figures",
                       [f"class{i}" for i in range(4)], ["skeleton", "rgb"], ["joint"], [], [], 200, 0)
    assert out.is_file()
    for name in ("pretrain_curves_rgb.png", "probe_curves_rgb.png", "finetune_curves_rgb.png"):
        assert (tmp_path / "figures" / name).is_file(), name
    shutil.rmtree(rgb_model / "stage1")


def test_the_spotting_classifier_is_the_fine_tuned_rgb_model(evaluated, tmp_path):
    """The RGB classifier the finetune protocol exports (SMILE's fine-tuning model: fc_norm pooling, drop-path)
    reloads through the bundle and scores the test clips as the protocol's last epoch did."""
    import shutil

    import numpy as np
    import torch

    from mgfm.infer.bundle import load_classifier
    from mgfm.train.rgb.clips import PackedRGBClips
    from mgfm.train.rgb.features import prepare_rgb

    root, paths, ev = evaluated
    data = root / "packs" / "rgb"
    out = shutil.copytree(root / "models" / "classifiers" / "rgb" / "rgb", tmp_path / "classifiers" / "rgb" / "rgb")
    card = json.loads((out / "card.json").read_text())
    assert card["arch"]["pooling"] == "fc_norm" and card["arch"]["drop_path"] == 0.1
    info = json.loads((out / "classifier.json").read_text())        # what build_rgb_pack records, absent here
    (out / "classifier.json").write_text(json.dumps({**info, "clip_params": {"num_frames": 8, "size": 64}}))
    member = load_classifier(out, "rgb", 4)
    clips = PackedRGBClips(data / "mg_test", 8, 64)
    with torch.no_grad():
        scores = member.model(prepare_rgb(clips[np.arange(len(clips))]["x"])).numpy()
    expected = np.load(ev / "finetune" / "rgb" / "rgb" / "scores.npz")["test_last_seed0"]
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)

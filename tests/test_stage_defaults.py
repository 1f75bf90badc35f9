"""Every stage's public function, called with an empty or partial config section, uses the schema's defaults:
it does what the workflow does for a config that sets nothing more.

The workflow's side is the config a run sees, as ``mgfm config show`` prints it for a config file holding only
the given keys, cut to what each rule passes by ``mgfm.config.steps.step_params``. Each stage runs for real on
tiny inputs, as a user's script calls it (``{}``, or only the keys that keep it tiny: the demo's size, model
widths, epochs) and, where cheap, again with its rule's params; the outputs must be the same, and what the
outputs record of their settings must be the schema's defaults. A stage that stopped applying a default fails
here: with a KeyError, with an output unlike the workflow's, or with a recorded setting unlike the schema's.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from mgfm.cli import main
from mgfm.config import defaults
from mgfm.config.run import merge
from mgfm.config.steps import step_keys, step_params

# the keys that keep each run tiny; every other key is left to its default
DEMO = {"n_videos": 3, "n_labeled": 2, "n_subjects": 3, "labeled_duration_s": [4.0, 4.0],
        "unlabeled_duration_s": [4.0, 4.0], "width": 64, "height": 64}
TINY_MODEL = {"num_frames": 16, "hidden": 16, "depth": 1, "projector_dims": [32, 32],
              "instance_projector_dims": [32, 48]}
PRETRAIN = {"model": TINY_MODEL, "train": {"epochs": 1, "batch_size": 8}}
ONE_EPOCH = {"finetune": {"train": {"epochs": 1}}}
FINETUNE = {**ONE_EPOCH, "seeds": [0]}   # the default seeds are checked where a seed costs less
PROBE = {"linear_probe": {"epochs": 5}}
EMOTION = {"emotion": {"epochs": 5}}
# the default ensemble.select is 'config', whose weights (no default) must name every member
ENSEMBLE = {"ensemble": {"weights": {"skeleton/joint": 1.0}}, "seeds": [0]}


_SHOWN: dict[str, dict] = {}


def run_config(tmp_path: Path, given: dict) -> dict:
    """The whole config a workflow run sees with a config file holding only ``given`` (``mgfm config show``)."""
    key = json.dumps(given, sort_keys=True)
    if key not in _SHOWN:
        path = tmp_path / "given.yaml"
        path.write_text(yaml.safe_dump(given))
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["config", "show", "--configfile", str(path)]) == 0
        _SHOWN[key] = yaml.safe_load(printed.getvalue())
    return copy.deepcopy(_SHOWN[key])


def rule_params(tmp_path: Path, step: str, given: dict | None = None) -> dict:
    """What the rule of ``step`` passes for a run whose config file sets only ``given`` in the step's section."""
    section, _ = step_keys(step)
    return step_params(step, run_config(tmp_path, {section: given} if given else {}))


def _plain(value):
    """Tuples as lists, as the schema's YAML defaults hold them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def assert_same_tables(a: Path, b: Path) -> None:
    """Two parquet files with the same columns, rows and metadata."""
    ta, tb = pq.read_table(a), pq.read_table(b)
    assert ta.equals(tb), f"{a} and {b} differ"
    assert ta.schema.metadata == tb.schema.metadata


def assert_same_json(a: Path, b: Path) -> dict:
    """Two JSON files with the same content; returns it."""
    ja, jb = json.loads(Path(a).read_text()), json.loads(Path(b).read_text())
    assert ja == jb
    return ja


def assert_same_files(a: Path, b: Path) -> None:
    """Two folders holding the same files with the same bytes."""
    names = sorted(str(f.relative_to(a)) for f in a.rglob("*") if f.is_file())
    assert names == sorted(str(f.relative_to(b)) for f in b.rglob("*") if f.is_file())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def assert_same_npz(a: Path, b: Path) -> None:
    za, zb = np.load(a), np.load(b)
    assert sorted(za.files) == sorted(zb.files)
    for key in za.files:
        np.testing.assert_array_equal(za[key], zb[key], err_msg=key)


# ---- the workflow's view of an empty config ----------------------------------------------------------------


def test_config_show_of_an_empty_config_file_is_every_schema_default(tmp_path):
    config = run_config(tmp_path, {})
    for section in ("dataset", "download", "pose", "clips", "skeleton", "rgb", "pretrain", "eval", "infer"):
        assert config[section] == defaults(section), section
    given = run_config(tmp_path, {"clips": {"tau": 0.5}})["clips"]
    assert given == {**defaults("clips"), "tau": 0.5}


# ---- demo corpus, download, pose ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from mgfm.demo.corpus import generate_corpus

    out = tmp_path_factory.mktemp("demo")
    generate_corpus(DEMO, out)
    return out


def test_demo_corpus(demo, tmp_path):
    from mgfm.demo.corpus import generate_corpus

    rule = run_config(tmp_path, {"dataset": {"demo": DEMO}})["dataset"]["demo"]
    assert rule == {**defaults("dataset")["demo"], **DEMO}
    generate_corpus(rule, tmp_path / "rule")
    for name in ("manifest", "annotations", "taxonomy"):   # the manifest holds each rendered video's sha256
        ours, theirs = pd.read_csv(demo / f"{name}.csv"), pd.read_csv(tmp_path / "rule" / f"{name}.csv")
        pd.testing.assert_frame_equal(ours.drop(columns="url", errors="ignore"),
                                      theirs.drop(columns="url", errors="ignore"))


@pytest.fixture(scope="module")
def downloaded(demo, tmp_path_factory):
    from mgfm.ingest.download import download_video

    out = tmp_path_factory.mktemp("download")
    download_video(demo / "manifest.csv", "demo001", out / "demo001.mp4", out / "demo001.json", {})
    return out / "demo001.mp4", out / "demo001.json"


def test_download(demo, downloaded, tmp_path):
    from mgfm.ingest.download import download_video

    video, meta = downloaded
    download_video(demo / "manifest.csv", "demo001", tmp_path / "demo001.mp4", tmp_path / "demo001.json",
                   rule_params(tmp_path, "download_video"))
    assert video.read_bytes() == (tmp_path / "demo001.mp4").read_bytes()
    recorded = assert_same_json(meta, tmp_path / "demo001.json")
    assert recorded["fps"] == defaults("download")["fps"]


def test_pose(downloaded, tmp_path):
    from mgfm.pose.extract import extract_pose

    video, meta = downloaded
    ours = extract_pose(video, meta, tmp_path / "ours.parquet", {})
    theirs = extract_pose(video, meta, tmp_path / "rule.parquet", rule_params(tmp_path, "pose"))
    assert ours == theirs
    assert_same_tables(tmp_path / "ours.parquet", tmp_path / "rule.parquet")
    want = defaults("pose")
    assert (ours["batch_size"], ours["bbox_padding"]) == (want["batch_size"], want["bbox_padding"])


# ---- clips and datasets ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Six videos whose pose scores step between 0.2, 0.4 and 0.9 (so tau, the IoD taus and the shoulder score
    threshold each decide something) and whose short train instances let a video reach the default quota."""
    from tests.support.clips import person_pose, write_pose, write_video

    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    n, rows, instances = 900, [], []
    for i, (subset, split) in enumerate([("labeled", "train")] * 2 + [("labeled", "test")] * 2 +
                                        [("unlabeled", "")] * 2):
        vid = f"v{i}"
        pose = person_pose(n, rng, 160, 120)
        for start in range(0, n, 60):
            level = (0.9, 0.2, 0.9, 0.4)[start // 60 % 4]
            pose.score[start:start + 60] = rng.uniform(level - 0.05, level + 0.05, pose.score[start:start + 60].shape)
        write_pose(root / "pose" / f"{vid}.parquet", pose, width=160, height=120)
        if split == "test":
            write_video(root / "videos" / f"{vid}.mp4", n, 160, 120)
        rows.append({"video_id": vid, "url": f"file:///x/{vid}.mp4", "subject_id": f"s{i}", "outcome": "win",
                     "subset": subset, "split": split})
        if subset == "labeled":
            for start in range(10, n - 20, 45):
                instances.append({"video_id": vid, "class_id": int(rng.integers(1, 6)), "start_frame": start,
                                  "end_frame": start + int(rng.integers(3, 8))})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(instances).to_csv(root / "annotations.csv", index=False)
    return {"pose_dir": root / "pose", "video_dir": root / "videos", "manifest": root / "manifest.csv",
            "annotations": root / "annotations.csv"}


@pytest.fixture(scope="module")
def sampled(corpus, tmp_path_factory):
    from mgfm.clips.sample import sample_clips

    out = tmp_path_factory.mktemp("clips")
    sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], out / "clips.parquet",
                 out / "stats.csv", 1, {})
    return out


def test_sample_clips(corpus, sampled, tmp_path):
    from mgfm.clips.sample import sample_clips

    sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "clips.parquet",
                 tmp_path / "stats.csv", 1, rule_params(tmp_path, "sample_clips"))
    assert_same_tables(sampled / "clips.parquet", tmp_path / "clips.parquet")
    assert (sampled / "stats.csv").read_bytes() == (tmp_path / "stats.csv").read_bytes()
    per_video = pd.read_parquet(sampled / "clips.parquet").groupby("video_id").size()
    assert per_video.max() == defaults("clips")["quota"]


def test_iod(corpus, tmp_path):
    from mgfm.clips.iod import run_iod

    ours = run_iod(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "ours.json", 1, {})
    theirs = run_iod(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "rule.json", 1,
                     rule_params(tmp_path, "iod"))
    assert ours == theirs
    assert (tmp_path / "ours.json").read_bytes() == (tmp_path / "rule.json").read_bytes()
    text = json.dumps(ours)
    want = defaults("clips")
    for setting in (*want["iod_quotas"], *want["iod_taus"], want["iod_tau_table_quota"]):
        assert str(setting) in text


def test_duration_figure(corpus, sampled, tmp_path):
    from mgfm.clips.sample import durations_figure

    durations_figure(sampled / "clips.parquet", corpus["manifest"], corpus["annotations"], tmp_path / "ours.png", {})
    durations_figure(sampled / "clips.parquet", corpus["manifest"], corpus["annotations"], tmp_path / "rule.png",
                     rule_params(tmp_path, "duration_figure"))
    assert (tmp_path / "ours.png").read_bytes() == (tmp_path / "rule.png").read_bytes()


@pytest.mark.parametrize("kind", ["skeleton", "rgb"])
def test_packed_datasets(corpus, tmp_path, kind):
    from mgfm.core.packed import read_info
    from mgfm.packs.rgb import build_rgb_pack
    from mgfm.packs.skeleton import build_skeleton_pack

    c = corpus
    given = {"size": 32} if kind == "rgb" else {}   # 224-pixel frames would only make the test slower

    def build(out, params):
        if kind == "skeleton":
            return build_skeleton_pack("mg_test", out, c["pose_dir"], c["manifest"], c["annotations"], None,
                                          params)
        return build_rgb_pack("mg_test", out, c["video_dir"], c["pose_dir"], c["manifest"], c["annotations"],
                                 None, params)

    ours = build(tmp_path / "ours", given)
    theirs = build(tmp_path / "rule", rule_params(tmp_path, f"pack_{kind}", given))
    pd.testing.assert_frame_equal(ours, theirs)
    assert_same_files(tmp_path / "ours", tmp_path / "rule")
    assert read_info(tmp_path / "ours")["params"] == {**defaults(kind), **given}


# ---- pretraining and features ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    from mgfm.train.pretrain import pretrain_skeleton
    from tests.support.skeleton import write_synthetic_skeleton

    root = tmp_path_factory.mktemp("pretrain")
    write_synthetic_skeleton(root / "data", 16, frames=16)
    pretrain_skeleton(root / "data", "joint", root / "model", PRETRAIN, seed=0)
    return root


def test_pretraining_records_the_defaults_it_trained_with(pretrained, tmp_path):
    from mgfm.models.artifact import read_card
    from mgfm.models.losses.decorrelation import DecorrelationWeights
    from mgfm.train.augment import AugmentConfig

    card = read_card(pretrained / "model")
    rule = rule_params(tmp_path, "pretrain_skeleton", PRETRAIN)
    want = defaults("pretrain")
    assert rule["augment"] == want["augment"] and rule["loss"] == want["loss"]
    # the card holds the settings the training used, in the form its step built from the section
    assert _plain(card["augment"]) == _plain(AugmentConfig.from_section(want["augment"]).to_dict())
    assert _plain(card["loss"]) == _plain(DecorrelationWeights.from_section(want["loss"]).to_dict())
    trained = {k: v for k, v in _plain(card["train"]).items() if k != "seed"}
    assert trained == rule["train"] == {**defaults("pretrain")["train"], **PRETRAIN["train"]}
    model = {**card["arch"], **card["projectors"]}
    assert {k: model[k] for k in rule["model"]} == {**defaults("pretrain")["model"], **TINY_MODEL}


def test_feature_extraction(pretrained, tmp_path):
    from mgfm.train.features import extract_features

    model, data = pretrained / "model", pretrained / "data"
    extract_features(model, data, tmp_path / "ours.parquet", params={})
    extract_features(model, data, tmp_path / "rule.parquet",
                     params=rule_params(tmp_path, "extract_features"))
    assert_same_tables(tmp_path / "ours.parquet", tmp_path / "rule.parquet")


# ---- evaluation and inference ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    from tests.support.features import write_synthetic_encoders

    root = tmp_path_factory.mktemp("enc")
    # 160 training clips: more than the default fine-tuning batch, so it is not lowered to the clip count
    return write_synthetic_encoders(root, streams=("joint",), num_classes=4, n_train=160, n_test=8, frames=8,
                                    hidden=8)


def _finetune(protocol, p, params, out):
    from mgfm.eval.finetune import run_finetune

    return run_finetune(protocol, str(p["models"] / "skeleton" / "joint"), str(p["packs"] / "skeleton" / "mg_train"),
                        str(p["packs"] / "skeleton" / "mg_test"), str(p["taxonomy"]), params, str(out))


@pytest.fixture(scope="module")
def finetuned(encoders, tmp_path_factory):
    """The ``finetune`` protocol with every default but its epochs and seeds (the ensemble's member)."""
    out = tmp_path_factory.mktemp("finetuned")
    _finetune("finetune", encoders, FINETUNE, out)
    return out


@pytest.mark.parametrize("protocol", ["finetune", "scratch", "semi_supervised"])
def test_finetune_protocols(encoders, finetuned, tmp_path, protocol):
    if protocol == "finetune":
        ours = finetuned
    else:
        ours = tmp_path / "ours"
        _finetune(protocol, encoders, FINETUNE, ours)
    _finetune(protocol, encoders, rule_params(tmp_path, f"eval_{protocol}", FINETUNE), tmp_path / "rule")
    metrics = assert_same_json(ours / "metrics.json", tmp_path / "rule" / "metrics.json")
    assert_same_npz(ours / "scores.npz", tmp_path / "rule" / "scores.npz")
    want = defaults("eval")
    assert metrics["seeds"] == FINETUNE["seeds"]
    assert metrics["config"]["finetune"] == merge(want["finetune"], FINETUNE["finetune"])
    assert metrics["config"]["validation"] == want["validation"]
    n_train = json.loads((ours / "metrics.json").read_text())["n_train"][0]
    if protocol == "semi_supervised":   # the default 10% of the 160 training clips
        assert metrics["config"]["semi_supervised"] == want["semi_supervised"]
        assert n_train == pytest.approx(160 * want["semi_supervised"]["fraction"], abs=4)
    else:
        assert n_train == 160


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    from tests.support.features import write_synthetic_features

    root = tmp_path_factory.mktemp("feat")
    return write_synthetic_features(root, streams=("joint",), num_classes=4, n_train=40, n_test=20, dim=8)


def _tables(p, stream="joint"):
    base = p["features"] / "skeleton" / stream
    return {stream: (str(base / "mg_train.parquet"), str(base / "mg_test.parquet"))}


def test_linear_probe(features, tmp_path):
    from mgfm.eval.linear_probe import run_linear_probe

    run_linear_probe(_tables(features), str(features["taxonomy"]), PROBE, str(tmp_path / "ours"))
    run_linear_probe(_tables(features), str(features["taxonomy"]),
                     rule_params(tmp_path, "eval_linear_probe", PROBE), str(tmp_path / "rule"))
    metrics = assert_same_json(tmp_path / "ours" / "metrics.json", tmp_path / "rule" / "metrics.json")
    assert_same_npz(tmp_path / "ours" / "scores.npz", tmp_path / "rule" / "scores.npz")
    assert _plain(metrics["config"]) == {**defaults("eval")["linear_probe"], **PROBE["linear_probe"]}
    assert metrics["seeds"] == defaults("eval")["seeds"]


def test_retrieval(features, tmp_path):
    from mgfm.eval.retrieval import run_retrieval

    ours = run_retrieval(_tables(features), str(features["taxonomy"]), {}, str(tmp_path / "ours"))
    theirs = run_retrieval(_tables(features), str(features["taxonomy"]),
                           rule_params(tmp_path, "eval_retrieval"), str(tmp_path / "rule"))
    assert ours == theirs
    assert ours["ks"] == defaults("eval")["retrieval"]["ks"]


def test_emotion(features, tmp_path):
    from mgfm.eval.emotion import run_emotion

    table = {"skeleton/joint": str(features["features"] / "skeleton" / "joint" / "video_clips.parquet")}
    ours = run_emotion(table, str(features["manifest"]), EMOTION, str(tmp_path / "ours"))
    theirs = run_emotion(table, str(features["manifest"]), rule_params(tmp_path, "eval_emotion", EMOTION),
                         str(tmp_path / "rule"))
    assert ours == theirs
    assert _plain(ours["config"]) == {**defaults("eval")["emotion"], **EMOTION["emotion"]}
    assert ours["seeds"] == defaults("eval")["seeds"]


def test_ensemble(finetuned, tmp_path):
    from mgfm.eval.ensemble import run_ensemble

    members = {"skeleton/joint": str(finetuned / "metrics.json")}
    ours = run_ensemble(members, ENSEMBLE, str(tmp_path / "ours"))
    theirs = run_ensemble(members, rule_params(tmp_path, "eval_ensemble", ENSEMBLE), str(tmp_path / "rule"))
    assert ours == theirs
    assert ours["select"] == defaults("eval")["ensemble"]["select"]
    assert ours["weights"] == [ENSEMBLE["ensemble"]["weights"]]


def test_exported_classifier(encoders, tmp_path):
    """The classifier inference loads: the finetune protocol's first seed, exported by its job."""
    from mgfm.eval.finetune import run_finetune

    p = encoders

    def export(params, out):
        return run_finetune("finetune", str(p["models"] / "skeleton" / "joint"),
                            str(p["packs"] / "skeleton" / "mg_train"), str(p["packs"] / "skeleton" / "mg_test"),
                            str(p["taxonomy"]), params, str(out / "eval"), export_dir=str(out / "classifier"))

    export(ONE_EPOCH, tmp_path / "ours")
    export(rule_params(tmp_path, "eval_finetune", ONE_EPOCH), tmp_path / "rule")
    info = json.loads((tmp_path / "ours" / "classifier" / "classifier.json").read_text())
    assert info["seed"] == defaults("eval")["seeds"][0]
    assert_same_files(tmp_path / "ours" / "classifier", tmp_path / "rule" / "classifier")


def test_emotion_model(features, tmp_path):
    from mgfm.eval.emotion import export_emotion_model

    table = {"joint": str(features["features"] / "skeleton" / "joint" / "video_clips.parquet")}
    ours = export_emotion_model(table, {"joint": "skeleton/joint"}, str(features["manifest"]), EMOTION,
                                str(tmp_path / "ours"))
    theirs = export_emotion_model(table, {"joint": "skeleton/joint"}, str(features["manifest"]),
                                  rule_params(tmp_path, "eval_emotion_model", EMOTION), str(tmp_path / "rule"))
    assert ours == theirs
    assert _plain(ours["config"]) == {**defaults("eval")["emotion"], **EMOTION["emotion"]}
    assert_same_files(tmp_path / "ours", tmp_path / "rule")

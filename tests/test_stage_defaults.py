"""Every stage called through its public function with an empty config section uses exactly the schema's defaults.

Each case calls the function as a user's script would (no Snakemake), with ``{}`` as its section, and stops it
at the first place the values are used (the training loop, the classifier, the sampler, the encoder pass ...)
to compare what arrived there with ``mgfm.config.defaults``. The pretraining model, augmentation and loss
blocks are built by their own modules and checked by their own tests; here pretraining is checked up to the
training loop.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from mgfm.config import defaults


class Stop(Exception):
    """Raised by a spy once it has seen what it was waiting for."""


def _plain(value):
    """Tuples (dataclass fields) as lists, as in the schema's JSON defaults."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _spy(seen: dict, name: str, stop: bool = True, result=None):
    def spy(*args, **kwargs):
        seen[name] = (args, kwargs)
        if stop:
            raise Stop(name)
        return result
    return spy


# ---- data, pose, clips, datasets ---------------------------------------------------------------------


def test_demo_corpus(monkeypatch, tmp_path):
    from mgfm.demo import corpus

    seen = {}
    monkeypatch.setattr(corpus, "build_plan", _spy(seen, "plan"))
    with pytest.raises(Stop):
        corpus.generate_corpus({}, tmp_path / "demo")
    assert seen["plan"][0][0] == defaults("dataset")["demo"]


def test_download(monkeypatch, tmp_path):
    from mgfm.ingest import download

    seen = {}
    monkeypatch.setattr(download, "manifest_row", lambda path, vid: {"video_id": vid, "url": "a.mp4"})
    monkeypatch.setattr(download, "fetch_local", _spy(seen, "fetch_local"))
    with pytest.raises(Stop):
        download.download_video(tmp_path / "m.csv", "v1", tmp_path / "v.mp4", tmp_path / "v.json", {})
    params = seen["fetch_local"][0][2]
    assert _plain(asdict(params)) == defaults("download")


def test_pose(monkeypatch, tmp_path):
    from mgfm.pose import extract

    seen = {}
    monkeypatch.setattr(extract, "load_backend", _spy(seen, "load_backend"))
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    meta = tmp_path / "v.json"
    meta.write_text('{"frames": 1, "fps": 25, "width": 64, "height": 64}')
    with pytest.raises(Stop):
        extract.extract_pose(video, meta, tmp_path / "v.parquet", {})
    params = seen["load_backend"][0][0]
    assert _plain(asdict(params)) == defaults("pose")


def _stub_tables(monkeypatch, module, seen):
    monkeypatch.setattr(module, "load_manifest", lambda path: pd.DataFrame({"video_id": ["v1"]}))
    monkeypatch.setattr(module, "load_intervals", lambda path, manifest: pd.DataFrame({"video_id": []}))
    monkeypatch.setattr(module, "load_prior", lambda prior, m, a, *why: (seen.setdefault("prior", prior),
                                                                    np.array([1.0, 2.0]))[1])
    monkeypatch.setattr(module, "check_pose_files", lambda ids, pose_dir: None)
    monkeypatch.setattr(module, "iter_tracks", lambda ids, pose_dir, video_dir: [])


def test_sample_clips(monkeypatch, tmp_path):
    from mgfm.clips import sample

    seen = {}
    _stub_tables(monkeypatch, sample, seen)
    monkeypatch.setattr(sample, "sample_tracks", _spy(seen, "sample_tracks"))
    with pytest.raises(Stop):
        sample.sample_clips(tmp_path, "m.csv", "a.csv", tmp_path / "c.parquet", tmp_path / "s.csv", 1, {})
    quota, tau, budget = seen["sample_tracks"][0][3:6]
    want = defaults("clips")
    assert (seen["prior"], quota, tau, budget) == (want["prior"], want["quota"], want["tau"], want["retry_budget"])


def test_iod(monkeypatch, tmp_path):
    from mgfm.clips import iod

    seen, calls = {}, []
    _stub_tables(monkeypatch, iod, seen)
    monkeypatch.setattr(iod, "videos_of", lambda manifest, *a: ["v1"])

    def sample_tracks(tracks, prior, seed, quota, tau, budget, total):
        calls.append((quota, tau, budget))
        return pd.DataFrame({"video_id": [], "start_frame": [], "end_frame": []}), pd.DataFrame({"accepted": [0]})

    monkeypatch.setattr(iod, "sample_tracks", sample_tracks)
    monkeypatch.setattr(iod, "iod_precision", lambda clips, truth: 0.0)
    iod.run_iod(tmp_path, "m.csv", "a.csv", tmp_path / "iod.json", 1, {})
    want = defaults("clips")
    expected = [(q, want["tau"], want["retry_budget"]) for q in want["iod_quotas"]]
    expected += [(want["iod_tau_table_quota"], t, want["retry_budget"]) for t in want["iod_taus"]]
    assert calls == expected and seen["prior"] == want["prior"]


def test_duration_figure(monkeypatch, tmp_path):
    from mgfm.clips import sample

    seen = {}
    _stub_tables(monkeypatch, sample, seen)
    clips = tmp_path / "c.parquet"
    pd.DataFrame({"video_id": ["v1"], "duration_s": [1.0]}).to_parquet(clips)
    monkeypatch.setattr(sample, "videos_of", lambda manifest, *a: [])
    monkeypatch.setattr(sample, "duration_figure", _spy(seen, "figure"))
    with pytest.raises(Stop):
        sample.durations_figure(clips, "m.csv", "a.csv", tmp_path / "f.png", {})
    assert seen["figure"][1]["max_s"] == defaults("clips")["figure_max_s"]
    assert seen["prior"] == defaults("clips")["prior"]


@pytest.mark.parametrize("kind", ["skeleton", "rgb"])
def test_packed_datasets(monkeypatch, tmp_path, kind):
    from mgfm.packs import rgb, skeleton

    seen = {}
    module = skeleton if kind == "skeleton" else rgb
    monkeypatch.setattr(module, "load_catalog", _spy(seen, "catalog"))
    real = module.resolve
    monkeypatch.setattr(module, "resolve", lambda section, params: seen.setdefault("p", real(section, params)))
    with pytest.raises(Stop):
        if kind == "skeleton":
            skeleton.build_skeleton_pack("mg_test", tmp_path / "o", tmp_path, "m.csv", "a.csv", None, {})
        else:
            rgb.build_rgb_pack("mg_test", tmp_path / "o", tmp_path, tmp_path, "m.csv", "a.csv", None, {})
    assert seen["p"] == defaults(kind)


# ---- pretraining and features ------------------------------------------------------------------------


def test_pretrain_training_loop(monkeypatch, tmp_path):
    from mgfm.train import pretrain

    seen = {}
    real = pretrain.TrainConfig.from_section

    class Recording:
        @staticmethod
        def from_section(p, seed, key="train"):
            seen["train"] = real(p, seed, key)
            raise Stop("train")

    monkeypatch.setattr(pretrain, "TrainConfig", Recording)
    with pytest.raises(Stop):
        pretrain.pretrain_skeleton(tmp_path / "none", "joint", tmp_path / "out", {}, seed=0)
    got = _plain(seen["train"].to_dict())
    got.pop("seed")
    assert got == defaults("pretrain")["train"]


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    from tests.support.features import write_synthetic_encoders

    root = tmp_path_factory.mktemp("enc")
    # 160 training clips: more than the default fine-tuning batch, so it is not lowered to the subset size
    return write_synthetic_encoders(root, streams=("joint",), num_classes=4, n_train=160, n_test=8, frames=8,
                                    hidden=8)


def test_feature_extraction(monkeypatch, encoders, tmp_path):
    from mgfm.train import features

    seen = {}
    monkeypatch.setattr(features, "encode_dataset", _spy(seen, "encode"))
    with pytest.raises(Stop):
        features.extract_features(encoders["models"] / "skeleton" / "joint", encoders["datasets"] / "skeleton" /
                                  "mg_test", tmp_path / "f.parquet", params={})
    assert seen["encode"][0][2] == defaults("pretrain")["features"]["batch_size"]


# ---- evaluation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["finetune", "scratch", "semi_supervised"])
def test_finetune_protocols(monkeypatch, encoders, tmp_path, protocol):
    import torch

    from mgfm.eval import finetune
    from mgfm.train import loop

    seen = {}
    real_loss, real_head = torch.nn.CrossEntropyLoss, finetune.Classifier
    monkeypatch.setattr(torch.nn, "CrossEntropyLoss",
                        lambda **kw: (seen.setdefault("loss", kw), real_loss(**kw))[1])
    monkeypatch.setattr(finetune, "Classifier",
                        lambda enc, k, std: (seen.setdefault("init_std", std), real_head(enc, k, std))[1])
    real_rows = finetune.semi_supervised_rows
    monkeypatch.setattr(finetune, "semi_supervised_rows",
                        lambda n, frac, seed: (seen.setdefault("fraction", frac), real_rows(n, frac, seed))[1])
    monkeypatch.setattr(loop, "fit", _spy(seen, "fit"))
    p = encoders
    with pytest.raises(Stop):
        finetune.run_finetune(protocol, str(p["models"] / "skeleton" / "joint"),
                              str(p["datasets"] / "skeleton" / "mg_train"), str(p["datasets"] / "skeleton" / "mg_test"),
                              str(p["taxonomy"]), {}, str(tmp_path / "out"))
    want = defaults("eval")
    cfg = _plain(seen["fit"][0][3].to_dict())
    cfg.pop("seed")
    if protocol == "semi_supervised":   # a 10% subset is smaller than the batch, which is lowered (and logged)
        assert seen["fraction"] == want["semi_supervised"]["fraction"]
        cfg.pop("batch_size"), want["finetune"]["train"].pop("batch_size")
    assert cfg == want["finetune"]["train"]
    assert seen["loss"] == {"label_smoothing": want["finetune"]["label_smoothing"]}
    assert seen["init_std"] == want["finetune"]["init_std"]


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    from tests.support.features import write_synthetic_features

    root = tmp_path_factory.mktemp("feat")
    return write_synthetic_features(root, streams=("joint",), num_classes=4, n_train=40, n_test=20, dim=8)


def _tables(p, stream="joint"):
    base = p["features"] / "skeleton" / stream
    return {stream: (str(base / "mg_train.parquet"), str(base / "mg_test.parquet"))}


def test_linear_probe(monkeypatch, features, tmp_path):
    from mgfm.eval import linear_probe

    seen = {}
    monkeypatch.setattr(linear_probe, "train_probe", _spy(seen, "probe"))
    with pytest.raises(Stop):
        linear_probe.run_linear_probe(_tables(features), str(features["taxonomy"]), {}, str(tmp_path))
    assert _plain(asdict(seen["probe"][0][3])) == defaults("eval")["linear_probe"]


def test_retrieval(monkeypatch, features, tmp_path):
    from mgfm.eval import retrieval

    seen = {}
    monkeypatch.setattr(retrieval, "nearest", _spy(seen, "nearest"))
    with pytest.raises(Stop):
        retrieval.run_retrieval(_tables(features), str(features["taxonomy"]), {}, str(tmp_path))
    want = defaults("eval")["retrieval"]
    assert seen["nearest"][0][2:4] == (max(want["ks"]), want["chunk"])


def test_emotion(monkeypatch, features, tmp_path):
    from mgfm.eval import emotion

    seen = {}
    monkeypatch.setattr(emotion, "train_aggregator", _spy(seen, "aggregator"))
    table = features["features"] / "skeleton" / "joint" / "video_clips.parquet"
    with pytest.raises(Stop):
        emotion.run_emotion({"skeleton/joint": str(table)}, str(features["manifest"]), {}, str(tmp_path))
    assert _plain(asdict(seen["aggregator"][0][3])) == defaults("eval")["emotion"]


def test_ensemble(monkeypatch, tmp_path):
    from mgfm.eval import ensemble, finetune

    seen = []

    def load_scores(path, seed):
        seen.append(seed)
        raise Stop("scores")

    monkeypatch.setattr(finetune, "load_scores", load_scores)
    with pytest.raises(Stop):
        ensemble.run_ensemble({"skeleton/joint": "m.json"}, {}, str(tmp_path))
    assert seen == [defaults("eval")["seeds"][0]]


# ---- the models inference loads ----------------------------------------------------------------------------
# (the classifier is the finetune protocol's first seed, exported by run_finetune: test_finetune_protocols)


def test_emotion_model(monkeypatch, features, tmp_path):
    from mgfm.eval import emotion

    seen = {}
    monkeypatch.setattr(emotion, "train_aggregator", _spy(seen, "aggregator"))
    table = features["features"] / "skeleton" / "joint" / "video_clips.parquet"
    with pytest.raises(Stop):
        emotion.export_emotion_model({"joint": str(table)}, {"joint": "skeleton/joint"}, str(features["manifest"]),
                                     {}, str(tmp_path / "emotion"))
    assert _plain(asdict(seen["aggregator"][0][3])) == defaults("eval")["emotion"]
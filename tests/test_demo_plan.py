"""Demo corpus plan, taxonomy and per-video events: pure functions of the config (no rendering)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from mgfm.demo.events import plan_events
from mgfm.config import defaults
from mgfm.demo.plan import FPS, build_plan, demo_settings, demo_video_ids
from mgfm.demo.subject import make_subject
from mgfm.demo.taxonomy import CLASSES, NUM_CLASSES, class_probabilities, taxonomy_table

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"Head", "Body", "Hand", "Body-Hand", "Head-Hand", "non-MG"}


def test_settings_of_an_empty_section_are_the_schema_defaults():
    assert demo_settings({}) == defaults("dataset")["demo"]


def test_video_ids_are_a_pure_function_of_the_config():
    ids = demo_video_ids({"n_videos": 5, "n_labeled": 2})
    assert ids == ["demo000", "demo001", "demo002", "demo003", "demo004"]
    assert demo_video_ids({}) == [p.video_id for p in build_plan({})]
    assert build_plan({"seed": 3}) == build_plan({"seed": 3})
    assert build_plan({"seed": 3}) != build_plan({"seed": 4})


def test_default_plan_shape_and_subject_disjoint_splits():
    plans = build_plan({})
    assert len(plans) == 36
    assert 14 <= sum(p.subset == "labeled" for p in plans) <= 18
    assert sum(p.subset == "unlabeled" for p in plans) > sum(p.subset == "labeled" for p in plans)
    assert len({p.subject_id for p in plans}) == 16
    train = {p.subject_id for p in plans if p.split == "train"}
    test = {p.subject_id for p in plans if p.split == "test"}
    assert train and test and not (train & test)
    for split in ("train", "test"):
        assert {p.outcome for p in plans if p.split == split} == {"win", "lose"}
    for p in plans:
        assert (p.split in ("train", "test")) == (p.subset == "labeled")
        assert p.outcome in ("win", "lose")
        assert 20 * FPS <= p.n_frames <= 60 * FPS


@pytest.mark.parametrize("n_videos, n_subjects, n_labeled", [(4, 3, 2), (5, 2, 5), (10, 10, 3), (40, 20, 20)])
def test_small_and_odd_plans_stay_valid(n_videos, n_subjects, n_labeled):
    plans = build_plan({"n_videos": n_videos, "n_subjects": n_subjects, "n_labeled": n_labeled})
    assert sum(p.subset == "labeled" for p in plans) == n_labeled
    train = {p.subject_id for p in plans if p.split == "train"}
    test = {p.subject_id for p in plans if p.split == "test"}
    assert train and test and not (train & test)


@pytest.mark.parametrize("patch, key", [
    ({"n_labeled": 1}, "n_labeled"), ({"n_labeled": 99}, "n_labeled"), ({"width": 321}, "width"),
    ({"test_fraction": 1.0}, "test_fraction"), ({"labeled_duration_s": [60, 20]}, "labeled_duration_s"),
    ({"codec": "h265"}, "codec"), ({"n_videos": "36"}, "n_videos"), ({"bogus": 1}, "bogus"),
])
def test_bad_config_names_the_key(patch, key):
    with pytest.raises(ValueError, match=key):
        demo_settings(patch)


def test_taxonomy_contract_and_long_tail():
    tax = taxonomy_table()
    assert list(tax.columns) == ["class_id", "name", "group"]
    assert tax["class_id"].tolist() == list(range(NUM_CLASSES)) and NUM_CLASSES >= 8
    assert set(tax["group"]) <= GROUPS and "non-MG" in set(tax["group"])
    weights = np.array([c.weight for c in CLASSES])
    assert weights.max() / weights.min() >= 5


def test_outcome_shifts_gesture_frequencies():
    win, lose = class_probabilities("win"), class_probabilities("lose")
    names = [c.name for c in CLASSES]
    for name in ("cover_face", "rub_hands"):
        assert lose[names.index(name)] > 2 * win[names.index(name)]
    for name in ("lean_back", "nod"):
        assert win[names.index(name)] > 1.5 * lose[names.index(name)]
    with pytest.raises(ValueError, match="outcome"):
        class_probabilities("draw")


def _all_events(cfg):
    plans = build_plan(cfg)
    return [(p, plan_events(cfg, p, make_subject(cfg["seed"], p.subject_id))) for p in plans]


def test_events_inside_videos_disjoint_and_off_cut_ins():
    cfg = demo_settings({})
    for plan, ev in _all_events(cfg):
        assert 1 <= len(ev.cut_ins) <= 3
        mask = ev.cut_in_mask(plan.n_frames)
        last = -1
        for g in ev.gestures:
            assert 0 <= g.start <= g.end < plan.n_frames
            assert g.start > last, "instances overlap"
            assert not mask[g.start:g.end + 1].any(), "instance crosses a cut-in"
            assert 0.2 * FPS - 1 <= g.end - g.start + 1 <= 15 * FPS + 1
            last = g.end
        for s, e in ev.cut_ins:
            assert 0 <= s <= e < plan.n_frames and 0.5 * FPS <= e - s + 1 <= 3.6 * FPS


def test_default_corpus_instance_counts_long_tail_and_durations():
    cfg = demo_settings({})
    counts, per_split, durations = Counter(), Counter(), []
    for plan, ev in _all_events(cfg):
        for g in ev.gestures:
            counts[g.class_id] += 1
            durations.append((g.end - g.start + 1) / FPS)
            if plan.subset == "labeled":
                per_split[plan.split] += 1
    assert per_split["train"] >= 140 and per_split["test"] >= 90, per_split
    assert len(counts) == NUM_CLASSES
    freq = sorted(counts.values())
    assert freq[-1] >= 4 * freq[0], "class distribution should be long-tailed"
    d = np.array(durations)
    assert 2.0 <= d.mean() <= 3.0 and np.median(d) < d.mean(), "durations: long tail around ~2.5 s"
    assert d.max() > 4 * np.median(d)


def test_outcome_effect_is_visible_in_event_statistics():
    cfg = demo_settings({"n_videos": 60, "n_labeled": 30, "n_subjects": 20})
    names = [c.name for c in CLASSES]
    share = {"win": Counter(), "lose": Counter()}
    for plan, ev in _all_events(cfg):
        share[plan.outcome].update(g.class_id for g in ev.gestures)
    frac = {o: np.array([share[o][k] for k in range(NUM_CLASSES)]) / sum(share[o].values()) for o in share}
    assert frac["lose"][names.index("cover_face")] > frac["win"][names.index("cover_face")]
    assert frac["win"][names.index("lean_back")] > frac["lose"][names.index("lean_back")]


def test_schema_accepts_the_defaults_and_rejects_bad_values():
    import jsonschema

    schema = yaml.safe_load((ROOT / "mgfm/config/schemas/dataset.schema.yaml").read_text())
    demo = jsonschema.Draft202012Validator(schema["properties"]["demo"])
    demo_defaults = defaults("dataset")["demo"]
    assert not list(demo.iter_errors(demo_defaults))
    for bad in ({"width": 321}, {"n_videos": 1}, {"cut_ins": [1]}, {"codec": "h265"}, {"unknown": 1}):
        assert list(demo.iter_errors({**demo_defaults, **bad})), bad

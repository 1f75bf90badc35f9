"""The demo corpus's manifest and annotation rows as its config fixes them, without drawing a frame: what the
workflow reads while it parses (the data-size plan, ``mgfm.eval.plan``) before the corpus is rendered. The
renderer takes its instances from the same ``plan_events``, so the rendered tables hold exactly these rows."""

from __future__ import annotations

import pandas as pd

from mgfm.demo.events import plan_events
from mgfm.demo.plan import build_plan, demo_settings
from mgfm.demo.subject import make_subject

#: the label-free manifest columns the plan knows (url and sha256 exist only once the videos are rendered)
PLANNED_MANIFEST_COLUMNS = ["video_id", "subject_id", "outcome", "subset", "split"]
ANNOTATION_COLUMNS = ["video_id", "class_id", "start_frame", "end_frame"]


def planned_tables(demo_cfg: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest rows, annotation rows) of the demo corpus ``demo_cfg`` would render; annotations of the
    labeled videos only, in the rendered table's order."""
    cfg = demo_settings(demo_cfg)
    plans = build_plan(cfg)
    manifest = pd.DataFrame([{"video_id": p.video_id, "subject_id": p.subject_id, "outcome": p.outcome,
                              "subset": p.subset, "split": p.split} for p in plans], columns=PLANNED_MANIFEST_COLUMNS)
    rows = []
    for p in plans:
        if p.subset != "labeled":
            continue
        events = plan_events(cfg, p, make_subject(cfg["seed"], p.subject_id))
        rows += [(p.video_id, g.class_id, g.start, g.end) for g in events.gestures]
    annotations = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS).sort_values(["video_id", "start_frame"],
                                                                             kind="stable")
    return manifest, annotations.reset_index(drop=True)

"""One self-contained HTML page per video: a timeline of instances by class (opacity = confidence), the face
visibility track with its threshold, the win/lose estimate, and a keyframe per instance (inline JPEG)."""

from __future__ import annotations

import base64
import html
import os

import numpy as np
import pandas as pd

#: Instances shown with a keyframe at most (the most confident ones); the timeline shows all.
MAX_KEYFRAMES = 24
_W, _ROW, _LEFT = 900, 18, 150


def keyframes(video: str | os.PathLike | None, inst: pd.DataFrame, width: int = 160) -> dict[int, str]:
    """Row index -> data URI of the instance's middle frame (none without a readable video)."""
    if video is None or len(inst) == 0:
        return {}
    import cv2

    from mgfm.ingest.video import read_frames

    top = inst.sort_values("confidence", ascending=False).head(MAX_KEYFRAMES)
    mid = ((top["start_frame"] + top["end_frame"]) // 2).to_numpy()
    try:
        frames = read_frames(video, mid)
    except Exception:           # a keyframe is decoration: the page must still be written
        return {}
    out = {}
    for row, frame in zip(top.index, frames):
        h = int(round(frame.shape[0] * width / frame.shape[1]))
        small = cv2.resize(frame, (width, h), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
        if ok:
            out[int(row)] = "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()
    return out


def _timeline(inst: pd.DataFrame, face: np.ndarray, tau: float, n_frames: int, fps: float,
              class_names: list[str], truth: list[dict] | None = None) -> str:
    """Instances by class (filled, opacity = confidence) and, on a test video, its annotated instances (outlined,
    on a row of their own under the class's predictions); then the face-visibility track against tau."""
    classes = sorted(set(inst["class_id"].astype(int)) | {int(t["class_id"]) for t in truth or []}) \
        if len(inst) or truth else []
    per_class = 2 if truth is not None else 1
    h = _ROW * (per_class * len(classes) + 1) + 70
    x = lambda f: _LEFT + (_W - _LEFT - 10) * f / max(n_frames, 1)  # noqa: E731
    parts = [f'<svg width="{_W}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="11">']
    for i, c in enumerate(classes):
        y = 10 + i * per_class * _ROW
        parts.append(f'<text x="4" y="{y + 12}">{html.escape(class_names[c])}</text>')
        for _, r in inst[inst["class_id"] == c].iterrows():
            x0, x1 = x(r.start_frame), x(r.end_frame + 1)
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{_ROW - 4}" '
                         f'fill="#c0392b" fill-opacity="{0.25 + 0.75 * r.confidence:.2f}"><title>'
                         f'{html.escape(r.class_name)} {r.start_s:.2f}-{r.end_s:.2f} s, confidence '
                         f'{r.confidence:.2f}</title></rect>')
        if truth is not None:
            yt = y + _ROW
            parts.append(f'<text x="14" y="{yt + 12}" fill="#555">annotated</text>')
            for t in (t for t in truth if int(t["class_id"]) == c):
                x0, x1 = x(t["start_frame"]), x(t["end_frame"] + 1)
                parts.append(f'<rect x="{x0:.1f}" y="{yt}" width="{max(x1 - x0, 1):.1f}" height="{_ROW - 4}" '
                             f'fill="none" stroke="#1a9850" stroke-width="1.5"><title>annotated: '
                             f'{html.escape(t["class_name"])} {t["start_s"]:.2f}-{t["end_s"]:.2f} s</title></rect>')
    y0 = 10 + per_class * len(classes) * _ROW + 4
    parts.append(f'<text x="4" y="{y0 + 24}">face visibility</text>')
    if len(face):
        step = max(1, len(face) // 600)
        pts = " ".join(f"{x(f):.1f},{y0 + 40 - 36 * min(max(float(face[f]), 0), 1):.1f}"
                       for f in range(0, len(face), step))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="#2c7fb8" stroke-width="1"/>')
        ty = y0 + 40 - 36 * tau
        parts.append(f'<line x1="{_LEFT}" x2="{_W - 10}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#888" '
                     f'stroke-dasharray="3,3"><title>tau = {tau}</title></line>')
    for s in range(0, int(n_frames / fps) + 1, max(1, int(n_frames / fps / 10))):
        parts.append(f'<text x="{x(s * fps):.1f}" y="{h - 6}" text-anchor="middle">{s}s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _digest(sha: str) -> str:
    return f"sha256 <code>{html.escape(sha)}</code>" if sha else "sha256 not recorded"


def models_html(meta: dict) -> str:
    """The models the page was made with: the pose model and detector (with sha256), the classifiers and what
    they were trained on."""
    pose = meta.get("pose") or {}
    rows = []
    model = pose.get("model")
    if model:
        demo = " (the shipped demo pose model, trained on synthetic renders)" if pose.get("demo_model") else ""
        rows.append(f"<li>Pose model: <b>{html.escape(model['name'])}</b>{demo}, {_digest(model['sha256'])}"
                    + (f", exported from checkpoint sha256 <code>{html.escape(model['checkpoint_sha256'])}</code>"
                       if model.get("checkpoint_sha256") else "") + "</li>")
    det = pose.get("detector")
    rows.append(f"<li>Person detector: <b>{html.escape(det['name'])}</b>, {_digest(det['sha256'])}</li>" if det else
                "<li>Person detector: none (the whole frame is the person's box)</li>")
    trained = meta.get("trained_on") or {}
    kind = {True: " (synthetic demo data)", False: " (real data)"}.get(trained.get("demo"), "")
    rows.append(f"<li>Classifiers ({html.escape(', '.join(meta['members']))}) trained on: "
                f"{html.escape(str(trained.get('dataset', 'not recorded')))}{kind}</li>")
    return "<h2>Models</h2><ul>" + "".join(rows) + "</ul>"


def truth_html(truth: dict | None) -> str:
    """A test video's annotated instances and its scores (the evaluation's scorer on this video alone)."""
    if not truth:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>"
                   for c in ("tIoU", "precision", "recall", "F1", "AP (mean over classes)"))
    scores = "".join(f"<tr><td>{html.escape(t)}</td><td>{r['precision']:.1f}</td><td>{r['recall']:.1f}</td>"
                     f"<td>{r['f1']:.1f}</td><td>{r['map']:.1f}</td></tr>" for t, r in truth["scores"].items())
    rows = "".join(f"<tr><td>{t['start_s']:.2f}</td><td>{t['end_s']:.2f}</td><td>{html.escape(t['class_name'])}</td>"
                   "</tr>" for t in truth["instances"])
    table = ("<table><tr><th>start (s)</th><th>end (s)</th><th>class</th></tr>" + rows + "</table>") if rows else \
        "<p>No annotated instance in this video.</p>"
    return (f"<h2>This video's scores ({html.escape(truth['scorer'])} scorer, against its "
            f"{len(truth['instances'])} annotated instances)</h2><table><tr>{head}</tr>{scores}</table>"
            f"<h2>Annotated instances</h2>{table}")


def render_page(video_id: str, inst: pd.DataFrame, face: np.ndarray, meta: dict, class_names: list[str],
                frames: dict[int, str]) -> str:
    """The page's HTML (no external resource)."""
    from mgfm.infer.provenance import DEMO_POSE_BANNER

    win = meta.get("win_probability")
    win_text = "no estimate (no visible window)" if win is None else \
        f"{'win' if win >= 0.5 else 'lose'} (P(win) = {win:.2f})"
    banner = (f'<p class="banner"><b>Warning:</b> {html.escape(DEMO_POSE_BANNER)}. The timeline below is not to be '
              "trusted; spot with a real pose model (mgfm infer --pose-preset rtmw-x).</p>"
              if meta.get("demo_pose_on_real_video") else "")
    cause = meta.get("likely_cause") or ""
    reason = (f"<p><b>Empty timeline:</b> {html.escape(meta['reason'])}"
              + (f"; {html.escape(cause)}" if cause else "") + ".</p>") if meta.get("reason") else \
        (f"<p><b>No instance:</b> {html.escape(cause)}.</p>" if cause else "")
    rows = []
    for i, r in inst.iterrows():
        img = f'<img src="{frames[i]}" alt="frame {(r.start_frame + r.end_frame) // 2}">' if i in frames else ""
        rows.append(f"<tr><td>{r.start_s:.2f}</td><td>{r.end_s:.2f}</td><td>{html.escape(r.class_name)}</td>"
                    f"<td>{r.confidence:.3f}</td><td>{img}</td></tr>")
    table = ("<table><tr><th>start (s)</th><th>end (s)</th><th>class</th><th>confidence</th><th>keyframe</th></tr>"
             + "".join(rows) + "</table>") if rows else "<p>No micro-gesture instance above the threshold.</p>"
    truth = meta.get("truth")
    legend = (" Filled: predicted (opacity = confidence); outlined, on the row under each class: annotated."
              if truth else "")
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>mgfm: {html.escape(video_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 8px}}img{{display:block}}.banner{{background:#fde2e1;border:1px solid #c0392b;padding:.6em 1em}}</style>
</head><body>
{banner}<h1>Micro-gestures in {html.escape(video_id)}</h1>
<p>{meta['duration_s']:.1f} s, {meta['n_frames']} frames at {meta['fps']:g} fps; {len(inst)} instances;
threshold {meta['threshold']:.3f} (chosen on validation videos); models: {html.escape(', '.join(meta['members']))}.</p>
<p><b>Win/lose estimate:</b> {win_text}</p>{reason}
{_timeline(inst, face, meta['tau'], meta['n_frames'], meta['fps'], class_names,
           truth['instances'] if truth else None)}
<p style="color:#666">{legend}</p>
<h2>Instances</h2>{table}
{truth_html(truth)}
{models_html(meta)}
<p style="color:#666">mgfm {html.escape(meta['versions']['mgfm'])}, config hash {meta['config_hash'][:12]}</p>
</body></html>
"""

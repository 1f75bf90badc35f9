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

    from mgfm.data.video import read_frames

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
              class_names: list[str]) -> str:
    classes = sorted(set(inst["class_id"].astype(int))) if len(inst) else []
    h = _ROW * (len(classes) + 1) + 70
    x = lambda f: _LEFT + (_W - _LEFT - 10) * f / max(n_frames, 1)  # noqa: E731
    parts = [f'<svg width="{_W}" height="{h}" xmlns="http://www.w3.org/2000/svg" font-size="11">']
    for i, c in enumerate(classes):
        y = 10 + i * _ROW
        parts.append(f'<text x="4" y="{y + 12}">{html.escape(class_names[c])}</text>')
        for _, r in inst[inst["class_id"] == c].iterrows():
            x0, x1 = x(r.start_frame), x(r.end_frame + 1)
            parts.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{_ROW - 4}" '
                         f'fill="#c0392b" fill-opacity="{0.25 + 0.75 * r.confidence:.2f}"><title>'
                         f'{html.escape(r.class_name)} {r.start_s:.2f}-{r.end_s:.2f} s, confidence '
                         f'{r.confidence:.2f}</title></rect>')
    y0 = 10 + len(classes) * _ROW + 4
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


def render_page(video_id: str, inst: pd.DataFrame, face: np.ndarray, meta: dict, class_names: list[str],
                frames: dict[int, str]) -> str:
    """The page's HTML (no external resource)."""
    win = meta.get("win_probability")
    win_text = "no estimate (no visible window)" if win is None else \
        f"{'win' if win >= 0.5 else 'lose'} (P(win) = {win:.2f})"
    reason = f"<p><b>Empty timeline:</b> {html.escape(meta['reason'])}</p>" if meta.get("reason") else ""
    rows = []
    for i, r in inst.iterrows():
        img = f'<img src="{frames[i]}" alt="frame {(r.start_frame + r.end_frame) // 2}">' if i in frames else ""
        rows.append(f"<tr><td>{r.start_s:.2f}</td><td>{r.end_s:.2f}</td><td>{html.escape(r.class_name)}</td>"
                    f"<td>{r.confidence:.3f}</td><td>{img}</td></tr>")
    table = ("<table><tr><th>start (s)</th><th>end (s)</th><th>class</th><th>confidence</th><th>keyframe</th></tr>"
             + "".join(rows) + "</table>") if rows else "<p>No micro-gesture instance above the threshold.</p>"
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>mgfm: {html.escape(video_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 8px}}img{{display:block}}</style></head><body>
<h1>Micro-gestures in {html.escape(video_id)}</h1>
<p>{meta['duration_s']:.1f} s, {meta['n_frames']} frames at {meta['fps']:g} fps; {len(inst)} instances;
threshold {meta['threshold']:.3f} (chosen on validation videos); models: {html.escape(', '.join(meta['members']))}.</p>
<p><b>Win/lose estimate:</b> {win_text}</p>{reason}
{_timeline(inst, face, meta['tau'], meta['n_frames'], meta['fps'], class_names)}
<h2>Instances</h2>{table}
<p style="color:#666">mgfm {html.escape(meta['versions']['mgfm'])}, config hash {meta['config_hash'][:12]}</p>
</body></html>
"""

"""A multi-label run's part of its HTML report (the task entry's `report`, placed in core.export.report's page):
the scores at its per-tag thresholds beside the simpler answers and the baselines, per-tag precision / recall / F1
with the thresholds it serves, and the texts whose tags it got wrong."""

from __future__ import annotations

import pandas as pd

from core.charts import multilabel as charts
from core.charts.html import esc, html_figure, html_table
from core.multilabel.analysis import answers, tag_errors
from db.models import Run

MISTAKES_SHOWN = 15


def multilabel_body(run: Run, split: str) -> str:
    metrics = run.metrics or {}
    scores = (metrics.get("reports") or {}).get(split)
    if not scores:
        return f'<p class="warn">Run {run.id} has no {esc(split)} scores.</p>'
    thresholds = metrics.get("thresholds") or {}
    per_tag = pd.DataFrame([{"tag": tag, "threshold": thresholds.get(tag), **{k: round(float(v), 4) if k != "support"
                                                                           else int(v) for k, v in row.items()}}
                            for tag, row in scores["per_tag"].items()])
    parts = [f"<h2>Headline metrics ({esc(split)} split)</h2>", html_table(answers(metrics, split)),
             f'<p class="muted">Tags per text: {scores["labels_per_row_pred"]:.2f} predicted against '
             f'{scores["labels_per_row_true"]:.2f} true. A tag is given when its probability reaches its threshold '
             "(tuned on the validation split).</p>",
             html_figure(charts.per_tag_scores(scores["per_tag"])), "<h2>Per tag</h2>", html_table(per_tag)]
    try:
        wrong = tag_errors(run.id, split).head(MISTAKES_SHOWN)
    except OSError as exc:  # the run's prediction files are gone: the scores above still stand
        return "".join(parts) + f'<p class="warn">No {esc(split)} predictions to show: {esc(exc)}</p>'
    if not wrong.empty:
        shown = pd.DataFrame({"text": wrong["text"], **{c: wrong[c].map(", ".join)
                                                       for c in ("true", "predicted", "missing", "extra")}})
        parts += [f"<h2>Texts with missing or extra tags (first {len(shown)})</h2>", html_table(shown)]
    return "".join(parts)

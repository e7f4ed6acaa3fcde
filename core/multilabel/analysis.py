"""Error analysis of a multi-label run: per text, the tags it missed and the ones it added, filterable by tag."""

from __future__ import annotations

import pandas as pd

from core.multilabel.labels import decode
from core.runs.files import RunFiles


def tag_errors(run_id: int, split: str, tag: str | None = None) -> pd.DataFrame:
    """Rows of `split` whose predicted tag set differs from the true one (text, true, predicted, missing, extra);
    with `tag`, only the rows where that tag was missed or added."""
    frame = pd.read_parquet(RunFiles.of(run_id).predictions(split))
    true, pred = [set(decode(v)) for v in frame["label"]], [set(decode(v)) for v in frame["pred"]]
    out = pd.DataFrame({"text": frame["text"], "true": [sorted(t) for t in true],
                        "predicted": [sorted(p) for p in pred],
                        "missing": [sorted(t - p) for t, p in zip(true, pred, strict=True)],
                        "extra": [sorted(p - t) for t, p in zip(true, pred, strict=True)]})
    wrong = out["missing"].map(bool) | out["extra"].map(bool)
    if tag is not None:
        wrong &= out["missing"].map(lambda m: tag in m) | out["extra"].map(lambda e: tag in e)
    return out[wrong].reset_index(drop=True)

"""The mistakes of an image run as pictures: which images of a confusion cell to show, with their probabilities.

Pure: reads a run's prediction frame (core.text.executor.finish_run writes the image keys beside the captions);
the Evaluate page draws the thumbnails (ui.images.evaluate) and the HTML report embeds them.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass

import pandas as pd

from core.evaluation.analysis import misclassified, proba_matrix
from core.images import IMAGE
from core.images.store import ImageError, load_image

GALLERY_SIZE = 24  # thumbnails a cell shows, most confident mistakes first
REPORT_THUMBNAIL = 96  # pixels, the longer side: a report of 24 mistakes stays well under a megabyte
MARKS_THUMBNAIL = 48  # pixels: a row of the marks editor (200 rows of data: URIs stay a few hundred kB)


@dataclass(frozen=True)
class Mistake:
    key: str  # the stored image's key (core.images.store.load_image)
    caption: str  # its path in the upload
    true: str
    predicted: str
    confidence: float  # the probability of the predicted label
    true_probability: float | None  # the probability the model gave the right label (None: no probabilities)

    def text(self) -> str:
        shown = f" · {self.true} {self.true_probability:.0%}" if self.true_probability is not None else ""
        return f"{self.predicted} {self.confidence:.0%}{shown} · {self.caption}"


def mistakes(preds: pd.DataFrame, labels: list[str], true: str | None = None, predicted: str | None = None,
             limit: int = GALLERY_SIZE) -> list[Mistake]:
    """The most confident mistakes of one confusion cell (None: any label), at most `limit`."""
    if IMAGE not in preds.columns:
        return []
    wrong = misclassified(preds, true, predicted).head(limit)
    proba = proba_matrix(preds, labels)
    out = []
    for row in wrong.itertuples(index=False):
        p_true = float(proba[row.row, labels.index(row.true)]) if proba is not None and row.true in labels else None
        out.append(Mistake(key=str(preds[IMAGE].iloc[row.row]), caption=row.text, true=str(row.true),
                           predicted=str(row.predicted), confidence=float(row.confidence), true_probability=p_true))
    return out


def thumbnail_data_uri(dataset_id: int, key: str, size: int = REPORT_THUMBNAIL) -> str:
    """A stored image as a small PNG data: URI, so an HTML report carries its pictures inside itself."""
    image = load_image(dataset_id, key)
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def thumbnail_uris(dataset_id: int, keys: tuple[str, ...], size: int = MARKS_THUMBNAIL) -> list[str | None]:
    """Small data: URIs of stored images (the Versions preview of the images task); None for a file gone."""
    uris: list[str | None] = []
    for key in keys:
        try:
            uris.append(thumbnail_data_uri(dataset_id, key, size))
        except (ImageError, OSError):  # the editor shows an empty cell; the row can still be marked
            uris.append(None)
    return uris


def mistakes_html(dataset_id: int, found: list[Mistake]) -> str:
    """The report's gallery: each mistake's thumbnail (embedded) with its caption, escaped."""
    cells = []
    for mistake in found:
        try:
            src = thumbnail_data_uri(dataset_id, mistake.key)
        except (ImageError, OSError) as exc:  # a file gone from the data folder: say so in its place
            cells.append(f'<figure class="thumb"><figcaption>{html.escape(mistake.text())} '
                         f'(image unavailable: {html.escape(str(exc))})</figcaption></figure>')
            continue
        cells.append(f'<figure class="thumb"><img src="{src}" alt="{html.escape(mistake.caption)}">'
                     f"<figcaption>{html.escape(mistake.text())}</figcaption></figure>")
    return '<div class="gallery">' + "".join(cells) + "</div>"

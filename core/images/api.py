"""The image endpoint of `protolab serve` (POST /v1/runs/{id}/classify): base64-encoded image files in a JSON body,
each answered as the text endpoint answers a text (label, confidence, probabilities, low_confidence).

The server's gate checks the key and the body size (Limits.max_body_bytes) before this runs; what is wrong with
the images themselves is a ProtolabError, answered 422 with its message.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from core.errors import ProtolabError
from core.images.store import open_image

MAX_IMAGES = 64  # images in one request


class ImageRequestError(ProtolabError):
    """A request body the image endpoint cannot answer: no images, too many, not base64."""


def classify(model: Any, body: dict[str, Any]) -> dict[str, Any]:
    """{"images": ["<base64 of a JPEG/PNG/WebP/BMP/GIF file>", ...]} -> labels and one prediction per image."""
    images = body.get("images")
    if not isinstance(images, list) or not images or not all(isinstance(x, str) for x in images):
        raise ImageRequestError('the body needs "images": a list of base64-encoded image files')
    if len(images) > MAX_IMAGES:
        raise ImageRequestError(f"{len(images)} images in one request; at most {MAX_IMAGES}")
    decoded = []
    for i, text in enumerate(images):
        try:
            data = base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
        except (binascii.Error, ValueError):
            raise ImageRequestError(f"images[{i}] is not base64") from None
        decoded.append(open_image(io.BytesIO(data), name=f"images[{i}]"))  # ImageError names a bad one
    predictions = [{"label": p.label, "confidence": round(p.confidence, 6),
                    "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
                    "low_confidence": p.low_confidence} for p in model.predict(decoded)]
    return {"labels": list(model.labels), "predictions": predictions}

"""The image endpoints of `protolab serve`: POST /v1/runs/{id}/classify (base64-encoded image files in a JSON
body) and POST /v1/runs/{id}/classify/files (the files themselves, a multipart upload), each image answered as
the text endpoint answers a text (label, confidence, probabilities, low_confidence).

The server's gate checks the key, its scope and the body size (Limits.max_body_bytes) before these run. The
images of one request are scored in one forward pass. What is wrong with the images themselves: in JSON, a
ProtolabError answered 422; in an upload, a RefusedInput (400 a file that is not an image, named; 413 too many).
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image

from core.errors import ProtolabError, RefusedInput
from core.images.store import ImageError, open_image

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
    return _answer(model, decoded)


def classify_files(model: Any, files: list[tuple[str, bytes]]) -> dict[str, Any]:
    """[(file name, its bytes), ...] of a multipart upload -> labels and one prediction per file, in order."""
    if not files:
        raise RefusedInput('send at least one image file as a "files" part', 422, "no_images")
    if len(files) > MAX_IMAGES:
        raise RefusedInput(f"{len(files)} files in one request; the limit is {MAX_IMAGES} (split them over "
                           "several requests)", 413, "too_many_images")
    decoded = []
    for i, (name, data) in enumerate(files):
        try:
            decoded.append(open_image(io.BytesIO(data), name=f"files[{i}] ({name!r})"))
        except ImageError as exc:  # the client's file, named: not a server fault, not a malformed request
            raise RefusedInput(f"{exc} (send JPEG, PNG, WebP, BMP or GIF files)", 400, "not_an_image") from None
    return _answer(model, decoded)


def _answer(model: Any, images: list[Image.Image]) -> dict[str, Any]:
    # One forward pass for the request's images (at most MAX_IMAGES): a batch, not a loop of single calls.
    predictions = [{"label": p.label, "confidence": round(p.confidence, 6),
                    "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
                    "low_confidence": p.low_confidence} for p in model.predict(images, batch_size=len(images))]
    return {"labels": list(model.labels), "predictions": predictions}

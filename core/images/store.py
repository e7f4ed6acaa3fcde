"""Stored images: where an image of a dataset lives, its key, and opening any image file as an RGB picture.

Every reader of image pixels (models, thumbnails, the demo, the API) opens through `open_image`, so one place
decides how grayscale, transparent, palette, CMYK and 16-bit files and EXIF orientation become RGB.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ProtolabError
from core.images import EXTENSIONS, IMAGES_DIR, KEY_PATTERN
from core.settings import dataset_dir

BACKGROUND = (255, 255, 255)  # transparent pixels become white: product photos are cut out on white
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


class ImageError(ProtolabError):
    """A file that is not an image Protolab can read (corrupt, truncated, another format, a decompression bomb)."""


def image_key(data: bytes, image_format: str) -> str:
    """The stored name of an image file: the sha256 of its bytes and the extension of its decoded format."""
    return f"{hashlib.sha256(data).hexdigest()}.{EXTENSIONS[image_format]}"


def image_path(dataset_id: int, key: str) -> Path:
    """The file of `key` in a dataset's folder; a key that is not one (a path, '../x') is refused."""
    if not KEY_PATTERN.fullmatch(str(key)):
        raise ImageError(f"not an image key: {str(key)[:80]!r}")
    return dataset_dir(dataset_id) / IMAGES_DIR / key


def load_image(dataset_id: int, key: str) -> Image.Image:
    """A stored image of a dataset as RGB."""
    return open_image(image_path(dataset_id, key))


def open_image(source: str | Path | bytes | BinaryIO, name: str | None = None) -> Image.Image:
    """Any JPEG, PNG, WebP, BMP or GIF as a fully decoded RGB image, upright as its EXIF orientation says.

    GIFs (and other multi-frame files) give their first frame. `name` is how errors call the file (default: the
    path). Raises ImageError for a file PIL cannot read or one over PIL's decompression-bomb limit.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "the image")
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    with warnings.catch_warnings():
        # Over MAX_IMAGE_PIXELS PIL only warns (an error from twice that): both are a refusal here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(stream) as image:
                if image.format not in EXTENSIONS:
                    raise ImageError(f"{name}: a {image.format} image; expected JPEG, PNG, WebP, BMP or GIF")
                image.seek(0)
                image.load()
                upright = ImageOps.exif_transpose(image) or image
                return to_rgb(upright)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"{name}: too many pixels to be a photo (a decompression bomb?): {exc}") from None
        except FileNotFoundError:
            raise ImageError(f"{name}: no such image file") from None
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image (or a format other than JPEG, PNG, WebP, BMP, GIF)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL's ways of saying "truncated/corrupt"
            raise ImageError(f"{name}: a corrupt or truncated image ({exc})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any PIL mode: alpha composited on white, 16-bit and float scaled, CMYK converted."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        return Image.fromarray(_to_8bit(np.asarray(image), mode), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _to_8bit(pixels: np.ndarray, mode: str) -> np.ndarray:
    values = pixels.astype(np.float64)
    if mode == "F":  # floats: 0..1 when they fit there, else taken as 0..255
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
    elif mode in _SIXTEEN_BIT or (values.size and values.max() > 255):  # "I" holding 16-bit samples
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    return np.clip(np.nan_to_num(values * scale), 0, 255).round().astype(np.uint8)

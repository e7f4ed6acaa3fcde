"""Stored images: where an image of a dataset lives, its key, and opening any image file as an RGB picture.

Every reader of image pixels (models, thumbnails, the demo, the API) opens through `open_image`, so one place
decides how grayscale, transparent, palette, CMYK and 16-bit files and EXIF orientation become RGB.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import ProtolabError
from core.images import EXTENSIONS, IMAGES_DIR, KEY_PATTERN
from core.settings import dataset_dir

BACKGROUND = (255, 255, 255)  # transparent pixels become white: product photos are cut out on white
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_ORIENTATION = 0x0112  # the EXIF tag


class ImageError(ProtolabError):
    """A file that is not an image Protolab can read (corrupt, truncated, another format, a decompression bomb)."""


class DecompressionBomb(ImageError):
    """More pixels than PIL's limit (Image.MAX_IMAGE_PIXELS): refused outright, never skipped as a bad file."""


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


@dataclass(frozen=True)
class LinkedImages:
    """The files hook (core.data.storage.write_dataset `files=`) of a dataset made from another image dataset (a
    version): its images hard-linked from the parent's folder, copied where a link is impossible, so a version
    costs no space and outlives its parent's deletion."""

    parent_id: int
    keys: tuple[str, ...]

    def __call__(self, folder: Path) -> None:
        target = folder / IMAGES_DIR
        target.mkdir()
        for key in dict.fromkeys(self.keys):  # each file once, whatever the rows repeat
            source = image_path(self.parent_id, key)
            try:
                os.link(source, target / key)
            except FileNotFoundError:
                raise ImageError(f"image {key} of dataset {self.parent_id} is missing from its folder") from None
            except OSError:  # another file system, or links not allowed: a copy does the same
                shutil.copyfile(source, target / key)


def open_image(source: str | Path | bytes | BinaryIO, name: str | None = None) -> Image.Image:
    """Any JPEG, PNG, WebP, BMP or GIF as a fully decoded RGB image, upright as its EXIF orientation says.

    GIFs (and other multi-frame files) give their first frame. `name` is how errors call the file (default: the
    path). Raises ImageError for a file PIL cannot read or one over PIL's decompression-bomb limit.
    """
    name = name or (str(source) if isinstance(source, (str, Path)) else "the image")
    with _reading(source, name) as image:
        image.load()
        upright = ImageOps.exif_transpose(image) or image
        return to_rgb(upright)


@dataclass(frozen=True)
class ImageInfo:
    format: str  # PIL's name: JPEG, PNG, WEBP, BMP, GIF (MPO: a camera's multi-picture JPEG)
    width: int  # upright, as open_image returns it
    height: int


def check_image(data: bytes, name: str) -> ImageInfo:
    """Decode a file as an import does, without keeping its pixels: its format and upright size, or ImageError.

    Every byte is decoded (a truncated file fails here, not in training); a JPEG at a reduced scale (its DCT
    decodes to 1/8 size much faster, and still reads every byte), so a folder of camera photos checks quickly.
    """
    if not data:
        raise ImageError(f"{name}: an empty file (0 bytes)")
    with _reading(data, name) as image:
        width, height = image.size
        orientation = image.getexif().get(_ORIENTATION, 1)
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
        image.load()
        image_format = str(image.format)
    if orientation in (5, 6, 7, 8):  # a quarter turn: width and height swap
        width, height = height, width
    return ImageInfo(image_format, width, height)


@contextmanager
def _reading(source: str | Path | bytes | BinaryIO, name: str) -> Iterator[Image.Image]:
    """An opened image of an accepted format (first frame); PIL's many failures as one ImageError naming it."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    with warnings.catch_warnings():
        # Over MAX_IMAGE_PIXELS PIL only warns (an error from twice that): both are a refusal here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(stream) as image:
                if image.format not in EXTENSIONS:
                    raise ImageError(f"{name}: a {image.format} image; expected JPEG, PNG, WebP, BMP or GIF")
                image.seek(0)
                yield image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DecompressionBomb(f"{name}: too many pixels to be a photo (a decompression bomb?): {exc}") from None
        except FileNotFoundError:
            raise ImageError(f"{name}: no such image file") from None
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image (or a format other than JPEG, PNG, WebP, BMP, GIF)") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:  # PIL's "truncated/corrupt"
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

"""Opening stored images: every mode and format an upload may hold becomes upright 8-bit RGB; bad files are
refused with an ImageError naming the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from core.data.storage import write_dataset
from core.images import KEY_PATTERN
from core.images.store import ImageError, LinkedImages, check_image, image_key, image_path, open_image
from core.settings import load_settings
from db import session_scope


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


@pytest.mark.parametrize(("image", "fmt", "pixel"), [
    (Image.new("L", (4, 3), 200), "PNG", (200, 200, 200)),
    (Image.new("1", (4, 3), 1), "BMP", (255, 255, 255)),
    (Image.new("RGBA", (4, 3), (255, 0, 0, 0)), "PNG", (255, 255, 255)),  # transparent: white, not red or black
    (Image.new("LA", (4, 3), (0, 255)), "PNG", (0, 0, 0)),
    (Image.new("CMYK", (4, 3), (0, 255, 255, 0)), "JPEG", None),  # red in CMYK
    (Image.new("RGB", (4, 3), (10, 200, 30)), "WEBP", None),
    (Image.fromarray(np.full((3, 4), 65535, dtype=np.uint16)), "PNG", (255, 255, 255)),  # 16-bit white
])
def test_every_mode_opens_as_rgb(image: Image.Image, fmt: str, pixel: tuple[int, int, int] | None) -> None:
    opened = open_image(encode(image, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert opened.mode == "RGB" and opened.size == (4, 3)
    if pixel is not None:
        assert opened.getpixel((1, 1)) == pixel
    elif image.mode == "CMYK":
        r, g, b = opened.getpixel((1, 1))
        assert r > 200 and g < 60 and b < 60
    else:
        assert opened.getpixel((1, 1)) == (10, 200, 30)


def test_a_sixteen_bit_mid_grey_is_mid_grey_not_clipped_white() -> None:
    opened = open_image(encode(Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16)), "PNG"))
    assert opened.getpixel((0, 0)) == (128, 128, 128)


def test_palette_with_transparency_and_gif_first_frame() -> None:
    first, second = Image.new("P", (5, 5), 1), Image.new("P", (5, 5), 2)
    palette = [0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9)
    for frame in (first, second):
        frame.putpalette(palette)
    gif = encode(first, "GIF", save_all=True, append_images=[second])
    assert open_image(gif).getpixel((2, 2)) == (255, 0, 0)  # the first frame (red), not the last (blue)
    transparent = encode(first, "PNG", transparency=1)
    assert open_image(transparent).getpixel((2, 2)) == (255, 255, 255)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (6, 2), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    assert open_image(encode(image, "JPEG", exif=exif)).size == (2, 6)


def test_bad_files_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    png = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    with pytest.raises(ImageError, match=r"cat\.png: not an image"):
        open_image(b"hello, not a picture", "cat.png")
    with pytest.raises(ImageError, match=r"cat\.png: not an image"):
        open_image(b"", "cat.png")
    with pytest.raises(ImageError, match=r"cat\.png: a corrupt or truncated image"):
        open_image(png[: len(png) // 2], "cat.png")
    with pytest.raises(ImageError, match=r"a TIFF image"):
        open_image(encode(Image.new("RGB", (4, 4)), "TIFF"), "scan.tif")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match=r"bomb\.png: too many pixels"):
        open_image(png, "bomb.png")


def test_keys_are_content_hashes_and_paths_stay_in_the_dataset() -> None:
    data = encode(Image.new("RGB", (2, 2)), "PNG")
    key = image_key(data, "PNG")
    assert KEY_PATTERN.fullmatch(key) and key.endswith(".png") and key == image_key(bytes(data), "PNG")
    assert image_path(3, key).parts[-3:] == ("3", "images", key)
    for bad in ("../../etc/passwd", "/abs.png", key.upper(), key + "/x"):
        with pytest.raises(ImageError):
            image_path(3, bad)


def test_a_dataset_writes_its_own_files_all_or_nothing() -> None:
    frame = pd.DataFrame({"image": ["a"], "label": ["x"], "split": ["train"]})

    def images(folder: Path) -> None:
        (folder / "images").mkdir()
        (folder / "images" / "a").write_bytes(b"pixels")

    with session_scope() as s:
        row = write_dataset(s, name="pics", task="images", frame=frame, mapping={}, files=images)
        dataset_id = row.id
    assert (load_settings().datasets_dir / str(dataset_id) / "images" / "a").read_bytes() == b"pixels"

    def broken(folder: Path) -> None:
        images(folder)
        raise ImageError("b.png: not an image")

    with pytest.raises(ImageError), session_scope() as s:
        write_dataset(s, name="broken", task="images", frame=frame, mapping={}, files=broken)
    assert sorted(p.name for p in load_settings().datasets_dir.iterdir()) == [str(dataset_id)]


SAMPLES = {fmt: encode(Image.new("RGB", (9, 7), (30, 60, 90)), fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "WEBP")}


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from(sorted(SAMPLES)), at=st.integers(0, 10_000), junk=st.binary(max_size=16),
       cut=st.booleans())
def test_a_damaged_file_is_an_image_error_never_a_crash(fmt: str, at: int, junk: bytes, cut: bool) -> None:
    data = SAMPLES[fmt]
    at %= len(data)
    damaged = data[:at] if cut else data[:at] + junk + data[at + len(junk):]
    for check in (lambda: check_image(damaged, "x"), lambda: open_image(damaged, "x")):
        try:
            check()
        except ImageError:
            pass


def test_a_version_links_its_parents_images_and_outlives_it() -> None:
    data = encode(Image.new("RGB", (3, 3), (9, 9, 9)), "PNG")
    key = image_key(data, "PNG")
    frame = pd.DataFrame({"image": [key, key], "label": ["x", "y"], "split": ["train", "test"]})

    def images(folder: Path) -> None:
        (folder / "images").mkdir()
        (folder / "images" / key).write_bytes(data)

    with session_scope() as s:
        parent = write_dataset(s, name="pics", task="images", frame=frame, mapping={}, files=images).id
        child = write_dataset(s, name="pics v2", task="images", frame=frame, mapping={}, parent_id=parent,
                              files=LinkedImages(parent, tuple(frame["image"]))).id
    assert image_path(child, key).read_bytes() == data
    assert image_path(child, key).stat().st_ino == image_path(parent, key).stat().st_ino  # a link, not a copy
    image_path(parent, key).unlink()
    assert open_image(image_path(child, key)).getpixel((1, 1)) == (9, 9, 9)
    with pytest.raises(ImageError, match="missing"), session_scope() as s:
        write_dataset(s, name="pics v3", task="images", frame=frame, mapping={}, files=LinkedImages(parent, (key,)))

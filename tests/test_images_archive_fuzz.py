"""Hypothesis on the image archive parser: any member names and contents end in a stored dataset or the product's
clear error (DatasetError), and nothing is ever written outside the dataset store."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.data import datasets as ds
from core.data.types import DatasetError
from core.images import IMAGES_DIR, KEY_PATTERN
from core.images.importing import ImageOptions, prepare_images
from core.images.reading import guess_options, read_images
from core.settings import load_settings
from db import session_scope
from tests.image_files import folders, make_zip, picture

FOLDERS = ["cat", "dog", "bird", "train", "test", "val", "é x", "__MACOSX"]
FILES = ["a.png", "b.jpg", "c.gif", "d.webp", "e.bmp", "labels.csv", "._x.png", "bad.txt", ".DS_Store"]
DANGER = ["..", ".", "", "C:", "\\", "/", "\x00", " ", "a/../..", "/etc"]
safe = st.tuples(st.lists(st.sampled_from(FOLDERS), max_size=3), st.sampled_from(FILES),
                 st.integers(0, 3)).map(lambda t: "/".join([*t[0], f"{t[2]}{t[1]}"]))
risky = st.lists(st.sampled_from(FOLDERS + FILES + DANGER), min_size=1, max_size=5).map("/".join)
names = st.one_of(safe, safe, safe, safe, risky)
contents = st.one_of(st.integers(0, 50).map(picture), st.integers(0, 50).map(picture), st.binary(max_size=64),
                     st.just(b""), st.just(b"file,label\ncat/0a.png,cat\ndog/0a.png,dog\n"))
_names = itertools.count()


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.lists(st.tuples(names, contents), min_size=1, max_size=16), skip=st.booleans(),
       base=st.booleans())
def test_any_archive_is_stored_or_refused_clearly(protolab_home: Path, members: list[tuple[str, bytes]],
                                                  skip: bool, base: bool) -> None:
    before = files_under(protolab_home.parent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name" is part of the input space
        # On top of a valid ImageFolder layout half the time, so that imports get far enough to store.
        data = make_zip({**(folders({"cat": 4, "dog": 4}, start=100) if base else {}), **dict(members)})
    try:
        table = read_images(data, "fuzz.zip")
        guess = guess_options(table)
        options = ImageOptions(guess.layout, guess.image_col, guess.label_col, skip_bad=skip, drop_rare_classes=skip)
        prepared = prepare_images(table, table.payload.archive, options)
        with session_scope() as s:
            ds.import_dataset(s, prepared, name=f"fuzz {next(_names)}", allow_duplicate=True)
    except DatasetError:
        pass
    datasets = load_settings().datasets_dir
    new = files_under(protolab_home.parent) - before
    for path in new:
        relative = path.relative_to(protolab_home.parent)
        if path.is_relative_to(datasets):
            inside = path.relative_to(datasets).parts
            assert inside[0].isdigit() and (inside[1:] == ("data.parquet",)
                                            or inside[1] == IMAGES_DIR and KEY_PATTERN.fullmatch(inside[2])), relative
        else:
            assert path.name.startswith("protolab.db"), relative  # the database, nothing else

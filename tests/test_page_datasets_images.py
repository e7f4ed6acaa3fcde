"""AppTest of the Datasets page with a ZIP of images: the task is offered from the upload, the folders give the
labels, unreadable files are listed until skipped, and the stored dataset shows its charts and thumbnails."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from db import datasets as dataset_queries
from db import session_scope
from tests.helpers import form_key
from tests.image_files import folders, make_zip

PAGE = Path(__file__).resolve().parents[1] / "pages" / "datasets.py"


def upload_zip(data: bytes, name: str = "pets.zip") -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.file_uploader(key="upload").set_value((name, data, "application/zip"))
    return at.run()


def test_a_zip_of_class_folders_is_offered_as_images_saved_and_shown() -> None:
    at = upload_zip(make_zip({**folders({"cat": 5, "dog": 5}, "train"), **folders({"cat": 2, "dog": 2}, "test",
                                                                                  start=50)}))
    assert not at.exception and not at.error
    assert at.radio(key="task").value == "images"  # picked from the upload, not by the user
    assert at.radio(key=form_key(at, "image_layout")).value == "folders"
    assert any("Checks passed: 14 rows" in s.value for s in at.success)
    at.button(key=form_key(at, "save")).click().run()
    assert not at.exception and not at.error
    with session_scope() as s:
        (dataset,) = dataset_queries.list_datasets(s)
        assert dataset.task == "images" and dataset.name == "pets" and dataset.stats["classes"] == {"cat": 7, "dog": 7}
    at.run()  # the list tab now inspects it: class balance, sizes, aspect ratios and a thumbnail grid a class
    assert not at.exception and not at.error
    assert {"chart_classes", "chart_sizes", "chart_aspects"} <= {c.key for c in at.get("plotly_chart")}
    assert len(at.get("image")) == 2


def test_unreadable_files_are_listed_until_the_user_skips_them() -> None:
    at = upload_zip(make_zip({**folders({"cat": 4, "dog": 4}), "dog/broken.jpg": b"\xff\xd8 not really"}))
    assert any("1 file is not a readable image: dog/broken.jpg" in e.value for e in at.error)
    at.checkbox(key=form_key(at, "skip_bad")).check().run()
    assert not at.error
    assert any("skipped 1 unreadable file: dog/broken.jpg" in w.value for w in at.warning)
    assert any("Checks passed: 8 rows" in s.value for s in at.success)

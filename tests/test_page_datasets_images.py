"""AppTest of the Datasets page with a ZIP of images: the task is offered from the upload, the folders give the
labels, unreadable files are listed until skipped, and the stored dataset shows its charts and thumbnails."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from db import datasets as dataset_queries
from db import session_scope
from tests.helpers import form_key
from tests.image_files import folders, make_zip, picture

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


def test_a_table_of_paths_takes_its_zip_as_a_second_upload() -> None:
    at = AppTest.from_file(str(PAGE), default_timeout=60).run()
    at.radio(key="task").set_value("images").run()
    table = pd.DataFrame({"file": [f"shots/{i}.png" for i in range(8)], "kind": ["a", "b"] * 4})
    at.file_uploader(key="upload").set_value(("labels.csv", table.to_csv(index=False).encode(), "text/csv")).run()
    assert at.radio(key="task").value == "images"  # a table is not claimed away from the images task
    assert any("upload the ZIP that holds them" in e.value for e in at.error)
    at.file_uploader(key=form_key(at, "images_zip")).set_value(
        ("shots.zip", make_zip({f"shots/{i}.png": picture(i) for i in range(8)}), "application/zip")).run()
    assert not at.error
    assert at.selectbox(key=form_key(at, "map_image")).value == "file"
    assert at.selectbox(key=form_key(at, "map_label")).value == "kind"
    at.button(key=form_key(at, "save")).click().run()
    with session_scope() as s:
        (dataset,) = dataset_queries.list_datasets(s)
        assert dataset.stats["classes"] == {"a": 4, "b": 4} and dataset.mapping["layout"] == "table"

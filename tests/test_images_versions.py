"""Versions of image datasets: relabelled and excluded rows by row id, the version's folder holding its images."""

from __future__ import annotations

import pandas as pd
import pytest

from core.data import datasets as ds
from core.data.storage import ROW_ID, load_frame
from core.data.types import SplitConfig
from core.data.versions import VersionError, create_dataset_version, mark_test_rows, marks_to_changes
from core.images import IMAGE, IMAGES_DIR, TASK
from core.images.importing import ImageOptions, prepare_images
from core.images.reading import guess_options, read_images
from core.images.store import ImageError, image_path, open_image
from core.settings import dataset_dir, load_settings
from db import datasets as dataset_queries
from db import session_scope
from tests.image_files import folders, make_zip


def store_pets() -> tuple[int, pd.DataFrame]:
    """Six cats and six dogs, split half / quarter / quarter; the stored frame."""
    table = read_images(make_zip(folders({"cat": 6, "dog": 6})), "pets.zip")
    guessed = guess_options(table)
    options = ImageOptions(layout=guessed.layout, image_col=guessed.image_col, label_col=guessed.label_col)
    prepared = prepare_images(table, table.payload.archive, options, SplitConfig((0.5, 0.25, 0.25)))
    with session_scope() as s:
        dataset = ds.import_dataset(s, prepared, name="pets")
        return dataset.id, load_frame(dataset)


def change(row: pd.Series, action: str, to: str | None = None) -> dict:
    """A change naming its row only by row id, as the image error table does."""
    return {"action": action, "split": row["split"], ROW_ID: int(row[ROW_ID]), "label": row["label"],
            **({"to": to} if to else {})}


def stored_keys(dataset_id: int) -> set[str]:
    return {p.name for p in (dataset_dir(dataset_id) / IMAGES_DIR).iterdir()}


def test_a_version_relabels_and_excludes_by_row_id_and_links_the_kept_images() -> None:
    parent_id, frame = store_pets()
    train = frame[frame["split"] == "train"]
    dropped, relabelled = train.iloc[0], train[train["label"] == "cat"].iloc[-1]
    with session_scope() as s:
        version = create_dataset_version(s, parent_id, [change(dropped, "exclude"),
                                                        change(relabelled, "relabel", "dog")])
        version_id, stats, record = version.id, dict(version.stats), dict(version.changes)
        assert version.task == TASK and version.parent_id == parent_id
        child = load_frame(version)
    assert len(child) == len(frame) - 1
    assert int(dropped[ROW_ID]) not in set(child[ROW_ID])
    assert child.set_index(ROW_ID).loc[int(relabelled[ROW_ID]), "label"] == "dog"
    kept = frame[frame[ROW_ID] != dropped[ROW_ID]]  # every other row as it was, by its stable row id
    assert child.set_index(ROW_ID)[IMAGE].to_dict() == kept.set_index(ROW_ID)[IMAGE].to_dict()
    # The folder holds exactly the version's images, each the parent's file linked (no copy), each readable.
    assert stored_keys(version_id) == set(child[IMAGE]) and dropped[IMAGE] not in stored_keys(version_id)
    for key in child[IMAGE]:
        assert image_path(version_id, key).stat().st_ino == image_path(parent_id, key).stat().st_ino
        assert open_image(image_path(version_id, key)).size == (12, 10)
    assert stats["images"] == len(child) and stats["classes"] == child["label"].value_counts().to_dict()
    assert stats["classes_per_split"]["train"] == child[child["split"] == "train"]["label"].value_counts().to_dict()
    assert (record["excluded"], record["relabelled"]) == (1, 1)
    assert record["changes"][0][IMAGE] == dropped[IMAGE]  # the record names the image a row-id change touched


def test_test_image_marks_wait_then_make_a_new_test_set() -> None:
    parent_id, frame = store_pets()
    test_row = frame[frame["split"] == "test"].iloc[0]
    other = "dog" if test_row["label"] == "cat" else "cat"
    with session_scope() as s:
        assert mark_test_rows(s, parent_id, [change(test_row, "relabel", other)]) == 1
    with session_scope() as s:
        with pytest.raises(VersionError, match="no rows are marked"):  # marks wait for a new test set
            create_dataset_version(s, parent_id, [])
        version = create_dataset_version(s, parent_id, [], new_test_set=True)
        child, version_id = load_frame(version), version.id
    assert child.set_index(ROW_ID).loc[int(test_row[ROW_ID]), "label"] == other
    assert stored_keys(version_id) == set(frame[IMAGE])


def test_a_missing_parent_image_stores_no_half_version() -> None:
    parent_id, frame = store_pets()
    image_path(parent_id, frame[IMAGE].iloc[-1]).unlink()
    root = load_settings().datasets_dir
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(ImageError, match="missing"), session_scope() as s:
        create_dataset_version(s, parent_id, [change(frame[frame["split"] == "train"].iloc[0], "exclude")])
    with session_scope() as s:
        assert [d.id for d in dataset_queries.list_datasets(s)] == [parent_id]
    assert sorted(p.name for p in root.iterdir()) == before  # no staging folder, no version folder


def test_image_marks_become_changes_by_row_id_and_key() -> None:
    marks = pd.DataFrame({ROW_ID: [3, 5], IMAGE: ["a" * 64 + ".png", "b" * 64 + ".png"], "true": ["cat", "dog"],
                          "exclude": [True, False], "relabel_to": [None, "cat"]})
    changes = marks_to_changes(marks, "validation", IMAGE)
    assert changes == [
        {"action": "exclude", "split": "validation", IMAGE: "a" * 64 + ".png", "label": "cat", ROW_ID: 3},
        {"action": "relabel", "split": "validation", IMAGE: "b" * 64 + ".png", "label": "dog", ROW_ID: 5,
         "to": "cat"}]


def test_a_change_naming_no_row_is_refused() -> None:
    parent_id, _ = store_pets()
    with pytest.raises(VersionError, match="name its row"), session_scope() as s:
        create_dataset_version(s, parent_id, [{"action": "exclude", "split": "train", "label": "cat"}])

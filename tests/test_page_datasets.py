"""AppTest of the Datasets page: upload + preview + mapping + save, validation errors, demos, inspect,
rename and delete with confirmation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from db import datasets as dataset_queries
from db import session_scope
from tests.helpers import form_key

PAGE = Path(__file__).resolve().parents[1] / "pages" / "datasets.py"


def page() -> AppTest:
    return AppTest.from_file(str(PAGE), default_timeout=60).run()


def upload_csv(at: AppTest, frame: pd.DataFrame, name: str = "reviews.csv", key: str = "upload") -> AppTest:
    at.file_uploader(key=key).set_value((name, frame.to_csv(index=False).encode("cp1252"), "text/csv"))
    return at.run()


def reviews(n: int = 30) -> pd.DataFrame:
    labels = ["positive", "negative", "neutral"]
    return pd.DataFrame({"id": range(n), "body": [f"review {i}: the thing was {labels[i % 3]}" for i in range(n)],
                         "stars": [labels[i % 3] for i in range(n)]})


def stored_names() -> list[str]:
    with session_scope() as s:
        return [d.name for d in dataset_queries.list_datasets(s)]


def test_upload_map_and_save_classification() -> None:
    at = upload_csv(page(), reviews())
    assert not at.exception
    assert at.selectbox(key=form_key(at, "map_text")).value == "body"
    assert at.selectbox(key=form_key(at, "map_label")).value == "stars"
    assert stored_names() == []  # preview and checks, nothing stored yet
    assert any("Checks passed: 30 rows" in s.value for s in at.success)
    at.number_input(key=form_key(at, "seed")).set_value(7)
    at.text_input(key=form_key(at, "split")).set_value("0.6,0.2,0.2")
    at.text_input(key=form_key(at, "name")).set_value("my reviews")
    at.run()
    at.button(key=form_key(at, "save")).click().run()
    assert not at.exception and not at.error
    assert stored_names() == ["my reviews"]
    with session_scope() as s:
        row = dataset_queries.get_dataset_by_name(s, "my reviews")
        assert row.mapping["text"] == "body" and row.mapping["split"]["seed"] == 7
        assert row.split_counts == {"train": 18, "validation": 6, "test": 6}
    # the same upload again is recognised; saving needs an explicit "store a copy"
    at.run()
    assert any("already stored as 'my reviews'" in i.value for i in at.info)
    assert at.button(key=form_key(at, "save")).disabled


def test_remapping_to_a_bad_column_shows_the_error_and_stores_nothing() -> None:
    at = upload_csv(page(), reviews())
    at.selectbox(key=form_key(at, "map_label")).set_value("id").run()  # 30 classes of one row each
    assert any("has 30 different values in 30 rows" in e.value for e in at.error)
    assert stored_names() == []


def test_unreadable_upload_shows_one_error() -> None:
    at = page()
    at.file_uploader(key="upload").set_value(("blob.bin", bytes(range(256)) * 8, "application/octet-stream"))
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "blob.bin: not a table: it looks like a binary file (expected CSV, TSV, JSON, JSON Lines, Parquet or "
        "Excel .xlsx, optionally .gz/.zip)"]


def test_interactions_upload_with_catalogue() -> None:
    rows = [{"user_id": f"u{u}", "item_id": f"i{(u + k) % 8}", "rating": (u + k) % 5 + 1,
             "timestamp": 1_700_000_000 + k} for u in range(8) for k in range(5)]
    at = page()
    at.radio(key="task").set_value("interactions").run()
    at = upload_csv(at, pd.DataFrame(rows), "ratings.csv")
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(8)], "title": [f"Film {i}" for i in range(8)]})
    at = upload_csv(at, items, "movies.csv", key=form_key(at, "items_upload"))
    assert at.selectbox(key=form_key(at, "map_rating")).value == "rating"
    at.radio(key=form_key(at, "split_method")).set_value("leave last out (by time)").run()
    at.text_input(key=form_key(at, "name")).set_value("ratings").run()
    at.button(key=form_key(at, "save")).click().run()
    assert not at.exception and not at.error
    with session_scope() as s:
        row = dataset_queries.get_dataset_by_name(s, "ratings")
        assert row.stats["users"] == 8 and row.stats["catalogue_items"] == 8
        assert row.mapping["split"]["method"] == "time"


def test_demo_inspect_rename_and_delete_with_confirmation() -> None:
    at = page()
    at.button(key="demo_product-reviews").click().run()
    assert not at.exception
    assert stored_names() == ["product-reviews"]
    assert at.selectbox(key="inspect").options == ["product-reviews"]
    assert len(at.get("plotly_chart")) >= 2
    at.text_input(key=f"rename_to_{at.selectbox(key='inspect').value}").set_value("reviews v2")
    at.button(key="rename").click().run()
    assert stored_names() == ["reviews v2"]
    at.button(key="delete").click().run()
    assert stored_names() == ["reviews v2"]  # asks first
    assert any("Delete 'reviews v2'" in w.value for w in at.warning)
    at.button(key="confirm_delete_yes").click().run()
    assert not at.exception
    assert stored_names() == []


def test_delete_names_the_runs_that_go(classification_dataset: int) -> None:
    from db import runs as run_queries
    from db.enums import RunStatus, TaskKind

    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                     model_kind="tfidf", config={})
        run.status = RunStatus.COMPLETED
        run_id = run.id
    at = page()
    at.button(key="delete").click().run()
    assert any(f"its 1 runs (#{run_id})" in w.value for w in at.warning)


def test_a_new_file_gets_fresh_guesses_and_name() -> None:
    at = upload_csv(page(), reviews(), "first.csv")
    at.selectbox(key=form_key(at, "map_label")).set_value("id").run()
    other = pd.DataFrame({"review": [f"long enough review text {i}" for i in range(30)],
                          "sentiment": ["good", "bad"] * 15})
    at = upload_csv(at, other, "second.csv")
    assert at.selectbox(key=form_key(at, "map_text")).value == "review"
    assert at.selectbox(key=form_key(at, "map_label")).value == "sentiment"
    assert at.text_input(key=form_key(at, "name")).value == "second"


def test_app_start_sweeps_old_orphan_folders() -> None:
    import os
    import time

    from core.settings import load_settings

    orphan = load_settings().datasets_dir / ".staging-crashed"
    orphan.mkdir(parents=True)
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    at = page()
    assert not at.exception and not orphan.exists()

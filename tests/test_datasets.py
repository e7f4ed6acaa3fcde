"""Datasets core: parsing every format/encoding, guesses, each bad-input case (message + nothing stored),
splits, re-upload detection, profiles and charts, plus hypothesis property tests of the parser."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.charts import datasets as charts
from core.data import datasets as ds
from core.data.classification import prepare_classification
from core.data.interactions import prepare_interactions
from core.data.mapping import guess_classification, guess_interactions
from core.data.profiling import classification_profile, interactions_profile, long_tail_share
from core.data.splits import parse_fractions, split_by_label
from core.data.storage import content_digest
from core.data.types import (
    ClassificationMapping,
    CleanOptions,
    DatasetError,
    DuplicateContent,
    InteractionsMapping,
    PreparedDataset,
    SplitConfig,
)
from core.settings import dataset_dir, load_settings, run_dir
from db import datasets as dataset_queries
from db import session_scope
from db.enums import RunStatus, TaskKind


def csv_bytes(rows: list[list[object]], header: list[str], sep: str = ",", encoding: str = "utf-8") -> bytes:
    frame = pd.DataFrame(rows, columns=header)
    return frame.to_csv(index=False, sep=sep).encode(encoding)


def reviews(n: int = 30) -> list[list[object]]:
    labels = ["positive", "negative", "neutral"]
    return [[f"review number {i} says the product is {labels[i % 3]}", labels[i % 3]] for i in range(n)]


def nothing_stored() -> bool:
    with session_scope() as s:
        count = dataset_queries.count_datasets(s)
    folder = load_settings().datasets_dir
    return count == 0 and (not folder.exists() or not any(folder.iterdir()))


def import_bytes(data: bytes, filename: str = "upload.csv", task: str = "classification", name: str = "d",
                 items: bytes | None = None, options: CleanOptions | None = None,
                 split: SplitConfig | None = None, **mapping: str | None) -> PreparedDataset:
    """The whole flow the page and CLI use: read, map (given or guessed), prepare, store."""
    table = ds.read_table(data, filename)
    if task == "classification":
        guess = guess_classification(table.frame)
        m = ClassificationMapping(mapping.get("text", guess.text), mapping.get("label", guess.label))
        prepared = prepare_classification(table, m, split, options)
    else:
        guess = guess_interactions(table.frame)
        m2 = InteractionsMapping(**{k: mapping.get(k, getattr(guess, k)) for k in
                                    ("user", "item", "rating", "timestamp")})
        items_table = ds.read_table(items, "items.csv") if items is not None else None
        prepared = prepare_interactions(table, m2, split, items_table)
    with session_scope() as s:
        ds.import_dataset(s, prepared, name=name)
    return prepared


def rejected(data: bytes, match: str, **kwargs: object) -> str:
    with pytest.raises(DatasetError, match=match) as info:
        import_bytes(data, **kwargs)  # type: ignore[arg-type]
    assert nothing_stored()
    return str(info.value)


# --- formats and encodings -----------------------------------------------------------------------

def _frames() -> pd.DataFrame:
    return pd.DataFrame(reviews(12), columns=["text", "label"])


@pytest.mark.parametrize("kind", ["csv", "tsv", "semicolon", "pipe", "json", "jsonl", "parquet", "xlsx",
                                  "csv.gz", "csv.zip", "utf8-bom", "utf16", "utf16le-nobom", "cp1252"])
def test_formats_and_encodings_parse_to_the_same_table(kind: str) -> None:
    frame = _frames()
    if kind == "cp1252":
        frame.loc[0, "text"] = "café – “quoted” naïve"
    if kind in ("utf16", "utf16le-nobom", "utf8-bom"):
        frame.loc[0, "text"] = "über café ☕"
    text = frame.to_csv(index=False)
    makers = {
        "csv": lambda: (text.encode(), "a.csv"), "tsv": lambda: (frame.to_csv(index=False, sep="\t").encode(), "a.tsv"),
        "semicolon": lambda: (frame.to_csv(index=False, sep=";").encode(), "a.txt"),
        "pipe": lambda: (frame.to_csv(index=False, sep="|").encode(), "a.txt"),
        "json": lambda: (frame.to_json(orient="records").encode(), "a.json"),
        "jsonl": lambda: (frame.to_json(orient="records", lines=True).encode(), "a.jsonl"),
        "csv.gz": lambda: (gzip.compress(text.encode()), "a.csv.gz"),
        "utf8-bom": lambda: (b"\xef\xbb\xbf" + text.encode(), "a.csv"),
        "utf16": lambda: (text.encode("utf-16"), "a.csv"),
        "utf16le-nobom": lambda: (text.encode("utf-16-le"), "a.csv"),
        "cp1252": lambda: (text.encode("cp1252"), "a.csv"),
    }
    data, name = makers[kind]() if kind in makers else (b"", "")
    if kind == "parquet":
        buf = io.BytesIO()
        frame.to_parquet(buf)
        data, name = buf.getvalue(), "a.parquet"
    if kind == "xlsx":
        buf = io.BytesIO()
        frame.to_excel(buf, index=False)
        data, name = buf.getvalue(), "a.xlsx"
    if kind == "csv.zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("inner/a.csv", text)
        data, name = buf.getvalue(), "a.zip"
    table = ds.read_table(data, name)
    assert list(table.frame.columns) == ["text", "label"]
    assert table.frame["text"].tolist() == frame["text"].tolist()
    assert table.frame["label"].tolist() == frame["label"].tolist()
    if kind == "cp1252":
        assert table.encoding == "cp1252" and any("Windows-1252" in n for n in table.notes)
    if kind.startswith("utf16"):
        assert any("UTF-16" in n for n in table.notes)


def test_path_source_and_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(csv_bytes(reviews(6), ["text", "label"]))
    assert ds.read_table(path).filename == "x.csv"
    with pytest.raises(DatasetError, match="no such file"):
        ds.read_table(tmp_path / "missing.csv")


def test_zip_with_several_files_is_refused() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.csv", "text,label\nx,y\n")
        zf.writestr("b.csv", "text,label\nx,y\n")
    with pytest.raises(DatasetError, match="holds 2 files"):
        ds.read_table(buf.getvalue(), "two.zip")


def test_malformed_csv_names_the_line() -> None:
    msg = rejected(b"text,label\nhello,positive\nbad,row,with,extra\n", "malformed", filename="m.csv")
    assert "m.csv" in msg and "line 3" in msg


# --- guesses -------------------------------------------------------------------------------------

def test_guess_text_and_label_with_extra_columns() -> None:
    frame = pd.DataFrame({"id": range(30), "confidence": np.linspace(0.3, 1, 30),
                          "sentiment": ["positive", "negative", "neutral"] * 10,
                          "tweet": [f"this is a fairly long tweet number {i} about things" for i in range(30)]})
    assert guess_classification(frame) == ClassificationMapping(text="tweet", label="sentiment")


def test_string_rating_column_is_a_label_not_a_number() -> None:
    frame = pd.DataFrame({"user": [f"u{i % 5}" for i in range(30)], "item": [f"i{i % 7}" for i in range(30)],
                          "rating": ["positive", "negative", "neutral"] * 10,
                          "comment": [f"a long enough comment number {i}" for i in range(30)]})
    assert guess_interactions(frame).rating is None
    assert guess_classification(frame).label == "rating"
    numeric = frame.assign(rating=[str(i % 5 + 1) for i in range(30)])
    assert guess_interactions(numeric).rating == "rating"


def test_guess_interactions_by_name_and_timestamp_content() -> None:
    frame = pd.DataFrame({"when": [f"2024-01-0{i % 9 + 1}" for i in range(20)], "customer_id": ["c"] * 20,
                          "product_id": ["p"] * 20, "stars": ["5"] * 20})
    assert guess_interactions(frame) == InteractionsMapping("customer_id", "product_id", "stars", "when")


# --- bad input: message names file, column, rows; nothing stored -----------------------------------

def test_binary_file_is_not_a_table() -> None:
    rejected(bytes(range(256)) * 20, r"bin\.dat: not a table", filename="bin.dat")
    rejected(b"\x89PNG\r\n\x1a\n" + bytes(200), "not a table", filename="pic.png")


def test_empty_file() -> None:
    rejected(b"", r"e\.csv: the file is empty", filename="e.csv")
    rejected(b"  \n\n", "the file is empty", filename="e.csv")


def test_header_only() -> None:
    rejected(b"text,label\n", r"h\.csv: only a header row \(text, label\)", filename="h.csv")


def test_line_breaks_in_header_cells_become_spaces() -> None:
    table = ds.read_table(b'"review\ntext",label\n"good",pos\n"bad",neg\n', "multi.csv")
    assert list(table.frame.columns) == ["review text", "label"]


def test_mapped_column_missing() -> None:
    msg = rejected(csv_bytes(reviews(), ["text", "label"]), "column 'body' \\(mapped as text\\) is missing",
                   filename="r.csv", text="body")
    assert "r.csv" in msg and "columns are: text, label" in msg


def test_every_text_empty() -> None:
    rows = [["", "positive"], ["  ", "negative"], ["", "neutral"]]
    rejected(csv_bytes(rows, ["text", "label"]), r"r\.csv: every text in column 'text' is empty",
             filename="r.csv", text="text", label="label")


def test_fewer_than_two_classes() -> None:
    rows = [[f"text {i}", "positive"] for i in range(10)]
    rejected(csv_bytes(rows, ["text", "label"]), "column 'label' has 1 class \\('positive'\\); at least 2",
             filename="r.csv", text="text", label="label")


def test_class_too_small_for_every_split_is_an_error_or_dropped() -> None:
    rows = reviews(30) + [["rare one", "angry"], ["rare two", "angry"]]
    data = csv_bytes(rows, ["text", "label"])
    msg = rejected(data, "class 'angry' in column 'label' has only 2 row", filename="r.csv", text="text",
                   label="label")
    assert "rows 32, 33" in msg and "train, validation, test" in msg
    prepared = import_bytes(data, text="text", label="label", options=CleanOptions(drop_rare_classes=True))
    assert "angry" not in prepared.stats["classes"]
    assert any("dropped 1 classes too small" in w for w in prepared.warnings)
    # with no validation split, two rows are enough
    ok = prepare_classification(ds.read_table(data, "r.csv"), ClassificationMapping("text", "label"),
                                SplitConfig(fractions=(0.8, 0.0, 0.2)))
    assert ok.stats["classes"]["angry"] == 2


def test_empty_text_or_label_rows_are_dropped_and_counted() -> None:
    rows = reviews(30) + [["", "positive"], ["no label here", ""]]
    prepared = import_bytes(csv_bytes(rows, ["text", "label"]), filename="r.csv", text="text", label="label")
    assert len(prepared.frame) == 30
    assert any("dropped 2 rows with an empty text or label (rows 32, 33)" in w for w in prepared.warnings)
    with session_scope() as s:
        stored = dataset_queries.get_dataset_by_name(s, "d")
        assert any("dropped 2 rows" in w for w in stored.warnings)


def test_exact_duplicates_counted_and_optionally_dropped() -> None:
    rows = reviews(30) + [reviews(30)[0], reviews(30)[1]]
    data = csv_bytes(rows, ["text", "label"])
    prepared = import_bytes(data, text="text", label="label")
    assert prepared.stats["duplicates"] == 2 and len(prepared.frame) == 32
    assert any("2 rows repeat an earlier text exactly (rows 32, 33)" in w for w in prepared.warnings)
    dropped = import_bytes(data, name="d2", text="text", label="label", options=CleanOptions(drop_duplicates=True))
    assert len(dropped.frame) == 30 and not dropped.frame["text"].duplicated().any()


def test_leakage_of_duplicates_across_splits_is_reported() -> None:
    rows = [[f"same text {i % 10}", ["a", "b"][i % 2]] for i in range(60)]
    prepared = prepare_classification(ds.read_table(csv_bytes(rows, ["text", "label"]), "r.csv"),
                                      ClassificationMapping("text", "label"))
    assert prepared.stats["leaked_texts"] > 0
    assert any("appear in more than one split (leakage)" in w for w in prepared.warnings)


def test_over_long_texts_are_kept_and_flagged() -> None:
    rows = reviews(30)
    rows[4][0] = "word " * 2000
    prepared = import_bytes(csv_bytes(rows, ["text", "label"]), text="text", label="label")
    assert len(prepared.frame) == 30 and prepared.stats["long_texts"] == 1
    assert any("1 texts are longer than 5000 characters (row 6)" in w for w in prepared.warnings)


def interactions_rows(n_users: int = 6, per_user: int = 5) -> list[list[object]]:
    return [[f"u{u}", f"i{(u + k) % 9}", (u + k) % 5 + 1, 1_700_000_000 + u * 100 + k]
            for u in range(n_users) for k in range(per_user)]


HEADER = ["user_id", "item_id", "rating", "timestamp"]


def test_non_numeric_ratings_are_refused() -> None:
    rows = interactions_rows()
    rows[3][2], rows[7][2] = "good", "bad"
    msg = rejected(csv_bytes(rows, HEADER), "column 'rating' \\(mapped as rating\\) has non-numeric values",
                   filename="ratings.csv", task="interactions", rating="rating")
    assert "ratings.csv" in msg and "rows 5, 9" in msg and "'good'" in msg


def test_duplicate_pairs_keep_last_by_timestamp() -> None:
    rows = interactions_rows()
    rows.append(["u0", "i0", 1, 1_600_000_000])  # older than the original u0/i0: dropped
    rows.append(["u1", "i1", 2, 1_800_000_000])  # newer than the original u1/i1: kept
    prepared = import_bytes(csv_bytes(rows, HEADER), filename="r.csv", task="interactions")
    assert prepared.stats["duplicate_pairs"] == 2
    frame = prepared.frame.set_index(["user", "item"])
    assert frame.loc[("u0", "i0"), "rating"] == 1.0 and frame.loc[("u0", "i0"), "timestamp"] == 1_700_000_000
    assert frame.loc[("u1", "i1"), "rating"] == 2.0
    assert any("2 repeated (user, item) pairs" in w and "latest by timestamp" in w for w in prepared.warnings)


def test_single_interaction_users_and_items_are_reported() -> None:
    rows = interactions_rows() + [["loner", "rare-item", 3, 1_700_000_999]]
    prepared = import_bytes(csv_bytes(rows, HEADER), task="interactions")
    assert prepared.stats["single_interaction_users"] == 1 and prepared.stats["single_interaction_items"] == 1
    assert any("1 users have a single interaction" in w for w in prepared.warnings)
    assert prepared.frame.loc[prepared.frame["user"] == "loner", "split"].tolist() == ["train"]


def test_interactions_need_two_users_and_items() -> None:
    rejected(csv_bytes([["u1", "i1", 3, 1], ["u1", "i2", 4, 2]], HEADER), "1 user\\(s\\) and 2 item\\(s\\)",
             task="interactions")


def test_bad_timestamps_and_catalogue_mismatch() -> None:
    rows = interactions_rows()
    rows[2][3] = "yesterday-ish"
    rejected(csv_bytes(rows, HEADER), "mapped as timestamp\\) has values that are neither", task="interactions")
    items = csv_bytes([[f"x{i}", f"Title {i}"] for i in range(9)], ["item_id", "title"])
    rejected(csv_bytes(interactions_rows(), HEADER), "none of the 9 items", task="interactions", items=items)


def test_interactions_with_catalogue_are_stored_canonically() -> None:
    items = csv_bytes([[f"i{i}", f"Title {i}", "Drama|Comedy"] for i in range(9)], ["item_id", "title", "genres"])
    import_bytes(csv_bytes(interactions_rows(), HEADER), task="interactions", items=items, name="recs")
    from core.data.storage import load_frame, load_items

    with session_scope() as s:
        row = dataset_queries.get_dataset_by_name(s, "recs")
        frame, catalogue = load_frame(row), load_items(row)
        assert row.stats["users"] == 6 and row.stats["items"] == 9 and row.stats["interactions"] == 30
        assert 0 < row.stats["sparsity"] < 1
    assert {"user", "item", "rating", "timestamp", "split"} <= set(frame.columns)
    assert frame["user"].map(type).eq(str).all() and frame["rating"].dtype == float
    assert list(catalogue.columns[:3]) == ["item", "title", "genres"]


def test_leave_last_out_puts_each_users_latest_in_test() -> None:
    prepared = prepare_interactions(ds.read_table(csv_bytes(interactions_rows(), HEADER), "r.csv"),
                                    InteractionsMapping("user_id", "item_id", "rating", "timestamp"),
                                    SplitConfig(method="time"))
    for _, group in prepared.frame.groupby("user"):
        latest = group.sort_values("timestamp").iloc[-1]
        assert latest["split"] == "test"
        assert group.sort_values("timestamp").iloc[-2]["split"] == "validation"
    with pytest.raises(DatasetError, match="needs a timestamp column"):
        prepare_interactions(ds.read_table(csv_bytes(interactions_rows(), HEADER), "r.csv"),
                             InteractionsMapping("user_id", "item_id"), SplitConfig(method="time"))


# --- splitting, storage, re-upload --------------------------------------------------------------------

def test_split_by_label_is_seeded_and_keeps_every_class_in_every_split() -> None:
    labels = pd.Series(["a"] * 50 + ["b"] * 30 + ["c"] * 3)
    one = split_by_label(labels, (0.8, 0.1, 0.1), seed=1)
    assert (one == split_by_label(labels, (0.8, 0.1, 0.1), seed=1)).all()
    assert not (one == split_by_label(labels, (0.8, 0.1, 0.1), seed=2)).all()
    table = pd.crosstab(labels, one)
    assert (table > 0).all().all()
    assert table.loc["a"].to_dict() == {"test": 5, "train": 40, "validation": 5}


def test_split_fractions_are_checked() -> None:
    assert parse_fractions("0.7,0.2,0.1") == (0.7, 0.2, 0.1)
    for bad in ("0.8,0.1", "a,b,c", "0.9,0.2,0.1", "0,0.5,0.5"):
        with pytest.raises(DatasetError):
            parse_fractions(bad)


def test_stored_row_records_mapping_hash_counts_encoding_warnings() -> None:
    rows = reviews(30) + [["", "positive"]]
    import_bytes(csv_bytes(rows, ["body", "stars"], encoding="cp1252"), filename="r.csv", name="r")
    with session_scope() as s:
        row = dataset_queries.get_dataset_by_name(s, "r")
        assert row.mapping["text"] == "body" and row.mapping["label"] == "stars"
        assert row.mapping["split"] == {"fractions": [0.8, 0.1, 0.1], "seed": 42, "method": "stratified"}
        assert len(row.content_hash) == 64 and row.encoding in ("utf-8", "cp1252")
        assert row.stats["classes"] == {"positive": 10, "negative": 10, "neutral": 10}
        assert sum(row.split_counts.values()) == 30 and row.row_count == 30
        assert row.warnings and row.source_filename == "r.csv"
        assert Path(row.storage_path).name == str(row.id)  # never named after the upload


def test_integer_labels_are_stored_as_strings() -> None:
    frame = pd.DataFrame({"text": [f"text {i}" for i in range(30)], "label": [i % 2 for i in range(30)]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    prepared = import_bytes(buf.getvalue(), "x.parquet", text="text", label="label")
    assert set(prepared.frame["label"]) == {"0", "1"}


def test_reupload_of_same_content_is_detected_and_names_clash() -> None:
    data = csv_bytes(reviews(), ["text", "label"])
    import_bytes(data, name="first")
    with pytest.raises(DuplicateContent, match="already stored as dataset 'first'") as info:
        import_bytes(data.replace(b"\n", b"\r\n"), name="second")
    with session_scope() as s:
        assert info.value.existing_id == dataset_queries.get_dataset_by_name(s, "first").id
        assert dataset_queries.count_datasets(s) == 1
    with pytest.raises(DatasetError, match="named 'first' already exists"):
        import_bytes(csv_bytes(reviews(33), ["text", "label"]), name="first")


def test_a_stored_version_is_found_when_the_same_content_is_uploaded() -> None:
    # Dataset versions go through write_dataset without a hash: it must compute the same digest an import does.
    from core.data.storage import write_dataset

    data = csv_bytes(reviews(), ["text", "label"])
    prepared = prepare_classification(ds.read_table(data, "r.csv"), ClassificationMapping("text", "label"))
    with session_scope() as s:
        version = write_dataset(s, name="v2", task=TaskKind.CLASSIFICATION, frame=prepared.frame,
                                mapping=prepared.mapping)
        assert version.content_hash == prepared.content_hash
        assert ds.find_same_content(s, prepared).id == version.id
    with pytest.raises(DuplicateContent, match="already stored as dataset 'v2'"):
        import_bytes(data, name="upload")


def test_rename_and_delete_with_runs(classification_dataset: int) -> None:
    from db import runs as run_queries

    with session_scope() as s:
        ds.rename_dataset(s, classification_dataset, "renamed")
        run = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                     model_kind="tfidf", config={})
        run_id = run.id
        assert ds.runs_to_delete(s, classification_dataset) == [run_id]
    with pytest.raises(DatasetError, match="used by active runs"), session_scope() as s:
        ds.delete_dataset(s, classification_dataset)
    with session_scope() as s:
        run_queries.get_run(s, run_id).status = RunStatus.COMPLETED
    run_folder = run_dir(run_id)
    run_folder.mkdir(parents=True)
    with session_scope() as s:
        assert ds.delete_dataset(s, classification_dataset) == [run_id]
        # The caller owns the transaction: until it commits, the files stay.
        assert dataset_dir(classification_dataset).exists() and run_folder.exists()
    assert nothing_stored() and not run_folder.exists()


def test_delete_rolled_back_keeps_rows_and_files(classification_dataset: int) -> None:
    with pytest.raises(RuntimeError, match="changed my mind"), session_scope() as s:
        ds.delete_dataset(s, classification_dataset)
        raise RuntimeError("changed my mind")
    with session_scope() as s:
        assert dataset_queries.get_dataset(s, classification_dataset) is not None
    assert (dataset_dir(classification_dataset) / "data.parquet").exists()


def test_demo_datasets_load_once() -> None:
    from core.data.demo import DEMOS, load_demo_dataset

    rows = {name: load_demo_dataset(name) for name in DEMOS}
    assert rows["product-reviews"].stats["classes"].keys() == {"positive", "negative", "neutral"}
    assert rows["movie-ratings"].stats["users"] == 150 and rows["movie-ratings"].stats["items"] == 60
    assert load_demo_dataset("product-reviews").id == rows["product-reviews"].id
    with pytest.raises(DatasetError, match="no demo dataset"):
        load_demo_dataset("nope")
    size = sum(p.stat().st_size for p in Path(ds.__file__).parent.joinpath("demo").glob("*.csv"))
    assert size < 300_000


# --- profiles and charts -------------------------------------------------------------------------------

def test_profiles_and_charts() -> None:
    frame = pd.DataFrame({"text": ["a b c", "dd ee", "a b c", "ffff"] * 5, "label": ["x", "y", "x", "x"] * 5})
    profile = classification_profile(frame, count_tokens=lambda texts: [len(t.split()) for t in texts])
    assert profile["classes"] == {"x": 15, "y": 5} and profile["imbalanced"] and profile["duplicates"] == 17
    fig = charts.class_balance(profile["classes"], profile["imbalance_ratio"])
    assert list(fig.data[0].x) == ["x", "y"] and "imbalanced" in fig.layout.title.text
    hist = charts.text_length_histogram(profile["chars"], profile["tokens"])
    assert len(hist.data) == 2 and sorted(set(hist.data[1].x)) == [1, 2, 3]
    inter = pd.DataFrame({"user": ["a", "a", "b"], "item": ["i", "j", "i"], "rating": [1.0, 5.0, 5.0]})
    p2 = interactions_profile(inter)
    assert p2["users"] == 2 and p2["sparsity"] == pytest.approx(0.25)
    assert list(charts.rating_histogram(p2["ratings"]).data[0].y) == [1, 2]
    assert list(charts.long_tail(p2["per_user"], "user").data[0].y) == [2, 1]
    assert long_tail_share([10, 1, 1, 1, 1]) == pytest.approx(10 / 14)


def test_default_tokenizer_counts_tokens() -> None:
    from core.text.pretrained import default_token_counter

    counts = default_token_counter()(["hello world", "a much longer sentence with several words in it"])
    assert counts[0] < counts[1]


# --- property tests: the parser either gives a dataset or a DatasetError ------------------------------

def _any_outcome(data: bytes, filename: str) -> None:
    try:
        table = ds.read_table(data, filename)
        guess = guess_classification(table.frame)
        prepare_classification(table, guess)
    except DatasetError as exc:
        assert str(exc).strip()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), filename=st.sampled_from(["a.csv", "a.tsv", "a.json", "x", "a.gz"]))
def test_random_bytes_give_a_dataset_or_a_dataset_error(data: bytes, filename: str) -> None:
    _any_outcome(data, filename)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from([b"PK\x03\x04", b"PAR1", b"\x1f\x8b", b"\xef\xbb\xbf", b"\xff\xfe", b"[", b"{"]),
       rest=st.binary(max_size=500))
def test_random_bytes_behind_magic_numbers(prefix: bytes, rest: bytes) -> None:
    _any_outcome(prefix + rest, "a.bin")


cells = st.one_of(st.text(max_size=30), st.integers(-5, 5), st.floats(allow_nan=True), st.none(),
                  st.sampled_from(["positive", "negative", "", " ", "a,b", '"q"', "\n"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(cells, min_size=3, max_size=3), max_size=25),
       fmt=st.sampled_from(["csv", "tsv", "json", "jsonl"]))
def test_random_tables_give_a_dataset_or_a_dataset_error(rows: list[list[object]], fmt: str) -> None:
    frame = pd.DataFrame(rows, columns=["text", "label", "extra"])
    if fmt in ("csv", "tsv"):
        data = frame.to_csv(index=False, sep="," if fmt == "csv" else "\t").encode()
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        data = (json.dumps(records) if fmt == "json" else "\n".join(json.dumps(r) for r in records)).encode()
    _any_outcome(data, f"t.{fmt}")
    try:
        table = ds.read_table(data, f"t.{fmt}")
        prepare_interactions(table, guess_interactions(table.frame))
    except DatasetError as exc:
        assert str(exc).strip()


def test_remove_orphans_sweeps_only_old_unowned_folders(classification_dataset: int) -> None:
    import os
    import time

    from core.data.storage import remove_orphans
    from db import read_scope

    root = load_settings().datasets_dir
    old = time.time() - 3600
    owned = dataset_dir(classification_dataset)
    old_orphan, old_staging, young_orphan = root / "9999", root / ".staging-crashed", root / "9998"
    for folder in (old_orphan, old_staging, young_orphan):
        folder.mkdir()
        (folder / "data.parquet").write_bytes(b"x")
    for folder in (owned, old_orphan, old_staging):
        os.utime(folder, (old, old))
    with read_scope() as s:
        removed = remove_orphans(s)
    assert sorted(removed) == sorted([old_orphan, old_staging])
    assert not old_orphan.exists() and not old_staging.exists()
    # A young folder may be another process's import that has not committed yet.
    assert young_orphan.exists() and (owned / "data.parquet").exists()


def test_content_digest_takes_missing_values_and_tells_them_from_text() -> None:
    with_missing = pd.DataFrame({"text": ["a", None], "score": [1.0, np.nan]})
    assert content_digest(with_missing) == content_digest(with_missing.copy())
    assert content_digest(with_missing) != content_digest(pd.DataFrame({"text": ["a", "None"], "score": [1.0, np.nan]}))
    assert content_digest(with_missing) != content_digest(pd.DataFrame({"text": ["a", "nan"], "score": [1.0, np.nan]}))

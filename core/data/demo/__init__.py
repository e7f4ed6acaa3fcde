"""Built-in demo datasets a new user can load with one click: product reviews and movie ratings.

The CSVs next to this file are written by `generate.py` (deterministic) and imported like any upload.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.data.classification import prepare_classification
from core.data.datasets import import_dataset, read_table
from core.data.interactions import prepare_interactions
from core.data.types import (
    CatalogueMapping,
    ClassificationMapping,
    DatasetError,
    InteractionsMapping,
    PreparedDataset,
    SplitConfig,
)
from db import datasets as dataset_queries
from db import session_scope
from db.models import Dataset

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class DemoDataset:
    name: str
    title: str
    description: str


DEMOS = {
    "product-reviews": DemoDataset("product-reviews", "Product reviews (sentiment)",
                                   "360 short product reviews labelled positive / negative / neutral."),
    "movie-ratings": DemoDataset("movie-ratings", "Movie ratings (recommendations)",
                                 "150 users rating 60 movies over time, with a catalogue of titles and genres."),
}


def prepare_demo(name: str) -> PreparedDataset:
    """The demo dataset `name`, validated and split, not yet stored."""
    if name not in DEMOS:
        raise DatasetError(f"no demo dataset {name!r}; choose one of {', '.join(DEMOS)}")
    if name == "product-reviews":
        return prepare_classification(read_table(HERE / "reviews.csv"), ClassificationMapping("review", "sentiment"))
    return prepare_interactions(
        read_table(HERE / "interactions.csv"), InteractionsMapping("user_id", "movie_id", "rating", "timestamp"),
        SplitConfig(method="time"), items=read_table(HERE / "items.csv"),
        items_mapping=CatalogueMapping("movie_id", "title", "description", "genres"))


def load_demo_dataset(name: str) -> Dataset:
    """Store demo dataset `name` (once: a second call returns the stored one) and return its row."""

    prepared = prepare_demo(name)
    with session_scope() as s:
        existing = dataset_queries.get_dataset_by_name(s, name) or dataset_queries.find_by_hash(
            s, prepared.content_hash, prepared.task)
        if existing is not None:
            return existing
        return import_dataset(s, prepared, name=name)

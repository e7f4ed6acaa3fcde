"""The language of a dataset's texts for the pages (cached per dataset content): the Train page suggests the
multilingual model from it, the Sentiment demo offers example sentences in it."""

from __future__ import annotations

import streamlit as st

from core.errors import ProtolabError
from core.text.language import LanguageGuess, dataset_language
from db import datasets as dataset_queries
from db import read_scope


@st.cache_data(show_spinner=False, max_entries=32)
def _language(dataset_id: int, content_hash: str) -> LanguageGuess | None:
    with read_scope() as s:
        return dataset_language(dataset_queries.get_dataset(s, dataset_id))


def dataset_language_of(dataset_id: int) -> LanguageGuess | None:
    """The language of a dataset's texts, None when unknown, gone or unreadable (then pages keep English)."""
    with read_scope() as s:
        dataset = dataset_queries.get_dataset(s, dataset_id)
        content_hash = dataset.content_hash if dataset is not None else None
    if content_hash is None:
        return None
    try:
        return _language(dataset_id, content_hash)
    except (ProtolabError, OSError):
        return None

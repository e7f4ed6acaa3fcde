"""Versions of a multi-label dataset (core.data.versions through the task's Versions entry): a relabel sets a
row's whole tag set, which may be empty; every tag in it must already be one of the dataset's tags."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.data.versions import VersionError
from core.multilabel.labels import decode, encode, tag_counts, unique


def tag_set_target(to: Any, current: pd.Series) -> str:
    """The stored form (a sorted JSON list) of a relabel's target: a list of tags, or that list as JSON text."""
    tags = _as_tags(to)
    known = set().union(*(set(decode(v)) for v in current.fillna("[]")))
    unknown = sorted(set(tags) - known)
    if unknown:
        raise VersionError(f"cannot tag with {', '.join(map(repr, unknown))}: not a tag of this dataset "
                           f"(its tags: {', '.join(sorted(known))})")
    return encode(unique(tags))


def recount(frame: pd.DataFrame) -> dict[str, Any]:
    """The Dataset.stats entries a version recounts: rows per tag, tags and rows without any."""
    sets = [decode(v) for v in frame["labels"].fillna("[]")]
    counts = tag_counts(sets)
    return {"tags": counts, "n_tags": len(counts), "rows_without_tags": sum(1 for t in sets if not t)}


def _as_tags(to: Any) -> list[str]:
    if isinstance(to, str):
        try:
            to = json.loads(to) if to.strip() else []
        except json.JSONDecodeError:
            raise VersionError(f"a tag set is a list of tags, e.g. [\"billing\", \"bug\"]; got {to!r}") from None
    if not isinstance(to, Sequence) or isinstance(to, str):
        raise VersionError(f"a tag set is a list of tags; got {to!r}")
    return [str(t) for t in to]

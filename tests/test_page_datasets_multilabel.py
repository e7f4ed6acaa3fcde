"""AppTest of the Datasets page with tag sets: the task is guessed from the file (delimited tags, 0/1 columns),
the guessed delimiter and the proposed 0/1 columns are shown, and tags that differ only by case are offered a
merge; a classification file is left as classification."""

from __future__ import annotations

import pandas as pd

from core.multilabel.labels import looks_like_tag_sets
from tests.helpers import form_key
from tests.test_page_datasets import page, reviews, upload_csv

TAGS = ["billing", "bug", "praise", "feature"]


def tag_sets(n: int = 40) -> list[list[str]]:
    return [[] if i % 10 == 0 else [TAGS[i % 4], *([TAGS[(i + 1) % 4]] if i % 3 == 0 else [])] for i in range(n)]


def texts(n: int = 40) -> list[str]:
    return [f"ticket number {i} from a customer who wrote at length" for i in range(n)]


def test_a_delimited_tags_file_switches_the_task_and_shows_its_delimiter() -> None:
    frame = pd.DataFrame({"body": texts(), "topics": [" | ".join(t) for t in tag_sets()]})
    at = upload_csv(page(), frame, "tickets.csv")
    assert not at.exception, at.exception
    assert at.radio(key="task").value == "multilabel"
    assert any("looks like texts with tag sets" in i.value for i in at.info)
    assert at.radio(key=form_key(at, "tag_format")).value == "delimited"
    assert at.selectbox(key=form_key(at, "map_tags")).value == "topics"
    assert at.selectbox(key=f"{form_key(at, 'delimiter')}_topics").value == "|"
    assert any("separated by '|' (as guessed" in c.value for c in at.caption)
    assert any("Checks passed: 40 rows" in m.value for m in at.success)


def test_one_hot_columns_are_proposed_and_similar_tags_offered_a_merge() -> None:
    sets = tag_sets()
    frame = pd.DataFrame({"body": texts(), **{t: [int(t in s) for s in sets] for t in TAGS},
                          "stars": [i % 5 + 1 for i in range(40)]})
    at = upload_csv(page(), frame, "onehot.csv")
    assert at.radio(key="task").value == "multilabel"
    assert at.radio(key=form_key(at, "tag_format")).value == "one-hot"
    assert at.multiselect(key=form_key(at, "tag_columns")).value == TAGS
    assert any("Checks passed: 40 rows" in m.value for m in at.success)

    spelled = [[("Bug " if t == "bug" and i % 8 == 5 else t) for t in s] for i, s in enumerate(sets)]
    frame = pd.DataFrame({"body": texts(), "tags": [";".join(t) for t in spelled]})
    at = upload_csv(at, frame, "spelled.csv")
    assert any("'bug' / 'Bug' → 'bug'" in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.error  # refused until merged
    at.checkbox(key=form_key(at, "merge_similar")).check().run()
    assert not at.error and any("Checks passed: 40 rows" in m.value for m in at.success)


def test_a_classification_file_is_not_taken_for_tag_sets() -> None:
    at = upload_csv(page(), reviews())
    assert at.radio(key="task").value == "classification"
    assert not any("looks like" in i.value for i in at.info)
    flags = reviews().assign(verified=[i % 2 for i in range(30)], helpful=[i % 3 == 0 for i in range(30)],
                             author=[f"Smith, John {i}" for i in range(30)])
    assert not looks_like_tag_sets(flags, "body")

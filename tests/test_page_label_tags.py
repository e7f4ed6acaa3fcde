"""AppTest of the Label page labelling tag sets: the label set's "several tags per text", tags toggled (keys 1-9)
and a set confirmed (Enter; none allowed), the count, the toggles starting from a retrain's suggestion, the table
batch, and the labelled texts saved as a multi-label dataset."""

from __future__ import annotations

from pathlib import Path

# AppTest puts pages/ first on sys.path, where pages/datasets.py would shadow Hugging Face `datasets`.
import datasets as _hf_datasets  # noqa: F401
import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from core.labelling import pool, retrain
from core.runs.files import RunFiles
from db import datasets as dataset_queries
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus, TaskKind
from tests.test_labelling import import_pool
from tests.test_labelling_tags import ticket_frame

PAGES = Path(__file__).resolve().parents[1] / "pages"
TAGS = ["billing", "bug", "delivery"]


def label_page() -> AppTest:
    return AppTest.from_file(str(PAGES / "label.py"), default_timeout=120).run()


def state_of(dataset_id: int) -> pool.LabelState:
    with read_scope() as s:
        return pool.label_state(s, dataset_id)


def tag_pool() -> int:
    dataset_id = import_pool(ticket_frame(30))
    with session_scope() as s:
        pool.set_label_set(s, dataset_id, [(t, "") for t in TAGS], TaskKind.MULTILABEL)
    return dataset_id


def test_several_tags_per_text_toggle_with_keys_and_enter_confirms_the_set() -> None:
    dataset_id = import_pool(ticket_frame(30))
    at = label_page()
    at.radio(key=f"label_kind_{dataset_id}").set_value(TaskKind.MULTILABEL)
    at.text_area(key=f"label_set_{dataset_id}").set_value("billing: money matters\nbug\ndelivery")
    at.button(key="save_label_set").click().run()
    assert not at.exception and not at.error
    assert state_of(dataset_id).task == TaskKind.MULTILABEL
    assert [at.button(key=f"tag_{i}").label for i in range(3)] == ["☐ 1 · billing", "☐ 2 · bug", "☐ 3 · delivery"]
    first = at.session_state[f"current_{dataset_id}"]
    at.button(key="tag_0").click().run()  # key 1
    at.button(key="tag_2").click().run()  # key 3
    at.button(key="tag_2").click().run()  # key 3 again: off
    at.button(key="tag_1").click().run()  # key 2
    assert at.button(key="tag_0").label == "☑ 1 · billing" and at.button(key="tag_2").label == "☐ 3 · delivery"
    assert at.button(key="confirm_tags").label == "Confirm 2 tags (Enter)"
    assert state_of(dataset_id).labels == {}  # nothing stored until the set is confirmed
    at.button(key="confirm_tags").click().run()
    assert not at.exception and not at.error
    second = at.session_state[f"current_{dataset_id}"]
    assert second != first and state_of(dataset_id).sets == {first: ["billing", "bug"]}
    assert all(at.button(key=f"tag_{i}").label.startswith("☐") for i in range(3))  # the next text starts empty
    assert at.button(key="confirm_tags").label == "Confirm: no tag (Enter)"
    at.button(key="confirm_tags").click().run()  # an empty set counts as labelled
    at.button(key="skip").click().run()
    state = state_of(dataset_id)
    assert state.sets == {first: ["billing", "bug"], second: []} and len(state.skipped) == 1
    assert any("2 of 30 texts labelled, 1 skipped" in c.value for c in at.caption)
    assert at.radio(key=f"label_kind_{dataset_id}").disabled  # fixed once texts are labelled


def completed_retrain(dataset_id: int, proba: np.ndarray) -> int:
    """A finished tag-set retrain as its executor leaves it: the pool's probabilities and meta.json."""
    with session_scope() as s:
        run = run_queries.create_run(s, dataset_id=dataset_id, task=TaskKind.MULTILABEL,
                                     model_kind=retrain.RETRAIN_KIND, config={})
        run.status, run_id = RunStatus.COMPLETED, run.id
    files = RunFiles.of(run_id)
    files.predictions_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"row_index": np.arange(len(proba)), "proba": [row.tolist() for row in proba]}
                 ).to_parquet(files.predictions(retrain.POOL_SPLIT), index=False)
    files.write_meta({"kind": "setfit", "task": "multilabel", "labels": TAGS, "pool": True,
                      "pool_thresholds": [0.5, 0.5, 0.5]})
    return run_id


def test_the_toggles_start_from_the_latest_retrains_suggestion() -> None:
    dataset_id = tag_pool()
    proba = np.tile([0.1, 0.2, 0.3], (30, 1))
    proba[:, 0], proba[:, 2] = 0.8, 0.65  # billing and delivery over 0.5 on every text
    proba[7] = [0.5, 0.51, 0.5]  # text 8: the model hesitates on every tag
    completed_retrain(dataset_id, proba)
    at = AppTest.from_file(str(PAGES / "label.py"), default_timeout=120)
    at.session_state[f"current_{dataset_id}"] = 7  # as after an undo: the page shows text 8
    at.run()
    assert not at.exception
    assert [at.button(key=f"tag_{i}").label[0] for i in range(3)] == ["☑", "☑", "☑"]
    assert any("model suggests **billing** (50%), **bug** (51%), **delivery** (50%)" in c.value for c in at.caption)
    at.radio(key="strategy").set_value("uncertain").run()
    at.button(key="tag_0").click().run()  # the user disagrees with one suggested tag
    at.button(key="confirm_tags").click().run()
    assert not at.exception and state_of(dataset_id).sets == {7: ["bug", "delivery"]}
    # every other text is as uncertain (its nearest call 0.15 from 0.5), so the first comes next, its
    # suggestion ticked: billing and delivery
    assert at.session_state[f"current_{dataset_id}"] == 0
    assert any("picked as uncertain" in c.value for c in at.caption)
    assert [at.button(key=f"tag_{i}").label[0] for i in range(3)] == ["☑", "☐", "☑"]
    at.button(key="confirm_tags").click().run()  # Enter takes the suggestion as it stands
    assert state_of(dataset_id).sets == {7: ["bug", "delivery"], 0: ["billing", "delivery"]}


def test_a_table_batch_of_tag_sets_saves_every_row_and_the_version_is_multilabel() -> None:
    dataset_id = tag_pool()
    at = label_page()
    at.radio(key="mode").set_value("table batch").run()
    assert not at.exception
    assert at.button(key="save_batch").label == "Save these 10 tag sets (an empty one: no tag)"
    at.button(key="save_batch").click().run()  # nothing ticked: ten texts labelled with no tag
    assert not at.exception and not at.error
    state = state_of(dataset_id)
    assert len(state.sets) == 10 and all(tags == [] for tags in state.sets.values())
    texts = ticket_frame(30)["text"]
    from tests.test_labelling_tags import truth

    with session_scope() as s:
        for row in range(30):
            pool.record_labels(s, dataset_id, row, truth(texts[row]))
    at.run()
    at.text_input(key="version_name").set_value("tickets tagged").run()
    at.button(key="save_version").click().run()
    assert not at.exception and not at.error
    with read_scope() as s:
        version = dataset_queries.get_dataset_by_name(s, "tickets tagged")
        assert version.task == TaskKind.MULTILABEL and version.row_count == 30

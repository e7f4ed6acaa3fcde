"""The tagging demo beyond the chips (issue 26 item 5): the words for and against each tag of a real multi-label
run, and presentation mode's plain-language card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.evaluation.cards import tagger_card
from core.multilabel.explain import against, explain_tags
from core.multilabel.serving import load_run_tagger
from tests.test_multilabel_runs import write_tickets


def test_the_card_says_how_many_tags_it_finds_and_how_many_it_gets_right() -> None:
    card = tagger_card(tags=["billing", "bug", "praise"], recall=0.83, precision=0.91, dataset_name="tickets",
                       technical="run #1", n_test=120)
    assert card.what.endswith("from billing, bug and praise.") and "several, one or none" in card.what
    assert card.how_good == ("It finds 8 in 10 of the tags a person would set, and 9 in 10 of the tags it sets are "
                             "right (on 120 texts it never saw during training).")
    unscored = tagger_card(tags=[f"t{i}" for i in range(12)], recall=None, precision=None, dataset_name="x",
                           technical="")
    assert "12 tags (such as t0, t1, t2)" in unscored.what and "first impression" in unscored.how_good


def test_each_tag_is_explained_by_its_own_words_and_the_demo_shows_them(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    csv = write_tickets(tmp_path / "tickets.csv", n=120)
    assert main(["datasets", "add", str(csv), "--task", "multilabel", "--text-col", "body", "--labels-col", "tags",
                 "--json"]) == 0
    capsys.readouterr()
    assert main(["train", "--dataset", "tickets", "--model", "tfidf", "--wait", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]

    text = "please refund the invoice charge , the app crash is an error"
    found = explain_tags(load_run_tagger(run_id), text)
    assert set(found) == {"billing", "bug", "praise"}
    words = text.split()
    billing, bug = found["billing"], found["bug"]
    for word in ("refund", "invoice", "charge"):  # billing's words call for billing ...
        assert billing.towards[words.index(word)] == "billing", (word, billing.weights)
    for word in ("crash", "error"):  # ... bug's words for bug, and not for billing
        assert bug.towards[words.index(word)] == "bug", (word, bug.weights)
        assert billing.weights[words.index(word)] < billing.weights[words.index("refund")]
    assert billing.confidence > 0.5 and max(billing.strengths) > 0

    at = AppTest.from_file("../pages/tagging.py", default_timeout=60)
    at.session_state["present"] = True
    at.run()
    assert not at.exception, at.exception
    assert [h.value for h in at.subheader] == ["A tagger trained on tickets"]
    assert any("of the tags a person would set" in m.value for m in at.markdown)
    at.text_area(key="tag_text").set_value(text).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="tag_why").value in ("billing", "bug")  # the likeliest tag first
    at.selectbox(key="tag_why").set_value("billing").run()
    shown = " ".join(m.value for m in at.markdown)
    assert 'title="towards billing' in shown and f'title="towards {against("billing")}' in shown

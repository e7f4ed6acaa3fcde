"""Cheap language detection: English, other Latin-script languages by their common words, other scripts by
their letters; the multilingual model and demo sentences follow the guess."""

from __future__ import annotations

import pandas as pd
import pytest

from core.data.storage import write_dataset
from core.text.language import (
    EXAMPLES,
    MULTILINGUAL_MODEL_ID,
    dataset_language,
    detect_language,
    example_sentences,
    suggested_model_id,
)
from db import session_scope
from db.enums import TaskKind

SENTENCES = {
    "en": ["The delivery was late and the box was damaged, but the support team was very helpful to me.",
           "I have to say this is the best phone that I have owned, and the battery is not bad either."],
    "de": ["Die Lieferung war zu spät und der Karton war beschädigt, aber der Support war sehr hilfsbereit.",
           "Ich muss sagen, das ist das beste Handy, das ich je hatte, und der Akku ist auch nicht schlecht."],
    "fr": ["La livraison était en retard et la boîte était abîmée, mais le support a été très serviable.",
           "Je dois dire que c'est le meilleur téléphone que j'ai eu, et la batterie n'est pas mauvaise."],
    "es": ["La entrega llegó tarde y la caja estaba dañada, pero el soporte fue muy amable conmigo.",
           "Tengo que decir que es el mejor teléfono que he tenido, y la batería no está nada mal."],
    "ru": ["Доставка опоздала, и коробка была повреждена, но поддержка очень помогла мне.",
           "Должен сказать, это лучший телефон, который у меня был, и батарея тоже неплохая."],
    "ja": ["配達が遅れて箱も壊れていましたが、サポートはとても親切でした。",
           "これは今まで使った中で一番の電話で、バッテリーも悪くないです。"],
}


@pytest.mark.parametrize("code", list(SENTENCES))
def test_detects_the_language_of_mostly_one_language_texts(code: str) -> None:
    texts = SENTENCES[code] * 20 + SENTENCES["en"][:1] * 3  # a few English texts mixed in
    guess = detect_language(texts)
    assert guess is not None and guess.code == code, guess
    assert guess.is_english == (code == "en")
    assert suggested_model_id(guess) == (None if code == "en" else MULTILINGUAL_MODEL_ID)


def test_too_little_text_says_nothing() -> None:
    assert detect_language(["ok", "fine"]) is None
    assert suggested_model_id(None) is None and example_sentences(None) == EXAMPLES["en"]


def test_example_sentences_follow_the_language() -> None:
    assert example_sentences(detect_language(SENTENCES["de"] * 20)) == EXAMPLES["de"]
    assert example_sentences(detect_language(SENTENCES["ja"] * 20)) == EXAMPLES["en"]  # none in Japanese
    assert all(len(v) == len(EXAMPLES["en"]) for v in EXAMPLES.values())


def test_dataset_language_reads_the_training_texts() -> None:
    frame = pd.DataFrame({"text": SENTENCES["fr"] * 30, "label": ["a", "b"] * 30,
                          "split": ["train"] * 40 + ["validation"] * 10 + ["test"] * 10})
    with session_scope() as s:
        dataset = write_dataset(s, name="avis", task=TaskKind.CLASSIFICATION, frame=frame,
                                mapping={"text": "text", "label": "label"})
        assert dataset_language(dataset).name == "French"


def test_sentiment_demo_offers_examples_in_the_datasets_language(tiny_model_folders: dict) -> None:
    import json
    import shutil

    from streamlit.testing.v1 import AppTest

    from core.settings import run_dir
    from db import runs as run_queries
    from db.enums import RunStatus
    from db.models import utcnow

    frame = pd.DataFrame({"text": SENTENCES["de"] * 30, "label": ["positiv", "negativ"] * 30,
                          "split": ["train"] * 40 + ["validation"] * 10 + ["test"] * 10})
    with session_scope() as s:
        dataset = write_dataset(s, name="bewertungen", task=TaskKind.CLASSIFICATION, frame=frame,
                                mapping={"text": "text", "label": "label"})
        run = run_queries.create_run(s, dataset_id=dataset.id, task=TaskKind.CLASSIFICATION, model_kind="tfidf",
                                     config={"max_length": 32})
        run.status, run.finished_at, run.metrics = RunStatus.COMPLETED, utcnow(), {"macro_f1": 0.9}
        run_id, dataset_id = run.id, dataset.id
    shutil.copytree(tiny_model_folders["tfidf"], run_dir(run_id) / "model")
    (run_dir(run_id) / "meta.json").write_text(json.dumps({"family": "tfidf", "labels": ["negative", "positive"],
                                                           "max_length": 32, "dataset_id": dataset_id}))
    at = AppTest.from_file("../pages/sentiment.py", default_timeout=120).run()
    assert not at.exception, at.exception
    assert [b.label for b in at.button if str(b.key).startswith("example_")] == list(EXAMPLES["de"])
    at.button(key="example_1").click().run()
    assert at.text_area(key="text").value == EXAMPLES["de"][1]

"""`--minutes N`, a time budget (issue 28, item 6): training stops cleanly when the run would pass it, the best
weights so far are evaluated and saved as in any run, and the run says where it stopped. Declared once on the
kinds' option schema, so the CLI has the flag and the Train form the field."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.runs import registry
from core.text.budget import TimeBudget
from core.text.executor import execute_run
from core.text.loop import train_classifier
from tests.test_page_train_state import store
from tests.test_training import BagOfWords, make_ctx, tiny_cfg, token_data


def test_a_spent_budget_stops_after_the_first_step_and_keeps_that_model() -> None:
    epochs = []
    result = train_classifier(BagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(epochs=3),
                              on_epoch=epochs.append, budget=TimeBudget(deadline=time.monotonic()))
    assert result.out_of_time and not result.stopped
    assert result.state.step == 1 and result.state.epoch == 1  # the partial epoch was validated...
    assert [e.epoch for e in epochs] == [1] and result.state.best_epoch == 1  # ...and its weights kept


def test_a_roomy_budget_changes_nothing() -> None:
    result = train_classifier(BagOfWords(), token_data(300, 1), token_data(50, 2), tiny_cfg(epochs=2),
                              budget=TimeBudget(deadline=time.monotonic() + 3600))
    assert not result.out_of_time and result.state.epoch == 2 and result.state.step == 2 * 19


def test_a_run_past_its_budget_completes_with_its_best_model_and_says_so(tmp_path: Path,
                                                                         classification_dataset: int) -> None:
    # The budget counts from the worker process's start: this test process began long before 0.6 s ago.
    ctx = make_ctx(tmp_path, classification_dataset, "lstm", epochs=5, batch_size=16, max_length=32, device="cpu",
                   init_embeddings=False, minutes=0.01)
    metrics = execute_run(ctx)
    assert metrics["macro_f1"] >= 0 and (ctx.files.model / "model.safetensors").exists()
    budget = [e for e in ctx.events if e["event"] == "time_budget"]
    assert len(budget) == 1 and budget[0]["epochs_done"] == 1 and budget[0]["best_epoch"] == 1
    assert "0.01-minute time budget" in budget[0]["message"] and "epoch 1 of 5" in budget[0]["message"]


def test_the_budget_is_one_option_the_cli_and_the_form_both_offer(capsys: pytest.CaptureFixture[str]) -> None:
    assert [k.name for k in registry.all_kinds() if any(o.name == "minutes" for o in k.options)] == [
        "transformer", "lstm"]  # TF-IDF fits in one go: nothing to stop
    assert registry.get_kind("lstm").make_config({"minutes": 2})["minutes"] == 2
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--minutes" in capsys.readouterr().out
    dataset = store("reviews")
    at = AppTest.from_file("../pages/train.py", default_timeout=60)
    at.query_params.update({"dataset": str(dataset), "model": "lstm"})
    at.run()
    field = at.number_input(key="lstm.minutes")
    assert field.value is None  # no budget unless asked
    field.set_value(5.0).run()
    assert not at.exception and at.query_params["lstm.minutes"] in ("5.0", ["5.0"])

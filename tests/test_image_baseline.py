"""An image run is measured against its task's baseline kind, named by the registry (the linear probe), not
against a "TF-IDF baseline" that images have none of; text runs keep the TF-IDF wording."""

from __future__ import annotations

from core.evaluation import comparison

REPORT = {"labels": ["blue", "red"], "majority_rate": 0.5, "accuracy": 0.9, "macro_f1": 0.9}


def test_the_headline_table_names_the_tasks_own_baseline() -> None:
    images = comparison.headline_table(REPORT, {"accuracy": 0.8, "macro_f1": 0.7}, task="images")
    assert "Linear probe baseline" in images.columns and "TF-IDF baseline" not in images.columns
    assert images.set_index("metric").loc["accuracy", "Linear probe baseline"] == 0.8
    texts = comparison.headline_table(REPORT, {"accuracy": 0.8})
    assert "TF-IDF baseline" in texts.columns
    assert comparison.baseline_column("images") == "Linear probe baseline"
    assert comparison.baseline_column("classification") == "TF-IDF baseline"

"""core.export.report: self-contained HTML (plotly inline, no external links), escaping, a real-browser check."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from core.export.report import build_report
from db import runs as run_queries
from db import session_scope
from db.enums import ReviewVerdict, TaskKind
from tests.conftest import (
    sentiment_frame,
    sklearn_predictions,
    store_completed_run,
    store_lstm_runs,
    store_ranking_run,
    with_splits,
)

PAYLOAD = "<script>alert('xss')</script>"
IMG_PAYLOAD = "<img src=x onerror=alert(2)>"
CHROMIUM = "/usr/bin/chromium"


def hostile_run() -> int:
    """A run whose dataset texts, labels, run name, config and review all carry HTML payloads."""
    from core.data.storage import write_dataset

    frame = with_splits(sentiment_frame(120))
    frame.loc[frame.index[::5], "text"] = frame.loc[frame.index[::5], "text"] + " " + PAYLOAD + IMG_PAYLOAD
    frame.loc[frame.index[::9], "label"] = "negative"  # some mistakes, so the mistakes table has rows
    with session_scope() as s:
        ds = write_dataset(s, name=f"data {PAYLOAD}", task=TaskKind.CLASSIFICATION, frame=frame,
                           mapping={"text": "text", "label": "label"}).id
    labels, preds = sklearn_predictions(ds)
    run_id = store_completed_run(ds, labels, preds, name=f"run {PAYLOAD}", config={"note": IMG_PAYLOAD, "epochs": 1})
    with session_scope() as s:
        run_queries.add_review(s, run_id, reviewer=f"Eve {IMG_PAYLOAD}", verdict=ReviewVerdict.APPROVE,
                               comment=PAYLOAD)
    return run_id


def external_references(page: str) -> list[str]:
    """src/href attributes and CSS imports that point off the file (what would need a network)."""
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", page, flags=re.I)
    return [t for t in tags if re.search(r"\b(src|href)\s*=", t, flags=re.I)] + re.findall(r"@import", page)


def test_run_report_is_self_contained_with_all_sections(completed_classification_run: int) -> None:
    page = build_report([completed_classification_run])
    assert page.startswith("<!DOCTYPE html>")
    assert "Plotly.newPlot" in page and len(page) > 3_000_000  # plotly.js itself is inline
    assert external_references(page) == []
    assert page.count('class="plotly-graph-div"') >= 5  # per-class, confusion, ROC, PR, reliability
    for section in ("<h2>Dataset</h2>", "<h2>Model</h2>", "Hyperparameters", "Headline metrics",
                    "Sample of predictions", "tiny-sentiment", "<td>seed</td>"):
        assert section in page


def test_a_transformer_report_names_its_model_and_shows_only_its_settings(classification_dataset: int) -> None:
    from core.text.config import TrainConfig

    labels, preds = sklearn_predictions(classification_dataset)
    config = dataclasses.asdict(TrainConfig(learning_rate=5e-5))  # every kind's fields, as a run stores them
    run_id = store_completed_run(classification_dataset, labels, preds, model_kind="transformer", config=config)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.metrics = {**run.metrics, "train_time_s": 79.6882}
    page = build_report([run_id])
    assert "MiniLM-L6" in page and "sentence-transformers/all-MiniLM-L6-v2" in page
    assert "Transformer (fine-tune)" in page
    assert "init embeddings" not in page and "tfidf" not in page.lower().replace("tf-idf baseline", "")
    assert "<td>learning rate</td><td>0.00005</td>" in page
    assert "79.6882" not in page and "<td>1m 19s</td>" in page


def test_user_strings_are_escaped_everywhere() -> None:
    run_id = hostile_run()
    page = build_report([run_id])
    assert PAYLOAD not in page and IMG_PAYLOAD not in page
    assert "&lt;script&gt;alert(&#x27;xss&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    # Only our own script tags: plotly.js, then one per figure.
    assert page.count("<script") == 1 + page.count('class="plotly-graph-div"')
    comparison = build_report([run_id, run_id])
    assert PAYLOAD not in comparison and IMG_PAYLOAD not in comparison


def test_comparison_report_highlights_differences(classification_dataset: int) -> None:
    # Two LSTM runs: epochs and learning rate are settings of theirs (a TF-IDF run has neither to differ in).
    a, b = store_lstm_runs(classification_dataset, 1, 4)
    page = build_report([a, b])
    assert "Leaderboard" in page and '<th class="diff">epochs</th>' in page
    assert '<th class="diff">learning_rate</th>' not in page
    assert page.count('class="plotly-graph-div"') >= 2  # grouped bars and overlaid learning curves
    assert external_references(page) == []


def test_recommender_report(interactions_dataset: int) -> None:
    page = build_report([store_ranking_run(interactions_dataset)])
    assert "Ranking metrics" in page and "ndcg@10" in page and "leave-last-out" in page
    assert page.count('class="plotly-graph-div"') == 1


def test_unfinished_run_is_a_clear_error(classification_dataset: int) -> None:
    from core.evaluation.predictions import EvaluationError

    with session_scope() as s:
        run_id = run_queries.create_run(s, dataset_id=classification_dataset, task=TaskKind.CLASSIFICATION,
                                        model_kind="tfidf", config={}).id
    with pytest.raises(EvaluationError, match="queued"):
        build_report([run_id])


@pytest.mark.e2e
def test_report_renders_offline_in_headless_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("PROTOLAB_REQUIRE_E2E"):
            pytest.fail(f"{CHROMIUM} is required (PROTOLAB_REQUIRE_E2E is set) but missing")
        pytest.skip(f"{CHROMIUM} not installed (Debian: apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    run_id = hostile_run()
    report = tmp_path / "report.html"
    report.write_text(build_report([run_id]), encoding="utf-8")
    requests: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                          else (requests.append(route.request.url), route.abort()))
            page = context.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(report.as_uri())
            page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 5",
                                   timeout=30_000)
            rendered = page.evaluate("""() => [...document.querySelectorAll('.plotly-graph-div')].map(
                d => [d.getBoundingClientRect().height, d.querySelectorAll('.main-svg').length])""")
            bars = page.locator(".plotly-graph-div .bars path").count()
            heat = page.locator(".plotly-graph-div .hm image").count()
            shot = page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            title = page.title()
        finally:
            browser.close()
    assert requests == [], f"the report tried to reach the network: {requests}"
    assert dialogs == [], "an HTML payload ran as script"
    assert all(height > 100 and svgs >= 1 for height, svgs in rendered), rendered
    assert bars > 0 and heat == 1
    assert "<script>" in title  # the escaped run name shows as text
    assert len(shot) > 50_000  # a full-page PNG of charts, not a blank page
    pd.DataFrame(rendered).to_csv(tmp_path / "rendered.csv")


def test_report_shows_baseline_and_majority_columns(classification_dataset: int) -> None:
    labels, preds = sklearn_predictions(classification_dataset)
    store_completed_run(classification_dataset, labels, preds, model_kind="tfidf", name="the baseline")
    lstm = store_completed_run(classification_dataset, labels, preds, model_kind="lstm")
    page = build_report([lstm])
    assert "<th>TF-IDF baseline</th>" in page and "<th>majority class</th>" in page
    assert "#1 the baseline" in page


def test_a_multilabel_runs_report_and_comparison_speak_in_tags(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    import json

    from core.cli import main
    from tests.test_multilabel_runs import write_tickets

    csv = write_tickets(tmp_path / "tickets.csv", n=120)
    noisy = pd.read_csv(csv, keep_default_na=False)
    noisy.loc[noisy.index % 5 == 1, "tags"] = "praise"  # some wrong tag sets, so the mistakes table has rows
    noisy.to_csv(csv, index=False)
    assert main(["datasets", "add", str(csv), "--task", "multilabel", "--text-col", "body", "--labels-col", "tags",
                 "--json"]) == 0
    runs = []
    for seed in ("1", "2"):
        capsys.readouterr()
        assert main(["train", "--dataset", "tickets", "--model", "tfidf", "--seed", seed, "--wait", "--json"]) == 0
        runs.append(json.loads(capsys.readouterr().out))
    html = build_report([runs[0]["run_id"]])  # a single-label report raised KeyError: 'confusion_matrix'
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", "", html, flags=re.S))
    assert "per-tag thresholds (served)" in text and "baseline: most frequent tags" in text
    assert "Per tag (support in brackets)" in html and "Texts with missing or extra tags" in text
    for tag, threshold in runs[0]["metrics"]["thresholds"].items():  # the thresholds it serves, tag by tag
        assert re.search(rf"<td>{tag}</td><td>{threshold:.4f}</td>", html), tag
    assert "confusion" not in text.lower()
    board = build_report([r["run_id"] for r in runs])
    head = re.search(r"<h2>Leaderboard</h2><table><thead><tr>(.*?)</tr>", board).group(1)
    assert re.findall(r"<th[^>]*>([^<]*)</th>", head)[4:8] == ["micro_f1", "macro_f1", "samples_f1",
                                                               "subset_accuracy"]

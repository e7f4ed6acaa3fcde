"""How many labels do I need: the label curve in core (sampling, scoring, skipped sizes, cancellation), its
sentence and chart, and the label_curve job through a real worker (a job, never listed as a model run)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.charts.labelling import label_curve as label_curve_chart
from core.labelling import curve_job
from core.labelling import label_curve as lc
from core.labelling.label_curve import (
    LabelCurveCancelled,
    LabelCurveConfig,
    LabelCurveError,
    aggregate,
    cap_test,
    measure_label_curve,
    read_curve,
    sample_per_class,
)
from core.runs import registry
from core.runs.files import RunFiles
from db import read_scope, session_scope
from db import runs as run_queries
from db.enums import RunStatus, TaskKind
from tests.conftest import sentiment_frame, with_splits
from tests.test_worker_runs import finished, wait_until, worker_log

# Tiny settings: 1 SetFit pair iteration, 1 Transformer epoch at 32 tokens, sizes 2 and 4 on 40 rows.
TINY = dict(setfit_num_iterations=1, setfit_max_pairs=16, transformer_epochs=1, max_length=32, device="cpu")


def tiny_frame() -> pd.DataFrame:
    frame = with_splits(sentiment_frame(40))  # train: 16 negative, 12 positive
    assert frame[frame.split == "train"].label.value_counts().min() == 12
    return frame


def test_sample_per_class_draws_k_of_each_label_seeded() -> None:
    pool = sentiment_frame(40)
    a, b, c = sample_per_class(pool, 3, 0), sample_per_class(pool, 3, 0), sample_per_class(pool, 3, 1)
    assert a["label"].value_counts().to_dict() == {"negative": 3, "positive": 3}
    assert a.equals(b) and not a.equals(c)


def test_test_slice_is_capped_and_stratified() -> None:
    test = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "label": ["a"] * 80 + ["b"] * 20})
    sliced = cap_test(test, 10)
    assert len(sliced) == 10 and sliced["label"].value_counts().to_dict() == {"a": 8, "b": 2}
    assert len(cap_test(test, 500)) == 100


def test_curve_samples_each_size_per_class_scores_every_point_and_skips_what_the_smallest_class_cannot_fill(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def recording_tfidf(train, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - the real trainer
        seen.append(train["label"].value_counts().to_dict())
        return real_tfidf(train, *args, **kwargs)

    real_tfidf = lc.fit_tfidf
    monkeypatch.setattr(lc, "fit_tfidf", recording_tfidf)  # the tfidf entry names it: looked up at each use
    partial, progress = [], []
    result = measure_label_curve(tiny_frame(), LabelCurveConfig(sizes=(4, 2, 64), models=("tfidf",), seeds=2, **TINY),
                                 on_point=lambda r: partial.append(len(r.points)),
                                 on_progress=lambda f, t: progress.append(f))
    assert seen == [{"negative": 2, "positive": 2}] * 2 + [{"negative": 4, "positive": 4}] * 2
    assert result.sizes == [2, 4] and result.skipped_sizes == [64]
    assert result.smallest_class == {"label": "positive", "count": 12}
    assert [(p["model"], p["size"], p["seed"]) for p in result.points] == [
        ("tfidf", 2, 0), ("tfidf", 2, 1), ("tfidf", 4, 0), ("tfidf", 4, 1)]
    assert all(0 <= p["macro_f1"] <= 1 for p in result.points)
    assert partial == [1, 2, 3, 4] and progress[-1] == 1.0 and result.done
    assert result.n_test == result.test_rows == 6 and not result.to_dict()["test_capped"]
    rows = aggregate(result.points)
    assert [(r["size"], r["n"]) for r in rows] == [(2, 2), (4, 2)]
    assert "64 a class could not be tried: the smallest class, 'positive', has 12" in read_curve(result.to_dict())


def test_curve_stops_when_asked_between_points() -> None:
    result_points = []

    def on_point(result) -> None:  # noqa: ANN001
        result_points.append(len(result.points))

    with pytest.raises(LabelCurveCancelled):
        measure_label_curve(tiny_frame(), LabelCurveConfig(sizes=(2, 4), models=("tfidf",), **TINY),
                            on_point=on_point, should_stop=lambda: bool(result_points))
    assert result_points == [1]


def test_curve_refuses_what_it_cannot_draw() -> None:
    with pytest.raises(LabelCurveError, match="no size fits: the smallest class, 'positive', has only 12"):
        measure_label_curve(tiny_frame(), LabelCurveConfig(sizes=(16, 32), models=("tfidf",)))
    with pytest.raises(LabelCurveError, match="unknown model"):
        LabelCurveConfig(models=("bert",))
    with pytest.raises(LabelCurveError, match="sizes must be whole numbers"):
        LabelCurveConfig(sizes=(0, 8))
    with pytest.raises(LabelCurveError, match="unknown device 'gpu'"):
        LabelCurveConfig(device="gpu")
    with pytest.raises(LabelCurveError, match="no labelled test or validation rows"):
        measure_label_curve(tiny_frame().assign(split="train"), LabelCurveConfig(sizes=(2,), models=("tfidf",)))


@pytest.mark.slow  # ~40 s on the shared 2-core box: SetFit and the Transformer load MiniLM four times
def test_curve_trains_setfit_tfidf_and_the_transformer_at_each_size() -> None:
    progress = []
    result = measure_label_curve(tiny_frame(), LabelCurveConfig(sizes=(2, 4), **TINY),
                                 on_progress=lambda f, t: progress.append((f, t)))
    assert [(p["model"], p["size"]) for p in result.points] == [
        ("setfit", 2), ("tfidf", 2), ("transformer", 2), ("setfit", 4), ("tfidf", 4), ("transformer", 4)]
    assert all(0 <= p["macro_f1"] <= 1 and p["train_s"] >= 0 for p in result.points)
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("Transformer on 4 labels a class" in t for _, t in progress)


def test_sentence_reads_a_rising_a_flat_and_a_one_point_curve() -> None:
    def curve(gain: float, seeds: int = 3) -> dict:
        points = [{"model": "setfit", "size": 32, "seed": 0, "macro_f1": 0.60},
                  {"model": "setfit", "size": 64, "seed": 0, "macro_f1": 0.60 + gain},
                  {"model": "tfidf", "size": 32, "seed": 0, "macro_f1": 0.50},
                  {"model": "tfidf", "size": 64, "seed": 0, "macro_f1": 0.55}]
        return {"points": points, "seeds": seeds, "skipped_sizes": [], "smallest_class": {}}

    assert read_curve(curve(0.08)) == ("SetFit gains 0.08 macro-F1 from 32 to 64 labels a class: labelling more is "
                                       "likely to pay off.")
    assert read_curve(curve(0.01)).startswith("SetFit is flat from 32 to 64 labels a class (+0.01 macro-F1): "
                                              "more labels buy little")
    assert "one seed" in read_curve(curve(0.08, seeds=1))
    one = {"points": [{"model": "tfidf", "size": 8, "seed": 0, "macro_f1": 0.5}], "seeds": 1,
           "skipped_sizes": [16], "smallest_class": {"label": "x", "count": 9}}
    assert read_curve(one).startswith("Only 8 labels a class could be scored")
    assert "the smallest class, 'x', has 9" in read_curve(one)


def test_chart_draws_a_line_per_model_on_a_log2_axis_with_a_band_and_the_reference() -> None:
    points = [{"model": m, "size": k, "seed": s, "macro_f1": 0.4 + 0.001 * k + 0.02 * s}
              for m in ("tfidf", "setfit") for k in (8, 16, 32, 64) for s in range(2)]
    fig = label_curve_chart(aggregate(points), reference=("this run", 0.71))
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["SetFit", "TF-IDF"]  # the registry's order, not the points'
    assert list(lines[0].x) == [8, 16, 32, 64] and lines[0].y[0] == pytest.approx(0.418)
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 2 and bands[0].y[0] == pytest.approx(0.418 + 0.01)
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [8, 16, 32, 64]
    [line] = fig.layout.shapes
    assert line.line.dash == "dash" and line.y0 == line.y1 == 0.71
    one_seed = label_curve_chart(aggregate([p for p in points if p["seed"] == 0]))
    assert not [t for t in one_seed.data if t.fill == "toself"] and not one_seed.layout.shapes


def test_small_training_set_means_setfit_or_at_most_64_labels_a_class() -> None:
    assert lc.is_small_training_set("setfit", {"a": 500, "b": 500})
    assert lc.is_small_training_set("tfidf", {"a": 60, "b": 68})
    assert not lc.is_small_training_set("tfidf", {"a": 70, "b": 70})


def store_labelled(frame: pd.DataFrame, name: str = "curve", mapping: dict | None = None) -> int:
    from core.data.storage import write_dataset

    with session_scope() as s:
        return write_dataset(s, name=name, task=TaskKind.CLASSIFICATION, frame=frame,
                             mapping=mapping or {"text": "text", "label": "label"}).id


def test_label_curve_job_runs_in_a_real_worker_and_is_never_listed_as_a_model() -> None:
    dataset_id = store_labelled(tiny_frame())
    with session_scope() as s:
        run_id = curve_job.start_label_curve(s, dataset_id, {"models": ["tfidf"], "sizes": [4, 2, 64], "seeds": 2})
    row = wait_until(run_id, finished, timeout=120)
    assert row["status"] == RunStatus.COMPLETED, f"{row['error']}\n{worker_log(run_id)}"
    assert row["device"] == "cpu"
    metrics = row["metrics"]
    assert metrics["sizes"] == [2, 4] and metrics["skipped_sizes"] == [64] and len(metrics["points"]) == 4
    written = json.loads(RunFiles.of(run_id).label_curve.read_text())
    assert written == metrics  # the file the page reads while the job runs holds the final scores too
    with read_scope() as s:
        run = run_queries.get_run(s, run_id)
        assert curve_job.read_curve_of(run) == metrics
        assert curve_job.latest_curve_run(s, dataset_id).id == run_id
        assert run_queries.list_runs(s, models_only=True) == []
        assert run_queries.run_records(s, ["macro_f1"]) == []
        assert [r.id for r in run_queries.list_runs(s)] == [run_id]
    from core.api.served import ServedModels

    assert ServedModels().load() == []  # `protolab serve` (every completed run) serves no job
    assert "label_curve" not in registry.kind_names(TaskKind.CLASSIFICATION)
    assert registry.get_kind("label_curve").is_job
    assert "label_curve" in [k.name for k in registry.all_kinds(jobs=True)]


def test_label_curve_job_refuses_bad_options_and_datasets_it_cannot_draw() -> None:
    dataset_id = store_labelled(tiny_frame())
    with session_scope() as s:
        with pytest.raises(LabelCurveError, match="epochs do not apply to a label curve"):
            curve_job.start_label_curve(s, dataset_id, {"epochs": 3})
        with pytest.raises(LabelCurveError, match="smallest class, 'positive', has only 12 labelled examples in the "
                                                  "training split of 'curve'"):
            curve_job.start_label_curve(s, dataset_id, {"sizes": [16, 32]})
    unlabelled = store_labelled(tiny_frame(), name="pile", mapping={"text": "text", "label": "label",
                                                                     "unlabelled": True})
    with session_scope() as s, pytest.raises(LabelCurveError, match="still being labelled"):
        curve_job.start_label_curve(s, unlabelled, {})
    with read_scope() as s:
        assert run_queries.list_runs(s) == []


def test_cli_label_curve_waits_and_prints_the_curve_and_its_reading(capsys: pytest.CaptureFixture[str]) -> None:
    from core.cli import main

    store_labelled(tiny_frame(), name="tickets")
    assert main(["datasets", "label-curve", "tickets", "--sizes", "2,4,64", "--models", "tfidf", "--wait",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "completed" and out["skipped_sizes"] == [64]
    assert [(r["model"], r["size"]) for r in out["curve"]] == [("tfidf", 2), ("tfidf", 4)]
    assert out["reading"].startswith("TF-IDF ") and "from 2 to 4 labels a class" in out["reading"]
    assert main(["datasets", "label-curve", "tickets", "--sizes", "two"]) == 1
    assert "--sizes takes whole numbers separated by commas, got 'two'" in capsys.readouterr().err
    assert main(["datasets", "label-curve", "tickets", "--models", "bert"]) == 1
    assert "unknown model(s) bert" in capsys.readouterr().err

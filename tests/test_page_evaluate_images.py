"""AppTest of pages/evaluate.py on an image run: the classification views, and the gallery of a confusion cell's
mistakes as thumbnails with their probabilities."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.cli import main
from core.images.training import execute_probe_run
from core.runs import registry
from core.settings import run_dir
from db import datasets as dataset_queries
from db import runs as run_queries
from db import session_scope
from db.enums import RunStatus
from db.models import utcnow
from tests.test_image_models import COLOURS, coloured
from tests.test_training import RecordingContext

PAGE = "../pages/evaluate.py"


def probe_run_with_mistakes(tmp_path: Path) -> int:
    """A completed linear-probe run whose test split holds two red pictures filed under blue."""
    path, seed = tmp_path / "pics.zip", 0
    with zipfile.ZipFile(path, "w") as archive:
        for split, n in (("train", 8), ("val", 3), ("test", 3)):
            for label, channel in COLOURS.items():
                for i in range(n + (2 if split == "test" and label == "blue" else 0)):
                    out = io.BytesIO()
                    coloured(COLOURS["red"] if split == "test" and label == "blue" and i >= n else channel,
                             seed).save(out, "PNG")
                    archive.writestr(f"{split}/{label}/{i}.png", out.getvalue())
                    seed += 1
    assert main(["datasets", "add", str(path), "--task", "images", "--name", "pics"]) == 0
    config = registry.get_kind("linear_probe").make_config({"image_size": 32})
    with session_scope() as s:
        dataset_id = dataset_queries.get_dataset_by_name(s, "pics").id
        run_id = run_queries.create_run(s, dataset_id=dataset_id, task="images", model_kind="linear_probe",
                                        config=config, name="probe", device="cpu").id
    ctx = RecordingContext(model_kind="linear_probe", config=config, dataset_id=dataset_id,
                           artifact_dir=run_dir(run_id), run_id=run_id, task="images")
    metrics = execute_probe_run(ctx)
    with session_scope() as s:
        run = run_queries.get_run(s, run_id)
        run.status, run.metrics, run.progress = RunStatus.COMPLETED, metrics, 1.0
        run.started_at = run.finished_at = utcnow()
    return run_id


def test_a_confusion_cell_shows_its_mistakes_as_thumbnails(tmp_path: Path) -> None:
    run_id = probe_run_with_mistakes(tmp_path)
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.query_params["run"] = str(run_id)
    at.run()
    assert not at.exception
    assert "Mistakes as pictures" in [h.value for h in at.subheader]
    at.session_state["err_split"] = "test"
    at.session_state["err_true"], at.session_state["err_pred"] = "blue", "red"
    at.run()
    assert not at.exception
    captions = [c for el in at.get("image") for c in el.captions]
    assert len(captions) == 2 and all(c.startswith("red ") and "· blue " in c for c in captions), captions
    at.session_state["err_true"], at.session_state["err_pred"] = "red", "blue"
    at.run()
    assert not at.get("image") and any("No test mistakes" in c.value for c in at.caption)


def test_the_html_report_embeds_the_mistakes_thumbnails(tmp_path: Path) -> None:
    from core.export.report import build_report

    page = build_report([probe_run_with_mistakes(tmp_path)])
    gallery = page.split("Most confident mistakes as pictures", 1)[1]
    assert gallery.count('<img src="data:image/png;base64,') == 2  # inside the file: it opens offline
    assert "red " in gallery and 'src="http' not in page
    assert "TF-IDF" not in page  # an image run has a linear probe, not a TF-IDF baseline

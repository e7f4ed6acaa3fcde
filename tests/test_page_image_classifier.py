"""AppTest of pages/image_classifier.py: the empty state, one uploaded picture with its top-k bars and heatmap, a
ZIP scored to a CSV (a broken member reported on its row); plus the heatmap overlay itself."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.images.demo import overlay_heatmap, top_k
from db import runs as run_queries
from db import session_scope
from tests.test_image_models import coloured
from tests.test_page_evaluate_images import probe_run_with_mistakes

PAGE = "../pages/image_classifier.py"


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_empty_page_says_what_to_do() -> None:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "No trained image model" in at.info[0].value


def test_a_picture_gets_its_classes_and_heatmap_and_a_zip_a_csv(tmp_path: Path) -> None:
    run_id = probe_run_with_mistakes(tmp_path)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception and at.selectbox(key="run").value == run_id
    at.file_uploader(key="image_upload").set_value(("red.png", png(coloured(0, 77)), "image/png"))
    at.run()
    assert not at.exception
    assert at.metric[0].value == "red"
    bars = json.loads(next(el for el in at.get("plotly_chart") if el.proto.id.endswith("upload_proba_chart"))
                      .proto.spec)
    assert bars["data"][0]["y"][0] == "red"  # the most probable class first
    assert "Where the model looked" in [h.value for h in at.subheader]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/blue.png", png(coloured(2, 78)))
        archive.writestr("a/broken.png", b"not a picture")
    at.file_uploader(key="zip_upload").set_value(("batch.zip", buffer.getvalue(), "application/zip"))
    at.run()
    at.button(key="score_zip").click().run()
    assert not at.exception
    assert "1 images scored, 1 unreadable" in [c.value for c in at.caption]
    table = at.dataframe[0].value
    assert table.set_index("path").loc["a/blue.png", "label"] == "blue"
    assert "broken.png" in table.set_index("path").loc["a/broken.png", "error"]
    assert at.get("download_button")


def test_the_overlay_colours_only_where_covering_hurt() -> None:
    image = Image.new("RGB", (40, 40), (0, 0, 255))
    heat = np.array([[1.0, 0.0], [-0.5, 0.0]])
    out = np.asarray(overlay_heatmap(image, heat))
    assert out[2, 2, 0] > 100 and out[37, 37, 0] == 0 and out[37, 2, 0] == 0
    assert list(top_k({"a": 0.1, "b": 0.7, "c": 0.2}, 2)) == ["b", "c"]


def test_presentation_mode_shows_a_plain_model_card(tmp_path: Path) -> None:
    run_id = probe_run_with_mistakes(tmp_path)
    with session_scope() as s:  # a weak run (2 of 8 test pictures wrong) is shown in presentation only pinned
        run_queries.set_pinned(s, run_queries.get_run(s, run_id), True)
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["present"] = True
    at.run()
    assert not at.exception
    shown = [m.value for m in at.markdown] + [h.value for h in at.subheader]
    assert any("Reads an image and says" in t and "images it never saw" in t for t in shown), shown
    assert not at.get("page_link") and f"#{run_id}" in at.expander[0].caption[0].value

"""The image CLI contract: `protolab train --dataset D --model linear_probe --wait --json` through the worker
process, then `protolab predict --run ID photo.png --json` printing label, confidence and probabilities per image."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.cli import main
from tests.test_image_models import coloured, pictures_zip


@pytest.mark.slow
def test_train_and_predict_an_image_run_from_the_command_line(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "add", str(pictures_zip(tmp_path / "pics.zip")), "--task", "images",
                 "--name", "pics"]) == 0
    capsys.readouterr()
    assert main(["train", "--dataset", "pics", "--model", "linear_probe", "--image-size", "32", "--wait",
                 "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["status"] == "completed" and run["task"] == "images", run.get("error")
    assert run["metrics"]["accuracy"] == 1.0
    red, blue = tmp_path / "red.png", tmp_path / "blue.jpg"
    coloured(0, 500).save(red)
    coloured(2, 501).save(blue)
    assert main(["predict", "--run", str(run["run_id"]), str(red), str(blue), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert [a["label"] for a in answers] == ["red", "blue"]
    assert all(set(a) >= {"label", "confidence", "probabilities"} for a in answers)
    assert answers[0]["confidence"] == max(answers[0]["probabilities"].values())
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    assert main(["predict", "--run", str(run["run_id"]), str(tmp_path / "broken.png"), "--json"]) != 0
    assert "broken.png" in capsys.readouterr().err

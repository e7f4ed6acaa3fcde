"""The code the demo pages show for calling the API: valid curl and Python for the shown run, no key inside."""

from __future__ import annotations

import ast
import json
import shlex

import pytest

from core.api.snippets import KEY_ENV, api_base_url, predict_snippets, recommend_snippets


def _curl_parts(curl: str) -> tuple[str, dict]:
    words = shlex.split(curl.replace("\\\n", " "))
    return words[words.index("-X") + 2], json.loads(words[words.index("-d") + 1])


def test_predict_snippets_call_the_run_with_the_texts() -> None:
    texts = ["Great service, thanks!", "it's \"broken\" ünd $HOME"]
    s = predict_snippets(12, texts, "http://127.0.0.1:8000")
    url, body = _curl_parts(s.curl)
    assert url == "http://127.0.0.1:8000/v1/runs/12/predict" and body == {"texts": texts}
    assert f"Authorization: Bearer ${KEY_ENV}" in s.curl
    tree = ast.parse(s.python)  # valid Python
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "post")
    assert ast.literal_eval(call.args[0]) == url
    assert ast.literal_eval(next(k.value for k in call.keywords if k.arg == "json")) == {"texts": texts}
    assert f"os.environ[{KEY_ENV!r}]" in s.python
    assert s.serve.splitlines()[-1] == "protolab serve --run 12"


def test_recommend_snippets_for_a_user_or_likes() -> None:
    s = recommend_snippets(4, user="196", k=5, base_url="http://10.1.2.3:9000/")
    assert _curl_parts(s.curl) == ("http://10.1.2.3:9000/v1/runs/4/recommend", {"user": "196", "k": 5})
    assert s.serve.endswith("protolab serve --run 4 --host 0.0.0.0 --port 9000")
    liked = recommend_snippets(4, like=["i1", "i2"])
    assert _curl_parts(liked.curl)[1] == {"like": ["i1", "i2"], "k": 10}
    ast.parse(liked.python)


def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROTOLAB_API_URL", raising=False)
    assert api_base_url() == "http://127.0.0.1:8000"
    monkeypatch.setenv("PROTOLAB_API_URL", "https://models.example.com/")
    assert predict_snippets(1, ["x"]).curl.splitlines()[0].endswith("https://models.example.com/v1/runs/1/predict \\")

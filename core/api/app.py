"""The FastAPI app `protolab serve` runs: /v1 predict, recommend and runs, /healthz, OpenAPI docs at /docs.

Every refusal is a 4xx JSON body `{"error": CODE, "detail": MESSAGE}` (never a traceback); /v1 needs
`Authorization: Bearer KEY` unless the server was started without auth (loopback only, checked by the CLI).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core import __version__
from core.api.served import ApiError, ServedModels, ServedRun
from db.enums import TaskKind

KEY_CACHE_S = 5.0  # a verified key is trusted this long: a revoked key stops working within these seconds


@dataclass(frozen=True)
class Limits:
    max_texts: int = 256  # texts in one predict request
    max_chars: int = 20_000  # characters in one text (a long review, not a book)
    max_body_bytes: int = 2_000_000  # the whole request body
    max_k: int = 100  # recommendations in one answer


class PredictRequest(BaseModel):
    texts: list[str] = Field(description="the texts to label, in order", examples=[["great service", "awful"]])


class Prediction(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]
    low_confidence: bool = Field(description="the model is unsure (confidence below 0.6): treat it as a guess")
    truncated: bool = Field(description="the text was longer than the model reads; only its beginning was scored")


class PredictResponse(BaseModel):
    run_id: int
    model: str
    labels: list[str]
    predictions: list[Prediction]


class RecommendRequest(BaseModel):
    user: str | int | None = Field(None, description="a user the model was trained on")
    like: str | int | list[str | int] | None = Field(None, description="an item (or items) a new visitor likes")
    k: int = Field(10, description="how many items to return")


class RecommendedItem(BaseModel):
    item: str
    title: str
    score: float
    because: str | None = Field(None, description="the liked or seen item most similar to this one")


class RecommendResponse(BaseModel):
    run_id: int
    model: str
    items: list[RecommendedItem]


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, from Content-Length or while they stream in."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = _error(413, "body_too_large", f"the request body is over {self.limit:,} bytes; send fewer "
                                                "or shorter texts per request")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await too_big(scope, receive, send)
        # No (or a false) Content-Length: read the body here, bounded, and hand it on whole. (Raising from
        # inside receive() would reach FastAPI's body parser, which turns any error into a vague 400.)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = bool(message.get("more_body"))
            if len(body) > self.limit:
                return await too_big(scope, receive, send)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class KeyChecker:
    """The /v1 dependency: a valid, unrevoked key in `Authorization: Bearer KEY` (cached a few seconds)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, float]] = {}

    def __call__(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "missing_key", "this API needs a key: send the header 'Authorization: Bearer KEY' "
                                               "(create a key with `protolab keys create --name NAME`)")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "bad_key", "the Authorization header must read 'Bearer KEY'")
        token = token.strip()
        cached = self._cache.get(token)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        from core.api.keys import verify_key
        from db import read_scope

        with read_scope() as s:
            name = verify_key(s, token)
        if name is None:
            self._cache.pop(token, None)
            raise ApiError(401, "bad_key", "this API key is not valid (mistyped, or revoked); "
                                           "see `protolab keys list`")
        if len(self._cache) > 1000:  # a flood of distinct keys must not grow memory without bound
            self._cache.clear()
        self._cache[token] = (name, time.monotonic() + KEY_CACHE_S)
        return name


def create_app(models: ServedModels, *, require_key: bool = True, limits: Limits = Limits()) -> FastAPI:
    """The API over already-loaded `models` (call models.load() first; runs completed later load on demand)."""
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        models.close()

    app = FastAPI(title="Protolab API", version=__version__, lifespan=lifespan,
                  description="Predictions and recommendations from completed Protolab runs. "
                              "Send `Authorization: Bearer KEY` (from `protolab keys create`) to every /v1 call.")
    app.state.models, app.state.limits = models, limits
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    _add_error_handlers(app)
    router = APIRouter(prefix="/v1", dependencies=[Depends(KeyChecker())] if require_key else [])

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        ready = sum(r.ready for r in models.runs.values())
        return {"status": "ok", "runs": ready, "unavailable": len(models.runs) - ready, "auth": require_key,
                "version": __version__}

    @router.get("/runs", tags=["runs"])
    def list_runs() -> dict[str, Any]:
        """What this server serves, with each run's test metrics and its endpoint."""
        return {"runs": [r.describe() for r in sorted(models.runs.values(), key=lambda r: r.run_id)]}

    @router.post("/runs/{run_id}/predict", response_model=PredictResponse, tags=["predict"])
    async def predict(run_id: int, body: PredictRequest) -> dict[str, Any]:
        """Label texts with a classification run: label, probabilities and flags per text, in order."""
        texts = _check_texts(body.texts, limits)
        run = await _served(models, run_id, TaskKind.CLASSIFICATION)
        assert run.batcher is not None
        proba, cut = await run.batcher.submit(texts)
        labels = list(run.model.labels)
        preds = []
        for row, truncated in zip(proba, cut, strict=True):
            best = int(row.argmax())
            confidence = float(row[best])
            preds.append({"label": labels[best], "confidence": round(confidence, 6),
                          "probabilities": {lab: round(float(p), 6) for lab, p in zip(labels, row, strict=True)},
                          "low_confidence": confidence < _low_confidence(), "truncated": bool(truncated)})
        return {"run_id": run_id, "model": run.model_kind, "labels": labels, "predictions": preds}

    @router.post("/runs/{run_id}/recommend", response_model=RecommendResponse, tags=["recommend"])
    async def recommend(run_id: int, body: RecommendRequest) -> dict[str, Any]:
        """Top-k items for a known user (`user`) or for a new visitor who likes some items (`like`)."""
        if (body.user is None) == (body.like is None):
            raise ApiError(422, "invalid_request", 'give exactly one of "user" (a known user) or "like" '
                                                   "(an item, or a list of items, a new visitor likes)")
        if not 1 <= body.k <= limits.max_k:
            raise ApiError(422, "invalid_request", f'"k" must be between 1 and {limits.max_k} (got {body.k})')
        run = await _served(models, run_id, TaskKind.INTERACTIONS)
        model = run.model
        likes = body.like if isinstance(body.like, list) else [body.like]

        def rank() -> list[tuple[str, float, str | None]]:
            if body.user is not None:
                return model.recommend(str(body.user), body.k)
            return model.recommend_for_likes([str(x) for x in likes], body.k)

        from core.recs.models import RecommenderError

        try:
            recs = await asyncio.get_running_loop().run_in_executor(None, rank)
        except RecommenderError as exc:
            raise ApiError(404, "unknown_user" if body.user is not None else "unknown_item", str(exc)) from exc
        items = [{"item": item, "title": model.title(item), "score": round(score, 6), "because": reason}
                 for item, score, reason in recs]
        return {"run_id": run_id, "model": run.model_kind, "items": items}

    app.include_router(router)
    return app


def _low_confidence() -> float:
    from core.text.serving import LOW_CONFIDENCE

    return LOW_CONFIDENCE


def _check_texts(texts: list[str], limits: Limits) -> list[str]:
    if not texts:
        raise ApiError(422, "no_texts", '"texts" is empty: send at least one text, e.g. {"texts": ["great service"]}')
    if len(texts) > limits.max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts):,} texts in one request; the limit is "
                                              f"{limits.max_texts} (split them over several requests)")
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            raise ApiError(413, "text_too_long", f"texts[{i}] is {len(text):,} characters long; the limit is "
                                                 f"{limits.max_chars:,} per text")
        if not text.strip():
            raise ApiError(422, "empty_text", f"texts[{i}] is empty: every text needs at least one word")
    return [t.strip() for t in texts]


async def _served(models: ServedModels, run_id: int, task: TaskKind) -> ServedRun:
    run = models.get(run_id)
    if run is None:  # not loaded yet: look it up (and load it) off the event loop
        run = await asyncio.to_thread(models.find, run_id)
    if run.task is not task:
        have = "a classification" if run.task is TaskKind.CLASSIFICATION else "a recommender"
        use = "predict" if run.task is TaskKind.CLASSIFICATION else "recommend"
        raise ApiError(400, "wrong_task", f"run {run_id} is {have} run: call POST /v1/runs/{run_id}/{use} instead")
    if not run.ready:
        raise ApiError(410, "files_gone", f"run {run_id} cannot be served: {run.error}")
    return run


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return _error(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _validation_message(exc.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug: say so, no traceback
        return _error(500, "internal_error", f"unexpected {type(exc).__name__}; see the server's log")


def _validation_message(errors: Any) -> str:
    """One line out of pydantic's error list: where (body.texts.2) and what."""
    parts = []
    for err in list(errors)[:3]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        if err.get("type") == "json_invalid":
            parts.append("the body is not valid JSON")
        else:
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
    extra = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + extra

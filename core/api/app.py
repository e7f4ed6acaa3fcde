"""The FastAPI app `protolab serve` runs: /v1 predict, recommend and runs, /healthz, OpenAPI docs at /docs.

Every refusal is a 4xx JSON body `{"error": CODE, "detail": MESSAGE}` (never a traceback); /v1 needs
`Authorization: Bearer KEY` unless the server was started without auth (loopback only, checked by the CLI).
"""

# No `from __future__ import annotations` here: FastAPI reads the routes' annotations at definition, and the
# request models are local to create_app (they carry the server's limits).
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, File, Path, Request, UploadFile
from fastapi.security import HTTPBearer

from core import __version__
from core.api.contract import (
    MAX_RUN_ID,
    Limits,
    PredictResponse,
    RecommendResponse,
    add_error_handlers,
    documented,
    request_models,
)
from core.api.gate import BodyLimit, KeyGate
from core.api.keys import KeyInfo
from core.api.served import ApiError, ServedModels, ServedRun
from core.errors import ProtolabError, RefusedInput
from core.recs.models import RecommenderError
from core.tasks import FILES_PATH, Task, all_tasks, get_task
from core.text.serving import LOW_CONFIDENCE
from db.enums import TaskKind

log = logging.getLogger(__name__)

__all__ = ["Limits", "create_app"]

RunId = Annotated[int, Path(ge=1, le=MAX_RUN_ID, description="the run's id (see GET /v1/runs)")]


def create_app(models: ServedModels, *, require_key: bool = True, limits: Limits = Limits()) -> FastAPI:
    """The API over already-loaded `models` (call models.load() first; runs completed later load on demand)."""
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        models.close()

    app = FastAPI(title="Protolab API", version=__version__, lifespan=lifespan,
                  description="Predictions and recommendations from completed Protolab runs. "
                              "Send `Authorization: Bearer KEY` (from `protolab keys create`) to every /v1 call. "
                              'Every refusal is `{"error": CODE, "detail": MESSAGE}`.')
    app.state.models, app.state.limits = models, limits
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes, timeout_s=limits.body_timeout_s)
    if require_key:  # outermost: the key is checked before the body is read
        app.add_middleware(KeyGate)
    add_error_handlers(app, limits)
    # The key itself is checked by KeyGate; this dependency only writes the scheme into the OpenAPI schema.
    security = [Depends(HTTPBearer(auto_error=False, description="a key from `protolab keys create`"))]
    router = APIRouter(prefix="/v1", dependencies=security if require_key else [])
    auth = (401,) if require_key else ()
    PredictRequest, RecommendRequest = request_models(limits)  # noqa: N806 (classes)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        ready = sum(r.ready for r in models.runs.values())
        return {"status": "ok", "runs": ready, "unavailable": len(models.runs) - ready, "auth": require_key,
                "version": __version__}

    @router.get("/runs", tags=["runs"], responses=documented(*auth))
    def list_runs(request: Request) -> dict[str, Any]:
        """What this server serves (of the runs the key may call), with each run's test metrics and endpoint."""
        key: KeyInfo | None = getattr(request.state, "api_key", None)
        shown = [r for r in models.runs.values() if key is None or key.run_ids is None or r.run_id in key.run_ids]
        return {"runs": [r.describe() for r in sorted(shown, key=lambda r: r.run_id)]}

    run_errors = documented(400, *auth, *((403,) if require_key else ()), 404, 408, 409, 410, 413, 422)

    @router.post("/runs/{run_id}/predict", response_model=PredictResponse, tags=["predict"], responses=run_errors)
    async def predict(run_id: RunId, body: PredictRequest) -> dict[str, Any]:
        """Label texts with a classification run: label, probabilities and flags per text, in order."""
        texts = [t.strip() for t in body.texts]  # the schema's pattern keeps a word in each
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

    @router.post("/runs/{run_id}/recommend", response_model=RecommendResponse, tags=["recommend"],
                 responses=run_errors)
    async def recommend(run_id: RunId, body: RecommendRequest) -> dict[str, Any]:
        """Top-k items for a known user (`user`) or for a new visitor who likes some items (`like`)."""
        run = await _served(models, run_id, TaskKind.INTERACTIONS)
        model = run.model
        likes = body.like if isinstance(body.like, list) else [body.like]

        def rank() -> list[tuple[str, float, str | None]]:
            if body.user is not None:
                return model.recommend(str(body.user), body.k)
            return model.recommend_for_likes([str(x) for x in likes], body.k)


        try:
            recs = await asyncio.get_running_loop().run_in_executor(None, rank)
        except RecommenderError as exc:
            raise ApiError(404, "unknown_user" if body.user is not None else "unknown_item", str(exc)) from exc
        items = [{"item": item, "title": model.title(item), "score": round(score, 6), "because": reason}
                 for item, score, reason in recs]
        return {"run_id": run_id, "model": run.model_kind, "items": items}

    for task in all_tasks():  # a task without a typed endpoint above: its entry's serve function answers
        if task.serve is not None:
            router.post(f"/runs/{{run_id}}/{task.verb}", tags=[str(task.name)],
                        responses=run_errors)(_task_endpoint(models, task))
        if task.serve_files is not None:
            router.post(f"/runs/{{run_id}}/{task.verb}/{FILES_PATH}", tags=[str(task.name)], responses=run_errors,
                        summary=f"{task.verb.capitalize()} uploaded files")(_files_endpoint(models, task, limits))
    app.include_router(router)
    return app


def _task_endpoint(models: ServedModels, task: Task) -> Any:
    async def answer(run_id: RunId, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        run = await _served(models, run_id, task.name)
        try:
            answer = await asyncio.to_thread(task.part("serve"), run.model, body)
        except ProtolabError as exc:  # the task's own check of the body or its content: the client's to fix
            raise ApiError(422, "invalid_input", str(exc)) from exc
        return {"run_id": run_id, "model": run.model_kind, **answer}

    return answer


def _files_endpoint(models: ServedModels, task: Task, limits: Limits) -> Any:
    files_doc = (f"the files, as a multipart/form-data upload: one `files` part per file (at most "
                 f"{limits.max_body_bytes:,} bytes in all; 413 past it)")

    Files = Annotated[list[UploadFile], File(description=files_doc, min_length=1)]  # noqa: N806 (a type)

    async def answer(run_id: RunId, files: Files) -> dict[str, Any]:
        """The files of one multipart upload, answered in order as the JSON endpoint answers them; a file that
        is not an image is refused (400, naming it), as is an upload over the body limit (413)."""
        run = await _served(models, run_id, task.name)
        sent = [(f.filename or f"files[{i}]", await f.read()) for i, f in enumerate(files)]
        try:
            answer = await asyncio.to_thread(task.part("serve_files"), run.model, sent)
        except RefusedInput as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from exc
        except ProtolabError as exc:
            raise ApiError(422, "invalid_input", str(exc)) from exc
        return {"run_id": run_id, "model": run.model_kind, **answer}

    return answer


def _low_confidence() -> float:
    return LOW_CONFIDENCE


async def _served(models: ServedModels, run_id: int, task: str) -> ServedRun:
    run = models.get(run_id)
    if run is None:  # not loaded yet: look it up (and load it) off the event loop
        run = await asyncio.to_thread(models.find, run_id)
    if run.task != task:
        have = get_task(run.task)
        raise ApiError(400, "wrong_task", f"run {run_id} is {have.run_noun}: call POST {have.endpoint(run_id)} "
                                          "instead")
    if not run.ready:
        raise ApiError(410, "files_gone", f"run {run_id} cannot be served: {run.error}")
    return run

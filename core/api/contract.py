"""What the API promises, in one place: request and response models, the error body, which statuses each
route documents, and the handlers that turn every failure (ours, FastAPI's, Starlette's) into that body.

The OpenAPI schema is generated from these, so the schema, the README and the answers cannot drift apart;
tests/test_api_contract.py runs schemathesis against a live server to keep it so.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.api.limits import Limits
from core.api.served import ApiError
from core.metric_keys import DISPLAY_K
from db.models import MAX_ID

log = logging.getLogger(__name__)

MAX_RUN_ID = MAX_ID  # a larger id cannot name a run (SQLite overflows on it)


class ErrorBody(BaseModel):
    """Every refusal: a short machine-readable code and one line a person can act on."""

    error: str = Field(description="a stable code, e.g. missing_key, unknown_run, invalid_request",
                       examples=["unknown_run"])
    detail: str = Field(description="what was wrong and how to fix it", examples=["there is no run 7"])


class AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: a detail may quote the caller's input, lone surrogates included, which
    UTF-8 cannot encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def error_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return AsciiJSON({"error": code, "detail": detail}, status_code=status, headers=headers)


STATUS_MEANINGS = {
    400: "a run of the other task (predict on a recommender, or recommend on a classifier), or an uploaded file "
         "that is not an image (named)",
    401: "no key, or a key that is not valid (mistyped or revoked)",
    403: "the key may not do this: a run outside its scope, or a read-only key asked to predict",
    404: "no such run here (or no such user or item in it)",
    408: "the body did not arrive in time",
    409: "the run has not completed",
    410: "the run's files are gone, so it cannot be served",
    413: "over a limit: texts or files per request, characters per text or bytes per body",
    422: "a malformed body or parameter",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status it can answer with, as an ErrorBody."""
    return {status: {"model": ErrorBody, "description": STATUS_MEANINGS[status]} for status in statuses}


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # absent means "not given"; null itself is not accepted


Identifier = StrictStr | StrictInt


def _not_only_space() -> str:
    """A pattern for "has a character that is not space", naming the spaces one by one: `\\S` differs between
    JSON Schema's regexes, pydantic's and Python's (U+0085, U+001C...), this reads the same in all three and
    matches what str.strip() removes. (Every space Unicode defines lies in its first plane.)"""
    spaces = [c for c in range(0x10000) if chr(c).isspace()]
    return "[^" + "".join(f"\\u{c:04x}" for c in spaces) + "]"


NOT_ONLY_SPACE = _not_only_space()


def request_models(limits: Limits) -> tuple[type[BaseModel], type[BaseModel]]:
    """The predict and recommend bodies, with this server's limits written into their schema."""
    text = Annotated[str, StringConstraints(max_length=limits.max_chars, pattern=NOT_ONLY_SPACE)]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[text] = Field(min_length=1, max_length=limits.max_texts, description="the texts to label, "
                                  "in order", examples=[["great service", "awful"]])

    class RecommendRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={
            "oneOf": [{"required": ["user"]}, {"required": ["like"]}]})
        user: Identifier = Field(None, description="a user the model was trained on",  # type: ignore[assignment]
                                 json_schema_extra=_no_default)
        like: Identifier | Annotated[list[Identifier], Field(min_length=1, max_length=limits.max_likes)] = Field(
            None, description="an item (or items) a new visitor likes", json_schema_extra=_no_default)
        k: int = Field(DISPLAY_K, ge=1, le=limits.max_k, description="how many items to return")

        @model_validator(mode="after")
        def _exactly_one(self) -> RecommendRequest:
            if (self.user is None) == (self.like is None):
                raise ValueError('give exactly one of "user" (a known user) or "like" (an item, or a list of '
                                 "items, a new visitor likes)")
            return self

    return PredictRequest, RecommendRequest


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


class RecommendedItem(BaseModel):
    item: str
    title: str
    score: float
    because: str | None = Field(None, description="the liked or seen item most similar to this one")


class RecommendResponse(BaseModel):
    run_id: int
    model: str
    items: list[RecommendedItem]


# --- every failure as an ErrorBody ---------------------------------------------------------------

def add_error_handlers(app: FastAPI, limits: Limits) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error_response(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*validation_refusal(list(exc.errors()), limits))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(*_http_refusal(request, exc), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # a bug: say so, no traceback
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; see the server's log")


def _http_refusal(request: Request, exc: StarletteHTTPException) -> tuple[int, str, str]:
    if exc.status_code == 404:
        return 404, "not_found", f"there is no {request.url.path}; see /docs for the endpoints"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return 405, "method_not_allowed", f"{request.url.path} does not take {request.method}; use {allowed}"
    if exc.status_code == 400:  # FastAPI could not decode the body: bad UTF-8, JSON nested too deep, bad multipart
        if request.headers.get("content-type", "").startswith("multipart/"):
            return 422, "invalid_request", "the body is not valid multipart/form-data (send one `files` part per file)"
        return 422, "invalid_request", _unparsable(exc.__cause__)
    return exc.status_code, "http_error", str(exc.detail)


def _unparsable(cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeError):
        return "the body is not valid UTF-8 (send JSON in UTF-8, or name its charset in Content-Type)"
    if isinstance(cause, RecursionError):
        return "the body's JSON is nested too deeply"
    return "the body is not valid JSON"


def validation_refusal(errors: list[dict[str, Any]], limits: Limits) -> tuple[int, str, str]:
    """(status, code, detail) for pydantic's errors: the texts' limits keep their own codes (413 for too much,
    as the README promises), anything else is one line saying where (texts.2) and what."""
    for err in errors:
        loc, kind = tuple(err.get("loc", ())), err.get("type")
        if loc[:2] != ("body", "texts"):
            continue
        if len(loc) == 2 and kind == "too_short":
            return 422, "no_texts", '"texts" is empty: send at least one text, e.g. {"texts": ["great service"]}'
        if len(loc) == 2 and kind == "too_long":
            return 413, "too_many_texts", (f"{err.get('ctx', {}).get('actual_length', 'too many'):,} texts in one "
                                           f"request; the limit is {limits.max_texts} (split them over several "
                                           "requests)")
        if len(loc) == 3 and kind == "string_too_long":
            return 413, "text_too_long", (f"texts[{loc[2]}] is {len(err.get('input') or ''):,} characters long; "
                                          f"the limit is {limits.max_chars:,} per text")
        if len(loc) == 3 and kind == "string_pattern_mismatch":
            return 422, "empty_text", f"texts[{loc[2]}] is empty: every text needs at least one word"
    return 422, "invalid_request", _validation_message(errors)


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:3]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            parts.append("the body is not valid JSON")
        elif err.get("type") == "model_attributes_type" and where == "body":
            parts.append("the body must be a JSON object, sent with Content-Type: application/json")
        else:
            parts.append(f"{where}: {msg}")
    extra = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + extra

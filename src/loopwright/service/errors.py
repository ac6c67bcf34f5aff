"""One table from :mod:`loopwright.errors` to HTTP statuses, and the handlers that use it.

Every error body is ``{"code": ..., "message": ...}``; ``Invalid`` (and request-body validation)
adds ``"errors": [{"field": ..., "message": ...}]``. The nearest class in the exception's MRO
decides the status:

=====================  ======  ==========================================================
class                  status  why
=====================  ======  ==========================================================
NotFound               404     also for projects/leases the caller is not a member of
Conflict               409     lease held by someone else, task already done, …
LeaseExpired           409     a Conflict: claim the task again
Paused                 403     the annotator may not work on that tier for now (gold)
Capped                 429     fatigue cap reached; the message says when to resume
Invalid                422     ``errors`` lists the fields; same code as body validation
UnknownLabel           422     an Invalid with its own code
TooFewLabels           422     an Invalid: too few training labels to retrain yet
NotFitted              409     the project has no champion yet: a state, not a bad request
StoreUnavailable       503     the database could not be reached after retrying
ModelUnavailable       503     a served model is down, too slow or answered garbage
LoopwrightError        400     any other deliberate error
(auth)                 401     ``unauthenticated``: missing or unknown bearer token
(auth)                 403     ``forbidden``: a member whose role may not do this
(body limit)           413     ``too_large``: the request body passed the server's cap
anything else          500     ``{"code": "internal", "message": "internal error"}``, no trace
=====================  ======  ==========================================================
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopwright.errors import (
    Capped,
    Conflict,
    Invalid,
    LeaseExpired,
    LoopwrightError,
    ModelUnavailable,
    NotFitted,
    NotFound,
    Paused,
    StoreUnavailable,
    TooFewLabels,
    UnknownLabel,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[LoopwrightError], int] = {
    NotFound: 404,
    Conflict: 409,
    LeaseExpired: 409,
    Paused: 403,
    Capped: 429,
    Invalid: 422,
    UnknownLabel: 422,
    TooFewLabels: 422,
    NotFitted: 409,
    StoreUnavailable: 503,
    ModelUnavailable: 503,
    LoopwrightError: 400,
}


class Unauthenticated(LoopwrightError):
    """No bearer token, or one that resolves to nobody (HTTP 401)."""

    code = "unauthenticated"


class Forbidden(LoopwrightError):
    """The caller is a member of the project, but their role may not do this (HTTP 403)."""

    code = "forbidden"


STATUS_BY_ERROR[Unauthenticated] = 401
STATUS_BY_ERROR[Forbidden] = 403
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def status_for(exc: LoopwrightError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400  # pragma: no cover - LoopwrightError is always in the MRO


def error_body(exc: LoopwrightError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, Invalid):
        body["errors"] = [{"field": f, "message": m} for f, m in exc.errors]
    return body


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def on_loopwright(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LoopwrightError)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
        return JSONResponse(error_body(exc), status_code=status_for(exc), headers=headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        body = {"code": Invalid.code, "message": "the request failed validation", "errors": errors}
        return JSONResponse(body, status_code=422)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        """Framework errors (unknown path, wrong method, unparsable body) in the same shape."""
        assert isinstance(exc, StarletteHTTPException)
        code = HTTP_CODES.get(exc.status_code, "http_error")
        body = {"code": code, "message": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    async def on_internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"code": "internal", "message": "internal error"}, status_code=500)

    app.add_exception_handler(LoopwrightError, on_loopwright)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_internal)

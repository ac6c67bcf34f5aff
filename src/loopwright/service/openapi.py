"""The error responses every route documents: one body shape, ``{code, message, errors?}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

from loopwright.wire import ErrorBody

MAX_ID = 2**63 - 1  # a database BIGINT
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
After = Annotated[int, Query(ge=0, le=MAX_ID, description="ids greater than this (the last next_after)")]
Limit = Annotated[int, Query(ge=1, le=1000)]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": why}
    for status, why in (
        (400, "a deliberate error without a status of its own"),
        (401, "unauthenticated: missing or unknown bearer token"),
        (403, "forbidden for the caller's role, or paused from a tier"),
        (404, "not found (also: a project the caller is not a member of)"),
        (409, "conflict with the current state (lease, task, model, not fitted)"),
        (422, "invalid input; `errors` lists the fields"),
        (429, "a fatigue cap is reached"),
        (503, "the database could not be reached"),
    )
}

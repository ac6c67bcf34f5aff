"""What every route shares in its contract: the bounded id, paging and text types of its
parameters and bodies (beyond them: 422, never a database error), and the error responses it
documents, in one body shape ``{code, message, errors?}``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import AfterValidator, Field

from loopwright.errors import Invalid
from loopwright.wire import ErrorBody

# Ids are INTEGER columns: 32 bits on PostgreSQL (64 on SQLite). Every id or tier a request
# carries stays within them, so it is a 422 here and not a database error (a 500) there.
MAX_ID = 2**31 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
After = Annotated[int, Query(ge=0, le=MAX_ID, description="ids greater than this (the last next_after)")]
Before = Annotated[int | None, Query(ge=1, le=MAX_ID, description="ids smaller than this")]
Limit = Annotated[int, Query(ge=1, le=1000)]

# Bounds of the fields in request bodies (422 beyond them). Integers are strict: true is no 1.
MAX_KEY = 200  # labels, kinds, idempotency keys, session ids, event prefixes
MAX_EXTERNAL_ID = 512
MAX_TEXT = 2_000  # comments and reasons
MAX_METADATA_BYTES = 64 * 1024  # an item's metadata, as JSON
MAX_TIERS = 100
BodyId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
Tier = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
Key = Annotated[str, Field(max_length=MAX_KEY)]
ExternalId = Annotated[str, Field(min_length=1, max_length=MAX_EXTERNAL_ID)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, default=str))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_small_json)]
MAX_GUIDELINES = 50_000


def check_config_text(config: dict[str, Any]) -> None:
    """Bound the free text of a posted project configuration: guidelines and labels."""
    errors: list[tuple[str, str]] = []
    guidelines = config.get("guidelines")
    if isinstance(guidelines, str) and len(guidelines) > MAX_GUIDELINES:
        errors.append(("guidelines", f"at most {MAX_GUIDELINES} characters, not {len(guidelines)}"))
    labels = config.get("labels")
    for i, label in enumerate(labels if isinstance(labels, list) else []):
        if isinstance(label, str) and len(label) > MAX_KEY:
            errors.append((f"labels.{i}", f"at most {MAX_KEY} characters"))
    if errors:
        raise Invalid("the project configuration has fields that are too long", errors)


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": why}
    for status, why in (
        (400, "a deliberate error without a status of its own"),
        (401, "unauthenticated: missing or unknown bearer token"),
        (403, "forbidden for the caller's role, or paused from a tier"),
        (404, "not found (also: a project the caller is not a member of)"),
        (409, "conflict with the current state (lease, task, model, not fitted)"),
        (413, "the request body is larger than the server accepts"),
        (422, "invalid input; `errors` lists the fields"),
        (429, "a fatigue cap is reached"),
        (503, "the database could not be reached"),
    )
}

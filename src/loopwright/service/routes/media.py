"""Images that items reference, for the people who may review them: the original (a DICOM file
as a PNG rendering) or a thumbnail, with an ETag so a browser asks again cheaply (304).

Only an item's own reference is ever read, and only inside the project's media roots: the URL
names an item id, never a path, so there is no file server to walk out of."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Query, Request, Response

from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project
from loopwright.service.openapi import ERRORS, Id

router = APIRouter(tags=["media"], responses=ERRORS)

CACHE_CONTROL = "private, max-age=3600"  # the file may change: revalidated by ETag after an hour


@router.get(
    "/v1/projects/{name}/items/{item_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}, 304: {}},
)
def item_image(
    name: str,
    item_id: Id,
    request: Request,
    ws: Ws,
    who: Caller,
    size: int | None = Query(None, description="thumbnail side in pixels: 64, 128, 256, 512 or 1024"),
) -> Response:
    """The image item ``item_id`` references (review permission on the project)."""
    loop = project(ws, name, who, Action.REVIEW)
    cache_dir: Path | None = getattr(request.app.state, "thumbnail_dir", None)
    picture = loop.image(item_id, size, cache_dir, request.headers.get("if-none-match"))
    headers = {"Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    if picture.not_modified:
        return Response(status_code=304, headers={**headers, "ETag": picture.etag})
    return Response(picture.data, media_type=picture.media_type, headers={**headers, "ETag": picture.etag})

"""Dataset versions: list, show, diff, snapshot, export as a file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam

from loopwright import wire
from loopwright.service.auth import Action
from loopwright.service.deps import Caller, Ws, project, to_json
from loopwright.service.openapi import ERRORS

router = APIRouter(prefix="/v1/projects/{name}/datasets", tags=["datasets"], responses=ERRORS)

MEDIA_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "offsets": "application/x-ndjson",  # spans with character offsets
    "conll": "text/plain; charset=utf-8",  # spans as BIO tags
    "coco": "application/json",  # boxes: the COCO annotations.json (YOLO is a folder: use the CLI)
}
Ref = Annotated[str, PathParam(description="a full id, a unique prefix of ≥ 6 characters, or latest")]


def _version(obj: Any) -> Any:
    """A dataset version without its entries."""
    data = to_json(obj)
    data.pop("entries", None)
    return data


@router.get("", response_model=wire.DatasetList)
def list_datasets(name: str, ws: Ws, who: Caller) -> Any:
    return {"datasets": [_version(d) for d in project(ws, name, who, Action.READ).datasets()]}


@router.post("", response_model=wire.DatasetVersion)
def snapshot(name: str, ws: Ws, who: Caller) -> Any:
    """Freeze the resolved labels into a content-addressed version (the same labels: the same id)."""
    return _version(project(ws, name, who, Action.MANAGE).snapshot(actor=who.name))


@router.get("/{ref}", response_model=wire.DatasetDetail)
def get_dataset(name: str, ref: Ref, ws: Ws, who: Caller) -> Any:
    loop = project(ws, name, who, Action.READ)
    version = loop.dataset(ref)
    return to_json(version, erased_items=loop.erasure_marks().datasets.get(version.id, 0))


@router.get("/{ref}/eval", response_model=wire.EvalSplit)
def eval_split(
    name: str,
    ref: Ref,
    ws: Ws,
    who: Caller,
    labels: Annotated[bool, Query(description="add the eval items' own labels")] = False,
) -> Any:
    """The frozen evaluation split for a pipeline that trains elsewhere: external ids and
    payloads (embeddings where records carried them); its labels only when asked. Train on the
    train split of the export, score these, upload the scores (``POST …/models/{v}/predictions``)."""
    return project(ws, name, who, Action.READ).eval_split(ref, labels)


@router.get("/{a}/diff/{b}", response_model=wire.DatasetDiff)
def diff(name: str, a: str, b: str, ws: Ws, who: Caller) -> Any:
    """Items added, relabelled and removed from version ``a`` to version ``b``."""
    return project(ws, name, who, Action.READ).diff_datasets(a, b).as_dict()


@router.get(
    "/{ref}/export",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}, "description": "the file"}},
)
def export(
    name: str,
    ref: Ref,
    ws: Ws,
    who: Caller,
    format: Annotated[Literal["jsonl", "csv", "parquet", "offsets", "conll", "coco"], Query()] = "jsonl",
) -> Response:
    """The version as one file, byte for byte what ``loopwright datasets export`` writes."""
    loop = project(ws, name, who, Action.READ)
    with tempfile.TemporaryDirectory(prefix="loopwright-export-") as tmp:
        path = loop.export_dataset(ref, format, Path(tmp))
        if path.is_dir():  # coco: <id>-coco/annotations.json
            path = path / "annotations.json"
        blob = path.read_bytes()
    headers = {"Content-Disposition": f'attachment; filename="{path.name}"'}
    return Response(blob, media_type=MEDIA_TYPES[format], headers=headers)

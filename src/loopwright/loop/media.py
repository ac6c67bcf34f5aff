"""Images by reference: checked on ingest, served to the people who review them.

An item of an image project may hold a path or URL (``{"image": "/data/scans/0001.png"}``)
instead of pixels. On ingest each reference is read and decoded before anything is written: a
file outside the project's media roots, missing, corrupt or not an image rejects the batch with
a per-record error. The item keeps the reference (the file is not copied) and, in its metadata,
what was read (``image``: content hash, format, size, mode); a DICOM file's tags are anonymised
(an allow-list of technical tags, free text scrubbed by :mod:`loopwright.privacy`) and only
those are kept. Serving reads the file again, inside the roots, and answers with the original,
a PNG rendering (DICOM: never the file itself, whose tags may identify a patient) or a thumbnail
cached on disk by content hash and size.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from loopwright.config import Modality, ProjectConfig
from loopwright.errors import Invalid, NotFound
from loopwright.learning import image_features
from loopwright.loop.context import Context
from loopwright.privacy import scrub

MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
THUMBNAIL_SIZES = (64, 128, 256, 512, 1024)  # sides a thumbnail may have (bounds the disk cache)
# DICOM elements kept after anonymisation: what describes the picture, never who or when.
DICOM_KEEP = (
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "Laterality",
    "ImageLaterality",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsStored",
    "PixelSpacing",
    "SliceThickness",
    "WindowCenter",
    "WindowWidth",
    "StudyDescription",
    "SeriesDescription",
)
_FREE_TEXT = ("StudyDescription", "SeriesDescription")


def reference(config: ProjectConfig, payload: Mapping[str, Any]) -> str | None:
    """The image reference a payload holds (an image project's input as a string), else None."""
    value = payload.get(config.input_key)
    return value if config.modality is Modality.IMAGE and isinstance(value, str) else None


def check(config: ProjectConfig, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Read, decode and featurise the referenced image; the metadata the item keeps of it
    (``{}`` for a payload without a reference). Raises Invalid saying what is wrong."""
    ref = reference(config, payload)
    if ref is None:
        return {}
    decoded = image_features.load(ref, config.media)
    image_features.features_of(ref, config.media, decoded)  # warms the cache scoring reads next
    found: dict[str, Any] = {"image": decoded.describe()}
    if decoded.format == "DICOM":
        found["dicom"] = anonymise(decoded.tags)
    return found


def anonymise(tags: Mapping[str, Any]) -> dict[str, Any]:
    """The DICOM tags an item may keep: the allow-list :data:`DICOM_KEEP`, free text scrubbed of
    personal data, plus how many elements were dropped (patient, dates, UIDs, people, places)."""
    kept: dict[str, Any] = {}
    for name in DICOM_KEEP:
        if name not in tags:
            continue
        value = _plain(tags[name])
        if name in _FREE_TEXT and isinstance(value, str):
            value = scrub(value).text
        kept[name] = value
    return {"tags": kept, "removed": sum(1 for name in tags if name not in kept)}


def _plain(value: Any) -> Any:
    """A DICOM value as JSON can hold it (numbers, strings, lists)."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    try:
        return float(value) if "." in str(value) else int(str(value))
    except ValueError:
        return str(value)


@dataclass(frozen=True, slots=True)
class Picture:
    """An image ready to send: its bytes, media type and a validator for HTTP caching."""

    data: bytes
    media_type: str
    etag: str
    not_modified: bool = False  # the caller's copy (If-None-Match) is current: send nothing


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "loopwright-thumbnails"


def item_image(
    ctx: Context,
    item_id: int,
    size: int | None = None,
    cache_dir: Path | None = None,
    etag: str | None = None,
) -> Picture:
    """The image of ``item_id`` (original, PNG for DICOM) or its thumbnail of side ``size``;
    ``not_modified`` when ``etag`` (an If-None-Match header) still matches. NotFound for an item
    of another project or one without an image; Invalid when the file is gone, corrupt or
    outside the roots now."""
    if size is not None and size not in THUMBNAIL_SIZES:
        raise Invalid(f"thumbnail size must be one of {list(THUMBNAIL_SIZES)}, not {size}")
    with ctx.store.unit_of_work() as uow:
        item = uow.items.get(item_id)
    if item.project_id != ctx.project.id:
        raise NotFound(f"item {item_id} not found")
    ref = reference(ctx.config, item.payload)
    if ref is None:
        raise NotFound(f"item {item_id} has no image reference")
    data = image_features.read_within(ref, ctx.config.media)
    digest = hashlib.sha256(data).hexdigest()
    tag = f'"{digest[:32]}-{size or "full"}"'
    if etag is not None and tag in {t.strip() for t in etag.split(",")}:
        return Picture(b"", "", tag, not_modified=True)
    if size is None and not image_features.is_dicom(data):
        decoded = image_features.decode(data, ref, ctx.config.media.max_pixels)  # only images are sent
        return Picture(data, MEDIA_TYPES[decoded.format], tag)
    if size is None:
        return Picture(
            _png(image_features.decode(data, ref, ctx.config.media.max_pixels).pixels), "image/png", tag
        )
    return Picture(
        _thumbnail(data, ref, digest, size, ctx, cache_dir or default_cache_dir()), "image/png", tag
    )


def _thumbnail(data: bytes, ref: str, digest: str, size: int, ctx: Context, cache_dir: Path) -> bytes:
    """A PNG no larger than ``size`` on its longer side, cached on disk by content hash and size."""
    path = cache_dir / digest[:2] / f"{digest}-{size}.png"
    try:
        return path.read_bytes()
    except OSError:
        pass
    from PIL import Image

    image = Image.fromarray(image_features.decode(data, ref, ctx.config.media.max_pixels).pixels)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG")
    png = out.getvalue()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(png)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old state or the whole file
    except OSError:
        pass  # a read-only cache only costs the next request a resize
    return png


def _png(pixels: Any) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()

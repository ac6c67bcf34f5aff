"""Images that items reference by path or URL: reading them (inside the project's media roots),
decoding them (Pillow: PNG, JPEG, WebP; DICOM through pydicom) and the feature vector the
built-in model reads (a greyscale thumbnail, or its HOG, optionally with colour histograms).

Local paths and ``file://`` are read here; object stores (``s3://`` …) through fsspec (the
import extra); ``http(s)://`` only through a reader a face installs with :func:`install_reader`
(the server's is SSRF-safe), never by a plain request from the core.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from loopwright.errors import Invalid

if TYPE_CHECKING:
    from loopwright.config import MediaConfig

Reader = Callable[[str, int], bytes]  # (url, max_bytes) → the file's bytes; raises Invalid
FORMATS = ("PNG", "JPEG", "WEBP")
_READERS: dict[str, Reader] = {}  # by URL scheme, installed by the faces (http, https)
_LOCK = threading.Lock()


def install_reader(schemes: Iterable[str], reader: Reader) -> None:
    """Read URLs of ``schemes`` with ``reader`` in this process (the server installs its
    SSRF-safe fetcher for ``http`` and ``https``)."""
    with _LOCK:
        for scheme in schemes:
            _READERS[scheme.lower()] = reader


def remove_reader(schemes: Iterable[str]) -> None:
    with _LOCK:
        for scheme in schemes:
            _READERS.pop(scheme.lower(), None)


def scheme(ref: str) -> str:
    """``""`` for a local path or ``file://``, else the URL scheme in lower case."""
    head, sep, _ = ref.partition("://")
    return "" if not sep or head.lower() == "file" else head.lower()


def local_path(ref: str) -> str:
    """The real absolute path of a local reference (symlinks and ``..`` resolved)."""
    return os.path.realpath(ref[7:] if ref[:7].lower() == "file://" else ref)


def locate(ref: str, roots: Sequence[str]) -> str:
    """Where ``ref`` points: a relative path lies under the first of ``roots`` (a directory or a
    URL prefix, as Label Studio's local files lie under its document root); anything else is
    ``ref`` itself. Relative references keep an item's content hash, and so the dataset versions
    and every seeded draw, the same wherever the images are mounted."""
    if not ref or not roots or "://" in ref or os.path.isabs(ref):
        return ref
    return roots[0].rstrip("/") + "/" + ref


def outside_roots(ref: str, roots: Sequence[str]) -> str | None:
    """Why ``ref`` (absolute, or relative to the first root) may not be read (outside every root,
    or no roots), else None."""
    if not isinstance(ref, str) or not ref or "\x00" in ref:
        return "an image reference must be a non-empty path or URL"
    if not roots:
        return (
            "the project has no media roots: set media.roots to the directories or URL prefixes of its images"
        )
    ref = locate(ref, roots)
    kind = scheme(ref)
    if kind == "" and not os.path.isabs(ref[7:] if ref[:7].lower() == "file://" else ref):
        return f"{ref}: a file:// reference must hold an absolute path"
    for root in roots:
        if kind == "" and scheme(root) == "":
            base = local_path(root)
            if os.path.commonpath([base, local_path(ref)]) == base:
                return None
        elif kind and scheme(root) == kind and _url_within(ref, root):
            return None
    return f"{ref} is outside the project's media roots"


def _url_within(ref: str, root: str) -> bool:
    """``ref`` lies under the URL prefix ``root`` (same host; no ``..`` segments)."""
    _, _, rest = ref.partition("://")
    _, _, base = root.partition("://")
    parts = rest.split("?", 1)[0].split("#", 1)[0].split("/")
    if any(p in ("..", ".") or "%2e" in p.lower() or "\\" in p for p in parts):
        return False
    host, _, path = base.partition("/")
    r_host, _, r_path = rest.partition("/")
    if r_host.lower() != host.lower():
        return False
    return path == "" or r_path == path or r_path.startswith(path.rstrip("/") + "/")


def read(ref: str, max_bytes: int) -> bytes:
    """The bytes behind ``ref``; Invalid saying why not (missing, too large, no reader)."""
    kind = scheme(ref)
    if kind == "":
        path = local_path(ref)
        try:
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise Invalid(f"{ref}: no such image file") from None
        except IsADirectoryError:
            raise Invalid(f"{ref}: is a directory, not an image file") from None
        except OSError as exc:
            raise Invalid(f"{ref}: cannot read: {exc.strerror or exc}") from None
    elif kind in _READERS:
        data = _READERS[kind](ref, max_bytes)
    elif kind in ("http", "https"):
        raise Invalid(
            f"{ref}: image URLs over {kind} are fetched by the loopwright server (which refuses "
            "private addresses); ingest through the server, or keep the images in a directory or bucket"
        )
    else:
        data = _fsspec(ref, max_bytes)
    if len(data) > max_bytes:
        raise Invalid(f"{ref}: larger than media.max_bytes ({max_bytes} bytes)")
    return data


def _fsspec(ref: str, max_bytes: int) -> bytes:
    try:
        import fsspec  # the import extra
    except ImportError:
        raise Invalid(
            f"{ref}: images in object stores need the import extra: pip install 'loopwright[import]'"
        ) from None
    try:
        with fsspec.open(ref, "rb") as f:
            data: bytes = f.read(max_bytes + 1)
            return data
    except FileNotFoundError:
        raise Invalid(f"{ref}: no such image file") from None
    except (OSError, ValueError) as exc:
        raise Invalid(f"{ref}: cannot read: {exc}") from None


@dataclass(frozen=True, slots=True)
class Decoded:
    """An image as pixels: uint8, ``(h, w)`` greyscale or ``(h, w, 3)`` RGB."""

    pixels: NDArray[np.uint8]
    format: str  # PNG, JPEG, WEBP, DICOM
    sha256: str  # of the file's bytes
    tags: dict[str, Any] = field(default_factory=dict)  # DICOM: the data set's elements, as read

    @property
    def mode(self) -> str:
        return "L" if self.pixels.ndim == 2 else "RGB"

    def describe(self) -> dict[str, Any]:
        """What item metadata keeps of it (never the pixels)."""
        h, w = self.pixels.shape[:2]
        return {"sha256": self.sha256, "format": self.format, "mode": self.mode, "width": w, "height": h}


def is_dicom(data: bytes) -> bool:
    return data[128:132] == b"DICM"


def decode(data: bytes, ref: str, max_pixels: int) -> Decoded:
    """Pixels of a PNG, JPEG, WebP or DICOM file; Invalid for anything else or a corrupt file."""
    digest = hashlib.sha256(data).hexdigest()
    if is_dicom(data):
        pixels, tags = _dicom(data, ref, max_pixels)
        return Decoded(pixels, "DICOM", digest, tags)
    from PIL import Image, UnidentifiedImageError  # the import extra

    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            fmt = str(image.format)
            if image.width * image.height > max_pixels:
                raise Invalid(f"{ref}: {image.width}x{image.height} is more than media.max_pixels")
            image.load()
            return Decoded(_to_array(image), fmt, digest)
    except UnidentifiedImageError:
        raise Invalid(f"{ref}: not a PNG, JPEG, WebP or DICOM image") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise Invalid(f"{ref}: corrupt or truncated image ({exc})") from None


def _to_array(image: Any) -> NDArray[np.uint8]:
    """Greyscale stays greyscale (16-bit and float scaled to 0..255); everything else is RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _scaled(np.asarray(image, dtype=np.float64))
    if image.mode in ("1", "L", "LA"):
        return np.asarray(image.convert("L"), dtype=np.uint8)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _scaled(a: NDArray[Any]) -> NDArray[np.uint8]:
    """Min-max to 0..255 (a constant image is black)."""
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if not np.isfinite([lo, hi]).all() or hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.round((a - lo) * 255.0 / (hi - lo)).astype(np.uint8)


def _dicom(data: bytes, ref: str, max_pixels: int) -> tuple[NDArray[np.uint8], dict[str, Any]]:
    try:
        import pydicom  # the dicom extra
    except ImportError:
        raise Invalid(f"{ref}: DICOM images need the dicom extra: pip install 'loopwright[dicom]'") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        rows, cols = int(ds.Rows), int(ds.Columns)
        if rows * cols > max_pixels:
            raise Invalid(f"{ref}: {cols}x{rows} is more than media.max_pixels")
        a = np.asarray(ds.pixel_array)
    except Invalid:
        raise
    except Exception as exc:  # pydicom raises many types for a broken file
        raise Invalid(f"{ref}: corrupt DICOM file or no pixel data ({type(exc).__name__})") from None
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        pixels = _scaled(a[..., :3])
    elif a.ndim == 3:  # several frames: the first
        pixels = _scaled(a[0])
    else:
        pixels = _scaled(a)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        pixels = 255 - pixels  # stored inverted: more signal is darker
    tags = {el.keyword: el.value for el in ds if el.keyword and el.VR not in ("OB", "OW", "OF", "SQ", "UN")}
    return pixels, tags


def thumbnail(pixels: NDArray[np.uint8], size: int) -> NDArray[np.float64]:
    """The image as a ``size x size`` greyscale square in [0, 1] (area-averaged, aspect ignored)."""
    from PIL import Image

    grey = Image.fromarray(pixels).convert("L")
    small = grey.resize(
        (size, size), Image.Resampling.BOX if min(grey.size) >= size else Image.Resampling.BILINEAR
    )
    return np.asarray(small, dtype=np.float64) / 255.0


def vector(pixels: NDArray[np.uint8], media: MediaConfig) -> NDArray[np.float32]:
    """The feature vector of one image for ``media`` (its ``features``, ``size``, ``histogram``)."""
    square = thumbnail(pixels, media.size)
    if media.features == "hog":
        try:
            from skimage.feature import hog  # the images extra
        except ImportError:
            raise Invalid(
                "media.features hog needs the images extra: pip install 'loopwright[images]'"
            ) from None
        cell = max(2, media.size // 4)
        parts = [hog(square, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2))]
    else:
        parts = [square.ravel()]
    if media.histogram:
        rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
        n = rgb.shape[0] * rgb.shape[1]
        parts += [np.histogram(rgb[..., c], bins=16, range=(0, 256))[0] / n for c in range(3)]
    return np.concatenate(parts).astype(np.float32)


class FeatureCache:
    """Feature vectors by (reference, file stamp, feature settings): an LRU shared by the process,
    so a batch read at ingest is not decoded again to score it, nor at every retrain."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._rows: OrderedDict[tuple[Any, ...], NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> NDArray[np.float32] | None:
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
            return row

    def put(self, key: tuple[Any, ...], row: NDArray[np.float32]) -> None:
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


CACHE = FeatureCache()


def _key(ref: str, media: MediaConfig) -> tuple[Any, ...]:
    stamp: tuple[Any, ...] = ()
    where = locate(ref, media.roots)
    if scheme(where) == "":
        try:
            st = os.stat(local_path(where))
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = ("missing",)
    return (where, stamp, media.features, media.size, media.histogram)


def read_within(ref: str, media: MediaConfig) -> bytes:
    """The bytes of ``ref`` (absolute, or relative to the first root) if it lies inside the media
    roots; Invalid saying what is wrong."""
    if problem := outside_roots(ref, media.roots):
        raise Invalid(problem)
    return read(locate(ref, media.roots), media.max_bytes)


def load(ref: str, media: MediaConfig) -> Decoded:
    """Check the roots, read and decode ``ref``; Invalid saying what is wrong."""
    return decode(read_within(ref, media), ref, media.max_pixels)


def features_of(ref: str, media: MediaConfig, decoded: Decoded | None = None) -> NDArray[np.float32]:
    """The (cached) feature vector of the image ``ref``; ``decoded`` saves reading it again."""
    key = _key(ref, media)
    if (row := CACHE.get(key)) is not None:
        return row
    row = vector((decoded or load(ref, media)).pixels, media)
    CACHE.put(key, row)
    return row


def featurize(refs: Sequence[str], media: MediaConfig) -> NDArray[np.float64]:
    """One feature row per referenced image (the built-in model's input)."""
    if not refs:
        return np.zeros((0, 0))
    return np.asarray([features_of(ref, media) for ref in refs], dtype=np.float64)

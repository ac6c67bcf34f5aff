"""Opening a path or URL: local files directly, ``s3://`` and other schemes through fsspec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

from loopwright.errors import Invalid


def is_remote(url: str) -> bool:
    """True for ``scheme://…`` addresses other than ``file://``."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() != "file"


def open_binary(url: str, storage_options: Mapping[str, Any] | None = None) -> BinaryIO:
    """A binary file object for ``url``; Invalid naming it when it cannot be opened."""
    try:
        if not is_remote(url):
            path = url.removeprefix("file://")
            return open(path, "rb")
        import fsspec  # the import extra; only remote sources need it

        f: BinaryIO = fsspec.open(url, "rb", **dict(storage_options or {})).open()
        return f
    except ImportError:
        raise Invalid(
            f"{url}: reading from object stores needs the import extra: pip install 'loopwright[import]'"
        ) from None
    except FileNotFoundError:
        raise Invalid(f"{url}: no such file") from None
    except (OSError, ValueError) as exc:
        raise Invalid(f"{url}: cannot open: {exc}") from None

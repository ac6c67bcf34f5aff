"""Fetching images that items reference over http(s), as safely as webhooks are sent.

The URL is a project's data, so the server treats it like a webhook target: every connection
goes through :class:`~loopwright.service.pinned.PinnedBackend` (each address the host resolves
to is judged by the :class:`~loopwright.service.egress.EgressPolicy`, and the socket connects
to that very address), redirects are not followed, the whole request has one deadline and the
body is cut off past ``media.max_bytes``. ``create_app`` installs it for ``http`` and ``https``.
"""

from __future__ import annotations

import time

import httpcore

from loopwright.errors import Invalid
from loopwright.learning.image_features import Reader
from loopwright.service.egress import EgressPolicy, Refused
from loopwright.service.egress import resolve as system_resolve
from loopwright.service.pinned import PinnedBackend, Resolver, SendFailed


def http_reader(policy: EgressPolicy, timeout: float = 10.0, resolver: Resolver = system_resolve) -> Reader:
    """A reader of ``http(s)://`` images for :func:`loopwright.learning.image_features.install_reader`."""

    def read(url: str, max_bytes: int) -> bytes:
        deadline = time.monotonic() + timeout
        backend = PinnedBackend(policy, deadline, resolver)
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        try:
            with (
                httpcore.ConnectionPool(network_backend=backend, max_keepalive_connections=0) as pool,
                pool.stream("GET", url, extensions={"timeout": limits}) as response,
            ):
                if response.status != 200:
                    raise Invalid(f"{url}: the image server answered HTTP {response.status}")
                body = bytearray()
                for chunk in response.iter_stream():
                    body += chunk
                    if len(body) > max_bytes:
                        raise Invalid(f"{url}: larger than media.max_bytes ({max_bytes} bytes)")
                return bytes(body)
        except Refused as exc:
            raise Invalid(f"{url}: refused, {exc}") from None
        except SendFailed as exc:
            raise Invalid(f"{url}: {exc}") from None
        except httpcore.TimeoutException:
            raise Invalid(f"{url}: timeout") from None
        except httpcore.UnsupportedProtocol:
            raise Invalid(f"{url}: not an http:// or https:// URL") from None
        except (httpcore.ProtocolError, httpcore.NetworkError):
            raise Invalid(f"{url}: network error") from None

    return read

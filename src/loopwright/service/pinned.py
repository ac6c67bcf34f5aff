"""Outgoing HTTP connections pinned to checked addresses, with one deadline for the whole attempt.

httpx (and httpcore under it) resolve a host name when they connect, so a check made before the
request could be undone by DNS answering differently a moment later ("DNS rebinding"). Here
the connection itself is opened by :class:`PinnedBackend`, an httpcore network backend: it
resolves the host once, has the :class:`~loopwright.service.egress.EgressPolicy` judge every
address, and connects the socket to a checked address; nothing resolves the name again. The
URL, the ``Host`` header, TLS SNI and certificate checking all still use the host name, as
only the TCP connect is redirected, so HTTPS verifies exactly as usual.

Every blocking socket call (connect, TLS handshake, each send and receive) waits at most until
the attempt's ``deadline`` (a ``time.monotonic()`` value), so a receiver dripping one byte a
second is cut off on time, not only one that goes silent. Name resolution is the one step the
deadline cannot interrupt (``getaddrinfo`` blocks); the resolver's own timeouts bound it.

Failures are raised as :class:`SendFailed` with a short reason of our own wording (never bytes
the receiver sent), or :class:`~loopwright.service.egress.Refused`.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore

from loopwright.service.egress import EgressPolicy, resolve

Resolver = Callable[[str, int], list[str]]


class SendFailed(Exception):
    """An attempt that got no HTTP answer; the message is a short reason ("connection refused")."""


class DeadlineExceeded(SendFailed):
    """The attempt ran out of time."""


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("timeout")
    return left


def _reason(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "connection reset by the receiver"
    return (exc.strerror or type(exc).__name__).lower()


class PinnedStream(httpcore.NetworkStream):
    """A socket whose every read, write and handshake ends by ``deadline``."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(_left(self._deadline))
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise DeadlineExceeded("timeout") from exc
        except OSError as exc:
            raise SendFailed(_reason(exc)) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        try:
            while view:
                self._sock.settimeout(_left(self._deadline))
                view = view[self._sock.send(view) :]
        except TimeoutError as exc:
            raise DeadlineExceeded("timeout") from exc
        except OSError as exc:
            raise SendFailed(_reason(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> PinnedStream:
        try:
            self._sock.settimeout(_left(self._deadline))
            wrapped = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._sock.close()
            raise DeadlineExceeded("timeout") from exc
        except ssl.SSLCertVerificationError as exc:
            self._sock.close()
            raise SendFailed(f"TLS certificate not accepted ({exc.verify_message})") from exc
        except ssl.SSLError as exc:
            self._sock.close()
            raise SendFailed(f"TLS handshake failed ({exc.reason or 'unknown reason'})") from exc
        except OSError as exc:
            self._sock.close()
            raise SendFailed(_reason(exc)) from exc
        return PinnedStream(wrapped, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "socket":
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "is_readable":  # readable while idle: closed by the other end
            return bool(select.select([self._sock], [], [], 0)[0])
        return None


class PinnedBackend(httpcore.NetworkBackend):
    """Opens connections only to addresses the policy allows, resolving each host once."""

    def __init__(self, policy: EgressPolicy, deadline: float, resolver: Resolver = resolve) -> None:
        self.policy = policy
        self.deadline = deadline
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> PinnedStream:
        try:
            found = self.resolver(host, port)
        except OSError as exc:
            raise SendFailed(f"cannot resolve {host}") from exc
        addresses = self.policy.check_addresses(host, found)  # Refused, or every one allowed
        failure: SendFailed = SendFailed(f"cannot connect to {host}")
        for address in addresses:
            family = socket.AF_INET if address.version == 4 else socket.AF_INET6
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(_left(self.deadline))
                sock.connect((str(address), port))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return PinnedStream(sock, self.deadline)
            except TimeoutError:
                sock.close()
                failure = DeadlineExceeded("timeout")
            except DeadlineExceeded as exc:
                sock.close()
                failure = exc
                break
            except OSError as exc:
                sock.close()
                failure = SendFailed(_reason(exc))
        raise failure

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    policy: EgressPolicy,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    resolver: Resolver = resolve,
) -> int:
    """POST ``body`` to ``url`` and return the status code, without reading the answer's body.

    Raises :class:`SendFailed` (:class:`DeadlineExceeded` after ``timeout`` seconds in all) or
    :class:`~loopwright.service.egress.Refused`. Redirects are not followed (a 3xx is an answer).
    A user and password in the URL are sent as HTTP Basic authentication.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers = {**headers, "authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    backend = PinnedBackend(policy, deadline, resolver)
    limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    with httpcore.ConnectionPool(
        ssl_context=ssl_context, network_backend=backend, max_keepalive_connections=0
    ) as pool:
        try:
            with pool.stream(
                "POST", url, headers=list(headers.items()), content=body, extensions={"timeout": limits}
            ) as response:
                return int(response.status)
        except httpcore.TimeoutException as exc:
            raise DeadlineExceeded("timeout") from exc
        except httpcore.UnsupportedProtocol as exc:
            raise SendFailed("not an http:// or https:// URL") from exc
        except httpcore.ProtocolError as exc:  # may quote the receiver's bytes: never shown
            raise SendFailed("invalid HTTP response") from exc
        except httpcore.NetworkError as exc:
            raise SendFailed("network error") from exc

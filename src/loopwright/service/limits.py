"""Limits at the ASGI edge: ``BodyLimit`` caps request bodies as they stream in; ``NoNul``
refuses NUL characters, which PostgreSQL cannot store, before any handler sees them.

A declared ``Content-Length`` above the cap is refused before any byte is read; a body without
one (chunked) or that lies about it is counted message by message and refused the moment it
passes the cap, so the server never holds more than ``max_bytes`` of one request. The answer
is 413 with the house error body ``{"code": "too_large", "message": ...}``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopwright.errors import Invalid

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
CODE = "too_large"


class TooLarge(HTTPException):
    """The request body passed the cap (HTTP 413)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {max_bytes} bytes")


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, self.max_bytes)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge(self.max_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except TooLarge:  # raised where the app did not turn it into a response itself
            if started:
                raise
            await _refuse(send, self.max_bytes)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects it; counting still applies
    return None


async def _refuse(send: Send, max_bytes: int) -> None:
    await _answer(send, 413, {"code": CODE, "message": TooLarge(max_bytes).detail})


async def _answer(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class NoNul:
    """Refuse NUL characters (U+0000) in the path, the query or a JSON body with 422 naming
    where they are: PostgreSQL text and JSON cannot hold them, and no field has a use for them.

    The body is read whole (as the app would) and handed on unchanged; it is parsed here only
    when its bytes hold a NUL or a ``\\u0000`` escape.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        errors = _in_url(scope)
        messages: list[Message] = []
        if not errors:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            if b"\\u0000" in body or b"\x00" in body:
                errors = _in_json(body)
        if errors:
            found = [{"field": f, "message": NUL_MESSAGE} for f in errors]
            await _answer(
                send, 422, {"code": Invalid.code, "message": "the request failed validation", "errors": found}
            )
            return
        replay = iter(messages)

        async def replaying_receive() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replaying_receive, send)


NUL_MESSAGE = "must not contain NUL characters (U+0000)"


def _in_url(scope: Scope) -> list[str]:
    errors = ["path"] if "\x00" in scope.get("path", "") else []
    query = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        errors += [f"query.{k.replace(chr(0), '')}" for k, v in pairs if "\x00" in k + v]
    return errors


def _in_json(body: bytes) -> list[str]:
    """Where the JSON ``body`` holds NUL in a string or key ([] if it is not JSON: the app says)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return []
    found: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, str) and "\x00" in node:
            found.append(where)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{where}.{key.replace(chr(0), '')}")
                if "\x00" in key:
                    found.append(f"{where}.{key.replace(chr(0), '')}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}.{i}")

    walk(doc, "body")
    return found

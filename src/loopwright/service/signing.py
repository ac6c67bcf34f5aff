"""Standard Webhooks signing (https://www.standardwebhooks.com): what a request carries, and
how a receiver checks it. See :mod:`loopwright.service.webhooks` for the headers and body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from loopwright.domain import Event

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
TOLERANCE_S = 300


class WebhookVerificationError(Exception):
    """A webhook request whose headers are missing, stale or whose signature does not match."""


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from exc


def _text(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``"<msg_id>.<timestamp>.<body>"`` with the secret's key."""
    signed = f"{msg_id}.{timestamp}.".encode() + _text(body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance: float = TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """Check a webhook request as a receiver; returns the parsed JSON body.

    Raises :class:`WebhookVerificationError` when a header is missing, the timestamp is more
    than ``tolerance`` seconds from ``now`` (default: the time now), or no ``v1`` signature
    matches. Compares in constant time; accepts several space-separated signatures.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lower.get("webhook-id"),
        lower.get("webhook-timestamp"),
        lower.get("webhook-signature"),
    )
    if not (msg_id and stamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError(f"webhook-timestamp {stamp!r} is not unix seconds") from exc
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError(f"webhook-timestamp is more than {tolerance:g} s away from now")
    expected = sign(secret, msg_id, timestamp, body).encode("ascii")
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode("ascii"), expected):
            return json.loads(_text(body))
    raise WebhookVerificationError("no matching signature")


def message_id(event_id: int) -> str:
    """The ``webhook-id`` of an event: the same on every attempt, the receiver's idempotency key."""
    return f"evt_{event_id}"


def event_body(event: Event, project: str) -> bytes:
    """The JSON body sent for ``event`` (the same bytes on every attempt)."""
    data = {
        "event_id": event.id,
        "project": project,
        "actor": event.actor,
        "action": event.action,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "payload": event.data,
    }
    doc = {"type": event.action, "timestamp": event.at.isoformat(), "data": data}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str).encode("utf-8")

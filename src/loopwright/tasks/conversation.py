"""A conversation item's payload: ``{"turns": [{"role", "content"}, ...], "answer": "..."}``, or
``"answer_a"`` and ``"answer_b"`` for a pairwise preference. Checked before anything is written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loopwright.errors import Invalid

ROLES = ("system", "user", "assistant", "tool")
MAX_TURNS = 500


def check_conversation(payload: Any, pairwise: bool = False) -> None:
    """Raise :class:`~loopwright.errors.Invalid` naming the first bad field of a conversation."""
    if not isinstance(payload, Mapping):
        raise Invalid("a conversation must be an object with turns and the model's answer")
    turns = payload.get("turns")
    if not isinstance(turns, list) or not turns:
        raise Invalid("turns: a conversation needs at least one turn [{role, content}]")
    if len(turns) > MAX_TURNS:
        raise Invalid(f"turns: {len(turns)} turns; at most {MAX_TURNS}")
    for i, turn in enumerate(turns):
        if not isinstance(turn, Mapping) or turn.get("role") not in ROLES:
            raise Invalid(f"turns[{i}].role: must be one of {list(ROLES)}")
        if not isinstance(turn.get("content"), str):
            raise Invalid(f"turns[{i}].content: must be text")
    for field in ("answer_a", "answer_b") if pairwise else ("answer",):
        if not isinstance(payload.get(field), str) or not payload[field].strip():
            raise Invalid(f"{field}: the model's answer must be non-empty text")


def prompt_messages(payload: Mapping[str, Any]) -> list[dict[str, str]]:
    """The turns as chat messages (role, content), the form preference-tuning tools read."""
    return [{"role": t["role"], "content": t["content"]} for t in payload["turns"]]

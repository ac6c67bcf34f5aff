"""Spans: an answer is a list of labelled character ranges, stored as canonical JSON text.

Tokens, tags and consensus live in :mod:`loopwright.consensus.spans`; this module holds the stored
form, its check and vote (on character offsets: the text is not needed) and the exports (JSONL
with offsets, BIO in CoNLL columns). Bounds against the text are checked where the item is known.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from loopwright.consensus.spans import vote_by_offsets
from loopwright.errors import Invalid
from loopwright.shapes import Span, bio_tags, parse_spans, tokens
from loopwright.tasks.base import Vote, json_list


def canonical(spans: Sequence[Span]) -> str:
    """Stored text: spans sorted by start, end and label."""
    return json.dumps(
        [{"start": s.start, "end": s.end, "label": s.label} for s in sorted(spans)], separators=(",", ":")
    )


def decode(answer: str) -> list[Span]:
    return [Span(r["start"], r["end"], r["label"]) for r in json.loads(answer)]


def to_jsonl_row(item_id: str, text: str, spans: Sequence[Span]) -> str:
    """One line of the offsets export: ``{"id", "text", "spans": [{start, end, label, text}]}``."""
    rows = [
        {"start": s.start, "end": s.end, "label": s.label, "text": text[s.start : s.end]}
        for s in sorted(spans)
    ]
    return json.dumps({"id": item_id, "text": text, "spans": rows}, ensure_ascii=False)


def to_conll(text: str, spans: Sequence[Span]) -> str:
    """One document in CoNLL columns (``token TAB bio-tag``), a blank line after it."""
    words = [text[s:e] for s, e in tokens(text)]
    return "".join(f"{w}\t{t}\n" for w, t in zip(words, bio_tags(text, spans), strict=True)) + "\n"


class Spans:
    """Labelled character spans of a text item (none is a valid answer: nothing to mark)."""

    name = "spans"

    def parse(self, value: Any, labels: Sequence[str]) -> str:
        return canonical(parse_spans(json_list(value, "spans"), labels, where="label"))

    def vote(self, answers: Sequence[str], labels: Sequence[str]) -> Vote:
        if not answers:
            raise Invalid("a vote needs at least one answer")
        spans, agreement, tie = vote_by_offsets([decode(a) for a in answers])
        return Vote(canonical(spans), agreement, tie)

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        return {"spans": json.loads(answer)}

"""Spans: an answer is a list of labelled character ranges, stored as canonical JSON text.

Tokens, tags and consensus live in :mod:`loopwright.consensus.spans`; this module holds the stored
form, its check and vote (on character offsets: the text is not needed) and the exports (JSONL
with offsets, BIO in CoNLL columns). Bounds against the text are checked where the item is known.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from loopwright.consensus.spans import entity_counts, entity_f1, vote_by_offsets
from loopwright.errors import Invalid
from loopwright.learning.bootstrap import ShapeGateResult, shape_gate
from loopwright.shapes import Span, bio_tags, parse_spans, tokens
from loopwright.tasks.base import Vote, json_list

PROPOSALS = "proposals"  # payload key of the model's proposed spans: [{start, end, label, score}]


def canonical(spans: Sequence[Span]) -> str:
    """Stored text: spans sorted by start, end and label."""
    return json.dumps(
        [{"start": s.start, "end": s.end, "label": s.label} for s in sorted(spans)], separators=(",", ":")
    )


def decode(answer: str) -> list[Span]:
    return [Span(r["start"], r["end"], r["label"]) for r in json.loads(answer)]


def item_text(payload: Mapping[str, Any], field: str) -> str:
    """The text of a span item (its ``field``); Invalid when the item has none."""
    text = payload.get(field)
    if not isinstance(text, str):
        raise Invalid(f"label: the item has no text in payload field {field!r} to mark spans in")
    return text


def check_item(answer: str, payload: Mapping[str, Any], field: str, labels: Sequence[str]) -> None:
    """Invalid naming the span when the answer's spans leave the item's text or cross each other."""
    parse_spans(json.loads(answer), labels, text=item_text(payload, field), where="label")


def proposals(payload: Mapping[str, Any], field: str, labels: Sequence[str]) -> list[Span]:
    """The model's proposed spans an item carries (checked against its text), scores kept."""
    raw = payload.get(PROPOSALS)
    if raw is None:
        return []
    return parse_spans(raw, labels, text=item_text(payload, field), where=PROPOSALS)


def correct(predicted: Sequence[Span], truth: Sequence[Span]) -> bool:
    """The routing error rule: an accepted answer is right only when its entities are exactly the
    truth's (same start, end and label for every span: entity F1 of 1 on the item)."""
    tp, n_pred, n_true = entity_counts(predicted, truth)
    return tp == n_pred == n_true


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


def export_text(rows: Sequence[Mapping[str, Any]], field: str, fmt: str) -> bytes:
    """A dataset version's rows as ``offsets`` (JSONL with offsets) or ``conll`` (BIO columns,
    each document after a ``# id = <external id>`` line)."""
    out = []
    for row in rows:
        text, found = item_text(row["payload"], field), decode(row["label"])
        if fmt == "offsets":
            out.append(to_jsonl_row(row["external_id"], text, found) + "\n")
        else:
            out.append(f"# id = {row['external_id']}\n" + to_conll(text, found))
    return "".join(out).encode("utf-8")


def gate(
    truth: Sequence[Sequence[Span]],
    challenger: Sequence[Sequence[Span]],
    champion: Sequence[Sequence[Span]] | None,
    **options: Any,
) -> ShapeGateResult:
    """Entity-level micro F1 (exact start, end and label) over documents, paired bootstrap."""
    return shape_gate("entity_f1", entity_f1, truth, challenger, champion, **options)


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

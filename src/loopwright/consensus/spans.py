"""Text spans from several annotators: token-level consensus, span F1 and token agreement.

A span is a half-open character range ``[start, end)`` with a label. Consensus works on tokens
(words and single punctuation marks): each annotator's spans become BIO tags per token, the tags are
consolidated token by token (Dawid-Skene over the annotators' tag answers, or a skill-weighted vote
for one document), and runs of ``B-x I-x …`` become the consensus spans, snapped to token
boundaries. Agreement is span-level F1 between annotator pairs (exact start, end and label) and
Krippendorff's alpha over the tokens' tags (nominal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations, pairwise
from typing import Any

import numpy as np

from loopwright.shapes import Span, bio_tags, spans_from_tags, tokens


def consensus(
    text: str, by_annotator: Mapping[str, Sequence[Span]], skills: Mapping[str, float] | None = None
) -> list[Span]:
    """One document's consensus spans: the skill-weighted tag vote per token, then spans.

    Ties go to ``O`` (no span), then to the first tag by name, so a span needs more weight for it
    than against it."""
    tags = {a: bio_tags(text, spans) for a, spans in by_annotator.items()}
    n = len(tokens(text))
    out = []
    for i in range(n):
        votes: dict[str, float] = {}
        for a, t in tags.items():
            votes[t[i]] = votes.get(t[i], 0.0) + float((skills or {}).get(a, 1.0))
        out.append(min(votes, key=lambda tag: (-votes[tag], tag != "O", tag)))
    return spans_from_tags(text, out)


def vote_by_offsets(
    answers: Sequence[Sequence[Span]], weights: Sequence[float] | None = None
) -> tuple[list[Span], float, bool]:
    """Consensus spans without the text: the same tag vote as :func:`consensus`, on the segments
    between every answer's boundaries instead of tokens (equal to it when spans follow tokens).

    Returns (spans, agreement, tie): agreement is the length-weighted mean share behind each
    segment's winning tag over segments inside anyone's span (1.0 when nobody marked one); tie
    says some segment's top two tags had equal weight."""
    w = [1.0] * len(answers) if weights is None else [float(x) for x in weights]
    bounds = sorted({b for spans in answers for s in spans for b in (s.start, s.end)})
    tags: list[tuple[int, int, str]] = []
    shares, lengths, tie = [], [], False
    for lo, hi in pairwise(bounds):
        votes: dict[str, float] = {}
        for spans, weight in zip(answers, w, strict=True):
            tag = next(
                (("B-" if s.start == lo else "I-") + s.label for s in spans if s.start <= lo and hi <= s.end),
                "O",
            )
            votes[tag] = votes.get(tag, 0.0) + weight
        ranked = sorted(votes.values(), reverse=True)
        tie = tie or (len(ranked) > 1 and ranked[0] == ranked[1])
        best = min(votes, key=lambda tag: (-votes[tag], tag != "O", tag))
        if set(votes) != {"O"}:
            shares.append(votes[best] / sum(w))
            lengths.append(hi - lo)
        tags.append((lo, hi, best))
    merged: list[Span] = []
    for lo, hi, tag in tags:
        kind, _, label = tag.partition("-")
        if kind == "I" and merged and merged[-1].label == label and merged[-1].end == lo:
            merged[-1] = Span(merged[-1].start, hi, label)
        elif kind in ("B", "I"):
            merged.append(Span(lo, hi, label))
    agreement = float(np.average(shares, weights=lengths)) if shares else 1.0
    return merged, agreement, tie


def token_answers(
    docs: Mapping[str, tuple[str, Mapping[str, Sequence[Span]]]],
) -> tuple[list[str], list[str], list[str]]:
    """(items, workers, labels) rows for Dawid-Skene: one item per (document, token)."""
    items, workers, labels = [], [], []
    for doc_id, (text, by_annotator) in docs.items():
        for annotator, spans in by_annotator.items():
            for i, tag in enumerate(bio_tags(text, spans)):
                items.append(f"{doc_id}#{i}")
                workers.append(annotator)
                labels.append(tag)
    return items, workers, labels


def entity_counts(predicted: Sequence[Span], truth: Sequence[Span]) -> tuple[int, int, int]:
    """(true positives, predicted, true) with exact start, end and label."""
    p = {(s.start, s.end, s.label) for s in predicted}
    t = {(s.start, s.end, s.label) for s in truth}
    return len(p & t), len(p), len(t)


def entity_f1(predicted: Sequence[Sequence[Span]], truth: Sequence[Sequence[Span]]) -> float:
    """Micro entity-level F1 over documents (1.0 when neither side has a span)."""
    tp = n_pred = n_true = 0
    for p, t in zip(predicted, truth, strict=True):
        a, b, c = entity_counts(p, t)
        tp, n_pred, n_true = tp + a, n_pred + b, n_true + c
    return 1.0 if n_pred + n_true == 0 else 2 * tp / (n_pred + n_true)


def agreement_report(docs: Mapping[str, tuple[str, Mapping[str, Sequence[Span]]]]) -> dict[str, Any]:
    """Span F1 per annotator pair over the documents both annotated, and Krippendorff's alpha over
    tokens (nominal, on the BIO tags; a token one annotator did not see is missing)."""
    pairs: dict[tuple[str, str], list[int]] = {}
    annotators = sorted({a for _, by in docs.values() for a in by})
    columns: list[list[float]] = []
    codes: dict[str, int] = {}
    for text, by in docs.values():
        for x, y in combinations(sorted(by), 2):
            tp, n_x, n_y = entity_counts(by[x], by[y])
            c = pairs.setdefault((x, y), [0, 0, 0])
            c[0], c[1], c[2] = c[0] + tp, c[1] + n_x + n_y, c[2] + 1
        tags = {a: bio_tags(text, by[a]) for a in by}
        for i in range(len(tokens(text))):
            columns.append(
                [float(codes.setdefault(tags[a][i], len(codes))) if a in tags else np.nan for a in annotators]
            )
    alpha = None
    data = np.array(columns).T if columns else np.empty((0, 0))
    if data.size and len(codes) > 1 and np.sum(np.sum(~np.isnan(data), axis=0) >= 2) > 0:
        import krippendorff  # on use: keeps start-up light

        alpha = round(float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")), 4)
    return {
        "pairs": [
            {"annotators": [x, y], "documents": c[2], "span_f1": round(2 * c[0] / c[1], 4) if c[1] else None}
            for (x, y), c in sorted(pairs.items())
        ],
        "token_alpha": alpha,
    }

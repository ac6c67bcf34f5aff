"""A linear token tagger for spans: hashed word-shape features, logistic regression over BIO tags.

Small and quick to train on CPU (no CRF): each token's tag is predicted from the token, its shape,
affixes and its neighbours; a span's confidence is the lowest tag probability among its tokens,
which is what routing reads (one doubtful token makes the whole span doubtful).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopwright.errors import Invalid
from loopwright.shapes import Span, bio_tags, spans_from_tags, tokens


def _shape(word: str) -> str:
    return re.sub(r"(.)\1+", r"\1\1", re.sub(r"[A-Z]", "X", re.sub(r"[a-z]", "x", re.sub(r"\d", "d", word))))


def token_features(text: str) -> list[list[str]]:
    """String features per token: the word, its shape and affixes, and its neighbours'."""
    words = [text[s:e] for s, e in tokens(text)]
    out = []
    for i, w in enumerate(words):
        prev = words[i - 1] if i else "<s>"
        nxt = words[i + 1] if i + 1 < len(words) else "</s>"
        out.append(
            [
                f"w={w.lower()}",
                f"shape={_shape(w)}",
                f"pre={w[:3].lower()}",
                f"suf={w[-3:].lower()}",
                f"prev={prev.lower()}",
                f"next={nxt.lower()}",
                f"prevshape={_shape(prev)}",
                f"nextshape={_shape(nxt)}",
                f"pair={prev.lower()}|{w.lower()}",
            ]
        )
    return out


class SpanTagger:
    """``fit(texts, spans)`` then ``predict(texts)`` → spans with a confidence each."""

    def __init__(self, C: float = 4.0, n_features: int = 2**15, random_state: int = 0) -> None:
        self.C = C
        self.n_features = n_features
        self.random_state = random_state

    def _hash(self, texts: Sequence[str]) -> Any:
        from sklearn.feature_extraction import FeatureHasher

        rows = [f for t in texts for f in token_features(t)]
        return FeatureHasher(self.n_features, input_type="string").transform(rows)

    def fit(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> SpanTagger:
        from sklearn.linear_model import LogisticRegression

        tags = [tag for t, s in zip(texts, spans, strict=True) for tag in bio_tags(t, s)]
        if len(set(tags)) < 2:
            raise Invalid("the tagger needs at least one span and one token outside a span to learn from")
        self.model_ = LogisticRegression(C=self.C, max_iter=1000, random_state=self.random_state)
        self.model_.fit(self._hash(texts), tags)
        self.classes_ = np.asarray(self.model_.classes_)
        return self

    def predict(self, texts: Sequence[str]) -> list[list[Span]]:
        return [spans for spans, _ in self.predict_scored(texts)]

    def predict_scored(self, texts: Sequence[str]) -> list[tuple[list[Span], float]]:
        """Spans per text and the text's confidence: its least confident token decision (the
        highest tag probability of its most doubtful token, inside a span or not; 1.0 for a text
        without tokens). It is at most the lowest proposed span's score, and it is low when a token
        left outside nearly became a span: the routing confidence of a span item."""
        proba = self.model_.predict_proba(self._hash(texts)) if texts else np.empty((0, 0))
        out, row = [], 0
        for text in texts:
            n = len(tokens(text))
            p = proba[row : row + n]
            row += n
            tags = [str(self.classes_[k]) for k in p.argmax(axis=1)] if n else []
            conf = p.max(axis=1) if n else np.empty(0)
            found = [_scored(text, s, conf) for s in spans_from_tags(text, tags)]
            out.append((found, round(float(conf.min()), 6) if n else 1.0))
        return out


def _scored(text: str, span: Span, conf: np.ndarray) -> Span:
    inside = [i for i, (s, e) in enumerate(tokens(text)) if s < span.end and e > span.start]
    return Span(span.start, span.end, span.label, round(float(conf[inside].min()), 6))

"""Scenario ``spans``: personal data marked as character spans in real text messages.

Data: the SMS Spam Collection (Almeida & Hidalgo 2011; ``text/sms_spam.csv`` in the shared data
sets, ``--data``) — real messages, kept only when the privacy scrubber finds nothing in them and
they hold no run of 5 or more digits, so no real number is left unmarked. Into each kept message
a seeded generator inserts 0-2 phrases between two words, drawn from reserved sample values
only (as ``bench/pii.py``): ``EMAIL`` addresses at example.com/org/net, ``PHONE`` numbers in the
US 555-01xx and UK Ofcom drama ranges, ``CARD`` numbers from the card networks' test numbers.
The inserted values' offsets are the truth, stated plainly: this is a documented derivation.

The loop: messages stream in rounds. A linear token tagger (:class:`SpanTagger`) trained on the
resolved spans proposes spans with scores; they travel with the item (payload ``proposals``).
An item's confidence is its least confident token decision, and it auto-accepts only above a
threshold certified on a uniform audit sample (error ≤ ε with probability ≥ 1 - δ) where an
accepted item is wrong unless its spans equal the truth exactly (entity F1 of 1 on the item). The
audit sample is reviewed by people, never trained on, and rescored by each new champion, so the
certificate is always the current model's.
Everything else is reviewed by simulated people through the review API (two answers per item,
the span vote of ``task: spans``; a split escalates to an expert). The resolved spans train the
next challenger, which the entity-F1 gate (paired bootstrap over documents on a frozen eval
share of the human labels) promotes or rejects.
"""

from __future__ import annotations

import csv
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from loopwright.api import connect
from loopwright.config import ProjectConfig
from loopwright.consensus.spans import agreement_report, entity_f1
from loopwright.learning.tagger import SpanTagger
from loopwright.loop.review import Assignment
from loopwright.privacy import find
from loopwright.scenarios import (
    Answer,
    all_annotations,
    fresh_db,
    shared_file,
    write,
)
from loopwright.scenarios.structured import Spec, run_rounds
from loopwright.shapes import Span, tokens
from loopwright.tasks.spans import PROPOSALS, canonical, correct, decode
from loopwright.tasks.spans import gate as span_gate

LABELS = ["CARD", "EMAIL", "PHONE"]
ROUND_SIZE = 100
QUICK_ROUNDS, FULL_ROUNDS = 5, 15
HELD_OUT = 300
AUDIT_RATE = 0.25
EPSILON, DELTA = 0.05, 0.1
MIN_TRAIN = 30

FIRST = ["jane", "john", "maria", "li", "ahmed", "sofia", "lukas", "emma", "noah", "chloe"]
LAST = ["doe", "smith", "garcia", "wang", "khan", "rossi", "muller", "martin", "dubois", "novak"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com"]
CARDS = ["4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881", "3782 822463 10005"]
TEMPLATES = [  # a phrase with {KIND} slots, inserted between two words
    "call me on {PHONE}",
    "my number is {PHONE}",
    "ring {PHONE} later",
    "email {EMAIL}",
    "send it to {EMAIL} pls",
    "reach me at {EMAIL} or {PHONE}",
    "card {CARD} expires soon",
    "pay with {CARD}",
]


def _value(kind: str, rng: random.Random) -> str:
    if kind == "EMAIL":
        f, last = rng.choice(FIRST), rng.choice(LAST)
        local = rng.choice([f"{f}.{last}", f"{f}{rng.randint(1970, 2005)}", f"{f[0]}_{last}"])
        return f"{local}@{rng.choice(DOMAINS)}"
    if kind == "PHONE":
        line = f"01{rng.randint(0, 99):02d}"
        return rng.choice(
            [f"(555) 555-{line}", f"555-{line}", f"020 7946 0{rng.randint(0, 999):03d}",
             f"07700 900{rng.randint(0, 999):03d}"]
        )  # fmt: skip
    return rng.choice(CARDS)


def insert_pii(text: str, rng: random.Random) -> tuple[str, list[Span]]:
    """The message with 0-2 generated phrases inserted between words, and their values' spans."""
    spans: list[tuple[int, int, str]] = []
    for _ in range(rng.choice([0, 1, 1, 2])):
        gaps = [m.start() for m in re.finditer(" ", text) if not any(s < m.start() < e for s, e, _ in spans)]
        at = rng.choice([*gaps, len(text)])
        phrase, found = "", []
        for piece in re.split(r"(\{[A-Z]+\})", rng.choice(TEMPLATES)):
            if piece.startswith("{"):
                value = _value(piece[1:-1], rng)
                found.append((at + 1 + len(phrase), at + 1 + len(phrase) + len(value), piece[1:-1]))
                phrase += value
            else:
                phrase += piece
        text = f"{text[:at]} {phrase}{text[at:]}"
        shift = len(phrase) + 1
        spans = [(s + shift, e + shift, k) if s >= at else (s, e, k) for s, e, k in spans] + found
    return text, sorted(Span(s, e, k) for s, e, k in spans)


def messages(data_dir: Path | None) -> list[str]:
    """The shared SMS messages with nothing the scrubber would find and no run of 5+ digits."""
    path = shared_file(data_dir, "text/sms_spam.csv", "spans")
    with path.open(encoding="utf-8", newline="") as f:
        texts = [r["text"].strip() for r in csv.DictReader(f)]
    return [t for t in texts if t and not re.search(r"\d{5}", t) and not find(t) and len(t) <= 400]


def config() -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "name": "pii-spans",
            "labels": LABELS,
            "task": "spans",
            "modality": "text",
            "input_field": "text",
            "model": {"kind": "external"},  # the tagger runs here: see the module docstring
            "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
            "tiers": [
                {"tier": 1, "name": "bulk", "required_annotations": 2},
                {"tier": 2, "name": "expert", "required_annotations": 1},
            ],
            "consensus": {"method": "majority", "min_agreement": 0.5},
            "drift": {"check_on_ingest": False},
            "guidelines": "Mark every e-mail address (EMAIL), phone number (PHONE) and payment card "
            "number (CARD), exactly from its first to its last character. The model's proposals are "
            "pre-filled: accept, adjust, delete or add.",
        }
    )


class SpanReviewer:
    """A simulated person: each true span is missed, cut short by a token or mislabelled with
    probability ``(1 - accuracy) / 3`` each; otherwise marked exactly."""

    def __init__(
        self, name: str, tiers: tuple[int, ...], accuracy: float, truth: dict[str, list[Span]], seed: int
    ):
        self.name, self.tiers, self.accuracy, self.truth = name, tiers, accuracy, truth
        self.rng = np.random.default_rng(seed)

    def review(self, assignment: Assignment) -> Answer:
        text = assignment.item.payload["text"]
        said = []
        for span in self.truth[assignment.item.external_id]:
            slip = self.rng.random()
            step = (1.0 - self.accuracy) / 3
            if slip < step:
                continue  # missed
            if slip < 2 * step:
                inside = [t for t in tokens(text) if span.start <= t[0] and t[1] <= span.end]
                if len(inside) > 1:
                    span = Span(span.start, inside[-2][1], span.label)  # one token short
            elif slip < 3 * step:
                span = Span(span.start, span.end, LABELS[(LABELS.index(span.label) + 1) % len(LABELS)])
            said.append(span)
        return canonical(said), False, None


def run(out: Path, seed: int = 0, quick: bool = False, data_dir: Path | None = None) -> dict[str, Any]:
    """Run the scenario; write the SQLite DB, the exports, ``summary.json`` and ``report.html``
    (BLAS on one thread: the models are small, and threads only contend on a shared machine)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        result = _run(Path(out).resolve(), seed, quick, data_dir)
    write(Path(out), result)
    return result


def _run(out: Path, seed: int, quick: bool, data_dir: Path | None) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    texts = messages(data_dir)
    gen = random.Random(seed)
    order = np.random.default_rng([seed, 19]).permutation(len(texts))
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    docs = [insert_pii(texts[i], gen) for i in order[: HELD_OUT + rounds * ROUND_SIZE]]
    held, stream = docs[:HELD_OUT], docs[HELD_OUT:]
    ext = [f"sms-{i}" for i in order[HELD_OUT : HELD_OUT + len(stream)]]
    truth = {e: spans for e, (_, spans) in zip(ext, stream, strict=True)}
    ws = connect(fresh_db(out))
    loop = ws.create_project(config())
    reviewers = [SpanReviewer(f"t1-{k}", (1,), 0.93, truth, seed * 100 + k) for k in range(4)]
    reviewers.append(SpanReviewer("expert", (2,), 0.99, truth, seed * 100 + 9))
    held_texts, held_spans = [t for t, _ in held], [s for _, s in held]

    def payload(i: int, proposals: list[Span] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"text": stream[i][0]}
        if proposals is not None:
            body[PROPOSALS] = [
                {"start": s.start, "end": s.end, "label": s.label, "score": s.score} for s in proposals
            ]
        return body

    def held_out(champion: SpanTagger | None) -> dict[str, Any]:
        f1 = None if champion is None else entity_f1(champion.predict(held_texts), held_spans)
        return {"held_out_entity_f1": None if f1 is None else round(f1, 4)}

    spec = Spec(
        inputs=[text for text, _ in stream],
        truth=[spans for _, spans in stream],
        external_ids=ext,
        score=lambda model, texts: model.predict_scored(texts),
        predict=lambda model, texts: model.predict(texts),
        payload=payload,
        correct=correct,
        decode=decode,
        fit=lambda texts, spans: SpanTagger(random_state=seed).fit(texts, spans),
        gate=lambda truth, new, old: span_gate(truth, new, old, n_resamples=300, random_state=seed),
        per_round=held_out,
    )
    rng = np.random.default_rng([seed, 191])
    done = run_rounds(loop, reviewers, spec, rounds, ROUND_SIZE, rng, AUDIT_RATE, EPSILON, DELTA, MIN_TRAIN)
    champion = done.champion
    final = None if champion is None else entity_f1(champion.predict(held_texts), held_spans)
    by_doc: dict[str, tuple[str, dict[str, list[Span]]]] = {}
    for item, annotator, label in all_annotations(loop):
        i = done.index_of[int(item)]
        by_doc.setdefault(item, (stream[i][0], {}))[1][annotator] = decode(label)
    version = loop.snapshot()
    offsets = loop.export_dataset(version.id, "offsets", out)
    conll = loop.export_dataset(version.id, "conll", out)
    result = done.summary(
        "spans",
        "held_out_entity_f1",
        final,
        held_out_size=len(held),
        seed=seed,
        quick=quick,
        epsilon=EPSILON,
        delta=DELTA,
        agreement=agreement_report(by_doc),
        rules={
            "confidence": "an item's least confident token decision (highest tag probability of its "
            "most doubtful token): at most its lowest proposed span's score",
            "error": "an accepted item is wrong unless its spans equal the truth exactly (entity F1 1)",
        },
        data="SMS Spam Collection (shared text/sms_spam.csv) messages without personal data, with "
        "seeded EMAIL/PHONE/CARD phrases of reserved sample values inserted; their offsets are the truth",
        exports=[str(offsets), str(conll)],
        database=str(out / "loopwright.db"),
        seconds=round(time.perf_counter() - started, 2),
        cpu_seconds=round(time.process_time() - cpu, 2),
    )
    ws.close()
    return result

"""Scenario ``chat``: a support chatbot's inbox, its answers rated against a rubric and compared
pairwise, through the whole loop.

Data (stated plainly: no package ships real support conversations with graded answers): the
TREC question classification set (Li & Roth 2002; ``text/trec_questions.csv`` in the shared
data, read from ``--data``, never copied) framed as questions users put to a chatbot. The
"chatbot" is a small answer-type classifier trained on a slice of TREC; its answer names the
kind of answer it will give. Its rubric grade is derived from the TREC labels: ``correct``
(right fine type), ``partially_correct`` (right coarse type, wrong fine type) or ``wrong``.

Part 1, rubric: conversations are ingested into a ``task: rubric`` project whose built-in text
model learns to grade the bot from the question, the answer, the bot's logged confidence and
whether a stronger reference model (the large bot below) gives the same answer type;
confident grades auto-accept under a threshold certified on an audit the lead rates (ε = 0.2,
δ = 0.1: the grader is right on about 80 % of answers, so a tighter bound certifies nothing in
a quick run); the rest are rated by simulated reviewers through the review API (a correction
with every non-``correct`` rating). End users press "report issue" on some auto-accepted wrong answers:
those come back as priority review tasks. Part 2, preference: a small and a large bot answer the
same questions; reviewers pick the better answer (A/B/tie, sides shuffled); Bradley-Terry ranks
the bots and the resolved pairs are exported as preference-tuning JSONL.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from loopwright.api import connect
from loopwright.config import ProjectConfig
from loopwright.domain import Route
from loopwright.loop import Loop
from loopwright.loop.review import Assignment
from loopwright.scenarios import Answer, fresh_db, new_resolutions, review, shared_file, summary
from loopwright.simulate import SimulatedAnnotator
from loopwright.tasks.preference import bradley_terry

RUBRIC = ["correct", "partially_correct", "wrong"]
COARSE = {
    "ABBR": "an abbreviation",
    "DESC": "a description",
    "ENTY": "an entity",
    "HUM": "a person or group",
    "LOC": "a place",
    "NUM": "a number",
}
SYSTEM = "You are the help-desk assistant. Say what kind of answer the user needs, then answer."
EPSILON = 0.2  # a grade of a free-text answer: the grader is right on ~80 %, the lead on 98 %
DELTA = 0.1
ROUND_SIZE = {True: 100, False: 300}
ROUNDS = {True: 6, False: 10}  # quick: enough auto-accepted answers for the realised error to settle
PAIRS = {True: 60, False: 400}
BOT_TRAIN = {"small": 150, "large": 1500}


def load_trec(data_dir: Path | None) -> list[tuple[str, str, str]]:
    """``(question, coarse, fine)`` rows of the shared TREC file."""
    path = shared_file(data_dir, "text/trec_questions.csv", "chat")
    with path.open(newline="", encoding="utf-8") as f:
        return [(r["text"], r["label"], r["fine_label"]) for r in csv.DictReader(f)]


def train_bot(rows: list[tuple[str, str, str]], seed: int) -> Pipeline:
    """The chatbot under review: TF-IDF + logistic regression over ``COARSE:fine`` answer types."""
    bot = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000, random_state=seed)
    )
    return bot.fit([q for q, _, _ in rows], [f"{c}:{f}" for _, c, f in rows])


def answer_text(kind: str) -> str:
    coarse, fine = kind.split(":", 1)
    return f"You are asking for {COARSE[coarse]} ({fine}). Here is what I found about that."


def grade(kind: str, coarse: str, fine: str) -> str:
    said_coarse, said_fine = kind.split(":", 1)
    if said_coarse != coarse:
        return "wrong"
    return "correct" if said_fine == fine else "partially_correct"


def sureness(p: float) -> str:
    """The bot's own confidence in words, as a support bot logs it with its answer."""
    return "high" if p >= 0.6 else "medium" if p >= 0.3 else "low"


def reference_check(kind: str, reference: str) -> str:
    """How the bot's answer type compares with the reference model's: agrees, partly, differs."""
    if kind == reference:
        return "agrees"
    return "partly" if kind.split(":")[0] == reference.split(":")[0] else "differs"


def conversation(
    question: str, answer: str, bot_confidence: float | None = None, reference: str | None = None
) -> dict[str, Any]:
    """The payload: the turns and the answer for the reviewer; ``text`` (question, answer, the
    bot's logged confidence and the reference check, when there are) for the grading model."""
    turns = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    text = f"{question} || {answer}"
    if bot_confidence is None or reference is None:
        return {"turns": turns, "answer": answer, "text": text}
    return {
        "turns": turns,
        "answer": answer,
        "bot_confidence": round(bot_confidence, 4),
        "reference": reference,
        "text": f"{text} || {sureness(bot_confidence)} || reference {reference}",
    }


def rubric_config() -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "name": "chat-rubric",
            "labels": RUBRIC,
            "task": "rubric",
            "modality": "text",
            "input_field": "text",
            "routing": {
                "audit_rate": 0.3,
                "audit_tier": 2,  # the lead rates the audit: the evidence that certifies
                "certify": {"epsilon": EPSILON, "delta": DELTA, "min_evidence": 45},  # 5 errors may pass
                "bands": [{"min_confidence": 0.0, "tier": 1}],
            },
            "tiers": [
                {"tier": 1, "name": "bulk", "required_annotations": 2},
                {"tier": 2, "name": "lead", "required_annotations": 1},
            ],
            "consensus": {"method": "majority", "min_agreement": 0.6},
            "retrain": {"every_n_labels": 100, "min_labels": 40},  # of ~55 training labels after round 0
            "guidelines": "Rate the assistant's last answer: correct, partially_correct (right kind of "
            "answer, wrong detail) or wrong. Write the answer it should have given when it is not correct.",
        }
    )


def preference_config() -> ProjectConfig:
    return ProjectConfig.model_validate(
        {
            "name": "chat-preference",
            "labels": ["A", "B", "tie"],
            "task": "preference",
            "modality": "text",
            "input_field": "text",
            "model": {"kind": "external"},  # no model ranks the answers: every pair is reviewed
            "routing": {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
            "tiers": [
                {"tier": 1, "name": "bulk", "required_annotations": 2},
                {"tier": 2, "name": "lead", "required_annotations": 1},
            ],
            "consensus": {"method": "majority", "min_agreement": 0.6},
        }
    )


class Rater:
    """A simulated reviewer: a noisy rubric (or preference) answer, plus a correction when not correct."""

    def __init__(self, person: SimulatedAnnotator, truth: dict[str, str], fix: dict[str, str] | None) -> None:
        self.person, self.truth, self.fix = person, truth, fix
        self.name, self.tiers = person.name, person.tiers

    def review(self, assignment: Assignment) -> Answer:
        ext = assignment.item.external_id
        label, unsure = self.person.answer(self.truth[ext])
        comment = self.fix[ext] if self.fix is not None and label != "correct" else None
        return label, unsure, comment


def _raters(labels: list[str], truth: dict[str, str], fix: dict[str, str] | None, seed: int) -> list[Rater]:
    people = [SimulatedAnnotator(f"t1-{k}", (1,), 0.85, labels, seed * 100 + k) for k in range(4)]
    people.append(SimulatedAnnotator("lead", (2,), 0.98, labels, seed * 100 + 9))
    return [Rater(p, truth, fix) for p in people]


def run(out: Path, seed: int = 0, quick: bool = False, data_dir: Path | None = None) -> dict[str, Any]:
    """Run both parts; write the DB, the dataset exports and ``preferences.jsonl`` to ``out``."""
    started = time.perf_counter()
    rows = load_trec(data_dir)
    rng = np.random.default_rng([seed, 18])
    order = rng.permutation(len(rows))
    n_conv = ROUND_SIZE[quick] * ROUNDS[quick]
    bot_rows = [rows[i] for i in order[: BOT_TRAIN["large"]]]
    inbox = [rows[i] for i in order[BOT_TRAIN["large"] : BOT_TRAIN["large"] + n_conv]]
    held = [rows[i] for i in order[-500:]]  # never in the inbox: the grader's held-out set
    small, large = train_bot(bot_rows[: BOT_TRAIN["small"]], seed), train_bot(bot_rows, seed)
    ws = connect(fresh_db(out))
    rubric = _rubric_part(ws.create_project(rubric_config()), (small, large), inbox, held, quick, seed)
    history = rubric.pop("history")  # the rubric part's rounds: the report plots them
    pairs = inbox[: PAIRS[quick]]
    preference = _preference_part(ws.create_project(preference_config()), small, large, pairs, out, rng, seed)
    result = summary(
        "chat",
        items_seen=rubric["items_seen"] + preference["pairs"],
        human_labels=rubric["human_labels"] + preference["human_labels"],
        auto_accepted=rubric["auto_accepted"],
        auto_accept_errors=rubric["auto_accept_errors"],
        metric="held_out_rubric_accuracy",
        value=rubric["held_out_accuracy"],
        seed=seed,
        quick=quick,
        epsilon=EPSILON,
        delta=DELTA,
        history=history,
        rubric=rubric,
        preference=preference,
        data="TREC question classification (Li & Roth 2002; freely distributed for research, "
        "cogcomp.seas.upenn.edu/Data/QA/QC) from the shared data as a chatbot's inbox; the bot's "
        "answers come from a small TF-IDF classifier and their grades from the TREC labels",
        database=str(out / "loopwright.db"),
        seconds=round(time.perf_counter() - started, 2),
    )
    ws.close()
    return result


def _rubric_part(
    loop: Loop,
    bots: tuple[Pipeline, Pipeline],
    inbox: list[tuple[str, str, str]],
    held: list[tuple[str, str, str]],
    quick: bool,
    seed: int,
) -> dict[str, Any]:
    bot, reference = bots  # the bot under review, and the large one as the grader's reference
    kinds, sure, refs = _answers(bot, reference, [q for q, _, _ in inbox])
    truth = {
        f"chat-{k}": grade(kind, c, f) for k, (kind, (_, c, f)) in enumerate(zip(kinds, inbox, strict=True))
    }
    fix = {f"chat-{k}": answer_text(f"{c}:{f}") for k, (_, c, f) in enumerate(inbox)}
    raters = _raters(RUBRIC, truth, fix, seed)
    size = ROUND_SIZE[quick]
    human = auto = auto_wrong = reports = 0
    history: list[dict[str, Any]] = []
    for r in range(ROUNDS[quick]):
        records = [
            {
                "external_id": f"chat-{k}",
                "payload": conversation(inbox[k][0], answer_text(kinds[k]), sure[k], refs[k]),
            }
            for k in range(r * size, (r + 1) * size)
        ]
        report = loop.ingest(records)
        accepted = [o for o in report.outcomes if o.route is Route.AUTO_ACCEPT]
        wrong = [o for o in accepted if o.label != truth[o.external_id]]
        auto, auto_wrong = auto + len(accepted), auto_wrong + len(wrong)
        for o in accepted:  # an end user reports every third auto-accepted answer that was wrong
            if truth[o.external_id] == "wrong" and rng_report(seed, o.external_id):
                prediction = loop.lineage_of_item(o.external_id)["predictions"][-1]["id"]
                loop.feedback(
                    prediction, "report", f"report-{o.external_id}", comment="the bot got this wrong"
                )
                reports += 1
        log = review(loop, raters)
        human += log.annotations
        outcome = loop.maybe_retrain()
        history.append(
            {
                "round": r,
                "items": size,
                "auto_accepted": len(accepted),
                "auto_accept_errors": len(wrong),
                "human_labels": log.annotations,
                "retrained": outcome is not None,
                "promoted": bool(outcome and outcome.promoted),
                "certified_threshold": (cert := loop.status().certification) and cert.threshold,
            }
        )
    held_kinds, held_sure, held_refs = _answers(bot, reference, [q for q, _, _ in held])
    held_truth = [grade(kind, c, f) for kind, (_, c, f) in zip(held_kinds, held, strict=True)]
    payloads = [
        conversation(q, answer_text(kind), p, r)
        for kind, p, r, (q, _, _) in zip(held_kinds, held_sure, held_refs, held, strict=True)
    ]
    accuracy = None
    if loop.status().champion is not None:
        predicted = np.asarray(loop.config.labels)[loop.predict(payloads).argmax(axis=1)]
        accuracy = round(float(np.mean(predicted == np.asarray(held_truth))), 4)
    shares = {g: round(list(truth.values()).count(g) / len(truth), 4) for g in RUBRIC}
    return {
        "items_seen": len(truth),
        "human_labels": human,
        "auto_accepted": auto,
        "auto_accept_errors": auto_wrong,
        "end_user_reports": reports,
        "held_out_accuracy": accuracy,
        "held_out_majority_baseline": round(max(held_truth.count(g) for g in RUBRIC) / len(held_truth), 4),
        "bot_grades": shares,
        "promotions": sum(m.promoted_at is not None for m in loop.models()),
        "history": history,
    }


def _answers(bot: Pipeline, reference: Pipeline, questions: list[str]) -> tuple[Any, Any, list[str]]:
    """The bot's answer types and confidences, and how each compares with the reference's."""
    kinds = bot.predict(questions)
    checks = [reference_check(k, r) for k, r in zip(kinds, reference.predict(questions), strict=True)]
    return kinds, bot.predict_proba(questions).max(axis=1), checks


def rng_report(seed: int, external_id: str) -> bool:
    """Whether the (simulated) end user bothers to report this wrong answer: one in three, seeded."""
    return bool(np.random.default_rng([seed, int(external_id.split("-")[-1])]).random() < 1 / 3)


def _preference_part(
    loop: Loop,
    small: Pipeline,
    large: Pipeline,
    pairs: list[tuple[str, str, str]],
    out: Path,
    rng: np.random.Generator,
    seed: int,
) -> dict[str, Any]:
    questions = [q for q, _, _ in pairs]
    said = {"small": small.predict(questions), "large": large.predict(questions)}
    rank = {"correct": 2, "partially_correct": 1, "wrong": 0}
    truth: dict[str, str] = {}
    sides: dict[str, tuple[str, str]] = {}
    records = []
    for k, (q, c, f) in enumerate(pairs):
        a, b = ("small", "large") if rng.random() < 0.5 else ("large", "small")
        ga, gb = rank[grade(said[a][k], c, f)], rank[grade(said[b][k], c, f)]
        ext = f"pair-{k}"
        truth[ext] = "A" if ga > gb else "B" if gb > ga else "tie"
        sides[ext] = (a, b)
        payload = conversation(q, "")
        payload.pop("answer")
        payload |= {"answer_a": answer_text(said[a][k]), "answer_b": answer_text(said[b][k])}
        payload["text"] = f"{q} || A: {payload['answer_a']} || B: {payload['answer_b']}"
        records.append({"external_id": ext, "payload": payload})
    report = loop.ingest(records)
    ext_of = {o.item_id: o.external_id for o in report.outcomes}
    log = review(loop, _raters(["A", "B", "tie"], truth, None, seed + 1))
    resolved, _ = new_resolutions(loop, 0)
    verdicts = {ext_of[i]: v for i, v in resolved.items()}
    comparisons = [(*sides[e], v) for e, v in verdicts.items()]
    strengths = bradley_terry(comparisons, prior=1.0)
    true_strengths = bradley_terry([(*sides[e], truth[e]) for e in verdicts], prior=1.0)
    version = loop.snapshot()
    exported = loop.export_dataset(version.id, "jsonl", out)
    pairs_out = out / "preferences.jsonl"
    n_pairs = 0
    with exported.open(encoding="utf-8") as src, pairs_out.open("w", encoding="utf-8") as dst:
        for line in src:
            row = json.loads(line)
            if "chosen" in row:
                dst.write(json.dumps({k: row[k] for k in ("prompt", "chosen", "rejected")}) + "\n")
                n_pairs += 1
    agree = float(np.mean([verdicts[e] == truth[e] for e in verdicts]))
    return {
        "pairs": len(records),
        "human_labels": log.annotations,
        "resolved": len(verdicts),
        "resolved_accuracy": round(agree, 4),
        "bradley_terry": {k: round(v, 4) for k, v in strengths.items()},
        "bradley_terry_from_truth": {k: round(v, 4) for k, v in true_strengths.items()},
        "preference_pairs_exported": n_pairs,
        "export": str(pairs_out),
    }

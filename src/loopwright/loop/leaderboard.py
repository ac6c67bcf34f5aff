"""Gamified annotation: streaks and an accuracy-weighted leaderboard per tier.

Definitions (the numbers the page shows):

- An answer is an annotation or a gold answer. Its *verdict* is known when it can be checked:
  a gold answer against the known label; an annotation against the item's latest resolution,
  but only when that resolution pooled two or more people (a lone answer agrees with itself).
- **Day streak**: consecutive UTC days with at least one answer, ending today or yesterday (a
  streak is not broken before the day is over); **best day streak**: the longest ever.
- **Agreement streak**: the checked answers since the person's last wrong one (newest first);
  **best agreement streak**: the longest run of right checked answers ever.
- **Skill**: one-coin Dawid-Skene accuracy fitted on the items two or more people answered and
  the gold items (clamped to their label); none for someone with no such answer.
- **Quality** per tier: gold accuracy at the tier shrunk toward the skill (or, without one,
  toward chance ``1/K`` for ``K`` labels) by ``PRIOR_ANSWERS`` pseudo-answers:
  ``q = (gold_correct + m * prior) / (gold_answers + m)``.
- **Score** = ``answers * kappa ** 2`` with ``kappa = max(0, (q - 1/K) / (1 - 1/K))``: an answer
  counts by how far its author beats chance, squared, so guessing at any speed scores 0 and a
  careful person beats a sloppy one three times as fast (100 at q 0.95 → 81; 300 at 0.6 → 12).

Ranks: score, then quality, then name. The project decides whether annotators see it
(``leaderboard.visible_to_annotators``, default off); leads and admins always do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

PRIOR_ANSWERS = 5.0  # pseudo-answers the skill (or chance) weighs against gold answers


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer as the leaderboard sees it; ``right`` is None while it cannot be checked."""

    annotator: str
    tier: int
    item_id: int
    label: str
    at: datetime
    right: bool | None
    gold: bool


@dataclass(frozen=True, slots=True)
class Streaks:
    days: int
    best_days: int
    agreeing: int
    best_agreeing: int


@dataclass(frozen=True, slots=True)
class Row:
    rank: int
    annotator: str
    answers: int
    gold_answers: int
    gold_correct: int
    gold_accuracy: float | None
    skill: float | None
    quality: float
    score: float
    streaks: Streaks


@dataclass(frozen=True, slots=True)
class TierBoard:
    tier: int
    name: str
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class Leaderboard:
    chance: float
    prior_answers: float
    visible_to_annotators: bool
    tiers: list[TierBoard]


def checked(
    annotations: Sequence[tuple[str, int, int, str, datetime]],
    resolutions: dict[int, tuple[str, int]],
    gold: Sequence[tuple[str, int, int, str, datetime, bool]],
) -> list[Answer]:
    """Answers with their verdicts, oldest first: ``annotations`` as (annotator, tier, item_id,
    label, at), ``resolutions`` as item_id -> (latest label, people pooled), ``gold`` as
    (annotator, tier, item_id, label, at, correct)."""
    out = []
    for who, tier, item, label, at in annotations:
        res = resolutions.get(item)
        right = None if res is None or res[1] < 2 else label == res[0]
        out.append(Answer(who, tier, item, label, at, right, False))
    out += [Answer(w, t, i, lab, at, ok, True) for w, t, i, lab, at, ok in gold]
    out.sort(key=lambda a: (a.at, a.annotator))
    return out


def streaks(answers: Sequence[Answer], today: date) -> Streaks:
    """One person's streaks from their answers (any order)."""
    days = sorted({a.at.date() for a in answers})
    best = run = 0
    for k, d in enumerate(days):
        run = run + 1 if k and d - days[k - 1] == timedelta(days=1) else 1
        best = max(best, run)
    current = run if days and today - days[-1] <= timedelta(days=1) else 0
    verdicts = [a.right for a in sorted(answers, key=lambda a: a.at) if a.right is not None]
    best_ok = ok = 0
    for v in verdicts:
        ok = ok + 1 if v else 0
        best_ok = max(best_ok, ok)
    return Streaks(current, best, ok, best_ok)


def skills(answers: Sequence[Answer]) -> dict[str, float]:
    """One-coin Dawid-Skene accuracy per person over shared and gold items (see the module)."""
    from loopwright.consensus import OneCoinDawidSkene

    known = {str(a.item_id): a.label for a in answers if a.gold and a.right}
    people: dict[int, set[str]] = {}
    for a in answers:
        people.setdefault(a.item_id, set()).add(a.annotator)
    use = [(str(a.item_id) in known) if a.gold else len(people[a.item_id]) >= 2 for a in answers]
    rows = [(str(a.item_id), a.annotator, a.label) for a, ok in zip(answers, use, strict=True) if ok]
    if not rows:
        return {}
    items, workers, labels = zip(*rows, strict=True)
    fit = OneCoinDawidSkene().fit(items, workers, labels, gold=known)
    return {w: round(float(s), 6) for w, s in fit.skills_.items()}


def quality(gold_correct: int, gold_answers: int, skill: float | None, chance: float) -> float:
    prior = chance if skill is None else skill
    return (gold_correct + PRIOR_ANSWERS * prior) / (gold_answers + PRIOR_ANSWERS)


def score(answers: int, q: float, chance: float) -> float:
    kappa = max(0.0, (q - chance) / (1.0 - chance))
    return answers * kappa**2


def leaderboard(
    answers: Sequence[Answer],
    tiers: Sequence[tuple[int, str]],
    n_labels: int,
    today: date,
    visible_to_annotators: bool = False,
) -> Leaderboard:
    """The board per tier (``tiers`` as (number, name)) from every answer of the project."""
    chance = 1.0 / n_labels
    skill = skills(answers)
    mine: dict[str, list[Answer]] = {}
    for a in answers:
        mine.setdefault(a.annotator, []).append(a)
    streak = {who: streaks(own, today) for who, own in mine.items()}
    boards = []
    for number, name in tiers:
        unranked = []
        for who, own in mine.items():
            here = [a for a in own if a.tier == number]
            if not here:
                continue
            gold = [a for a in here if a.gold]
            right = sum(1 for a in gold if a.right)
            q = quality(right, len(gold), skill.get(who), chance)
            unranked.append(
                (
                    round(score(len(here), q, chance), 4),
                    round(q, 4),
                    who,
                    len(here),
                    len(gold),
                    right,
                    skill.get(who),
                )
            )
        unranked.sort(key=lambda r: (-r[0], -r[1], r[2]))
        rows = [
            Row(k + 1, who, n, g, ok, round(ok / g, 4) if g else None, s, q, sc, streak[who])
            for k, (sc, q, who, n, g, ok, s) in enumerate(unranked)
        ]
        boards.append(TierBoard(number, name, rows))
    return Leaderboard(round(chance, 6), PRIOR_ANSWERS, visible_to_annotators, boards)

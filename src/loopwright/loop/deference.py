"""Deference: how often each reviewer's label is the model's suggestion, against everyone else.

A reviewer who only accepts suggestions (Space) passes every gold check the model gets right,
and below a certified threshold the model is still mostly right (88-96 % of the quick demo's
tier-1 work, ``bench/results/gold_lookalike.md``), so gold rarely catches them. Their answers
do: a careful reviewer agrees with the suggestion about as often as the others, one who only
accepts agrees every time. Counted over the answers given with a suggestion shown
(``Annotation.suggested``, recorded when the task was claimed): a task answered blind, as audits
are, shows none and does not count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from loopwright.domain import Annotation

MIN_ANSWERS = 30  # answers before anyone is flagged
ALPHA = 0.001  # the level of the one-sided binomial test (one test per reviewer on the dashboard)


@dataclass(frozen=True, slots=True)
class Deference:
    answers: int  # answers given with a suggestion shown
    agreed: int  # of them, the suggested label
    peers: float | None  # the share of everyone else's such answers that agreed (None: none)
    p_value: float | None  # chance of agreeing this often at the peers' rate (binomial tail)
    flagged: bool  # at least MIN_ANSWERS answers and p_value < ALPHA: they may only accept

    @property
    def share(self) -> float:
        return self.agreed / self.answers


def deference(annotations: Sequence[Annotation]) -> dict[str, Deference]:
    """Each annotator's agreement with the suggestion they were shown, tested against
    everyone else's."""
    from scipy.stats import binom  # on use: keeps start-up light

    counted = [a for a in annotations if a.suggested is not None]
    n = Counter(a.annotator for a in counted)
    k = Counter(a.annotator for a in counted if a.label == a.suggested)
    all_n, all_k = sum(n.values()), sum(k.values())
    out = {}
    for who, mine in n.items():
        rest = all_n - mine
        peers = (all_k - k[who]) / rest if rest else None
        p = None if peers is None else float(binom.sf(k[who] - 1, mine, peers))
        out[who] = Deference(mine, k[who], peers, p, mine >= MIN_ANSWERS and p is not None and p < ALPHA)
    return out

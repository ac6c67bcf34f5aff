"""Deference: how often each reviewer's label is the model's suggestion, against everyone else.

A reviewer who only accepts suggestions (Space) passes every gold check the model gets right,
and below a certified threshold the model is still mostly right (88-96 % of the quick demo's
tier-1 work, ``bench/results/gold_lookalike.md``), so gold rarely catches them. Their answers
do: a careful reviewer agrees with the suggestion about as often as the others, one who only
accepts agrees every time. Counted over answers on items with a stored prediction, outside the
audit sample (answered blind); the suggestion is the item's newest stored prediction (the review
page may show a newer champion's, which mostly agrees with it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from loopwright.domain import Annotation

MIN_ANSWERS = 30  # answers before anyone is flagged
ALPHA = 0.001  # the level of the one-sided binomial test (one test per reviewer on the dashboard)


@dataclass(frozen=True, slots=True)
class Deference:
    answers: int  # answers on items with a suggestion, outside the audit sample
    agreed: int  # of them, the suggested label
    peers: float | None  # the share of everyone else's such answers that agreed (None: none)
    p_value: float | None  # chance of agreeing this often at the peers' rate (binomial tail)
    flagged: bool  # at least MIN_ANSWERS answers and p_value < ALPHA: they may only accept

    @property
    def share(self) -> float:
        return self.agreed / self.answers


def deference(
    annotations: Sequence[Annotation], suggested: Mapping[int, str], blind: Collection[int]
) -> dict[str, Deference]:
    """Each annotator's agreement with ``suggested`` (item id → suggested label), the items in
    ``blind`` left out, tested against everyone else's."""
    from scipy.stats import binom  # on use: keeps start-up light

    counted = [a for a in annotations if a.item_id in suggested and a.item_id not in blind]
    n = Counter(a.annotator for a in counted)
    k = Counter(a.annotator for a in counted if a.label == suggested[a.item_id])
    all_n, all_k = sum(n.values()), sum(k.values())
    out = {}
    for who, mine in n.items():
        rest = all_n - mine
        peers = (all_k - k[who]) / rest if rest else None
        p = None if peers is None else float(binom.sf(k[who] - 1, mine, peers))
        out[who] = Deference(mine, k[who], peers, p, mine >= MIN_ANSWERS and p is not None and p < ALPHA)
    return out

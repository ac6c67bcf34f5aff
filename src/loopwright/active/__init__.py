"""Active learning: which items humans should label next.

Pure scores over probability matrices, one top-k selector, query by committee, diversity
(k-center greedy, k-means++), a hybrid of uncertainty and diversity, a bandit choosing among
them from the labels as they arrive (``auto``, the default: ``active.bandit``), and a seeded pool-based
simulation (``loopwright.active.experiment``) that measures the labels each strategy saves.
"""

from loopwright.active.committee import committee_proba, fit_committee, mean_kl, vote_entropy
from loopwright.active.diversity import kcenter_greedy, kmeans_pp
from loopwright.active.features import TextEmbedding
from loopwright.active.scores import entropy, least_confidence, smallest_margin
from loopwright.active.strategies import (
    STRATEGIES,
    Hybrid,
    KCenter,
    QueryByCommittee,
    RandomSampling,
    Strategy,
    UncertaintySampling,
    make_strategy,
)
from loopwright.active.topk import top_k

__all__ = [
    "STRATEGIES",
    "Hybrid",
    "KCenter",
    "QueryByCommittee",
    "RandomSampling",
    "Strategy",
    "TextEmbedding",
    "UncertaintySampling",
    "committee_proba",
    "entropy",
    "fit_committee",
    "kcenter_greedy",
    "kmeans_pp",
    "least_confidence",
    "make_strategy",
    "mean_kl",
    "smallest_margin",
    "top_k",
    "vote_entropy",
]

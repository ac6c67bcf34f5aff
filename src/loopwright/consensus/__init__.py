"""Consolidating several annotators' labels into one, and measuring how much they agree."""

from loopwright.consensus.agreement import (
    agreement_report,
    cohen_kappas,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
    rating_counts,
)
from loopwright.consensus.answers import Answers, encode
from loopwright.consensus.dawid_skene import DawidSkene, OneCoinDawidSkene
from loopwright.consensus.majority import Consensus, MajorityVote, majority
from loopwright.consensus.weighted import WeightedMajorityVote

__all__ = [
    "Answers",
    "Consensus",
    "DawidSkene",
    "MajorityVote",
    "OneCoinDawidSkene",
    "WeightedMajorityVote",
    "agreement_report",
    "cohen_kappas",
    "encode",
    "fleiss_kappa",
    "krippendorff_alpha",
    "majority",
    "percent_agreement",
    "rating_counts",
]

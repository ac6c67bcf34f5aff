"""Pairwise preference: which of two answers is better ("A", "B" or "tie"), aggregated per
answer source with Bradley-Terry and exported for preference tuning.

Bradley-Terry: ``P(i beats j) = s_i / (s_i + s_j)``. :func:`bradley_terry` fits the strengths by
the minorisation-maximisation update of Hunter (2004), ``s_i ← W_i / Σ_j n_ij / (s_i + s_j)``,
counting a tie as half a win for each side, with ``prior`` virtual ties against every other
source (a small ridge that keeps an undefeated or winless source finite).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loopwright.errors import Invalid
from loopwright.tasks.base import Vote
from loopwright.tasks.conversation import prompt_messages
from loopwright.tasks.single import SingleLabel

CHOICES = ("A", "B", "tie")


class Preference(SingleLabel):
    """The better of two answers; the project's labels are exactly ``A``, ``B``, ``tie``."""

    name = "preference"

    def parse(self, value: Any, labels: Sequence[str]) -> str:
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and text.upper() in ("A", "B"):
            text = text.upper()
        if text not in CHOICES:
            raise Invalid(f"label: a preference is 'A', 'B' or 'tie', not {value!r}")
        return str(text)

    def vote(self, answers: Sequence[str], labels: Sequence[str]) -> Vote:
        return super().vote(answers, CHOICES)

    def export_row(self, answer: str, labels: Sequence[str]) -> dict[str, Any]:
        return {"preference": answer}


def bradley_terry(
    comparisons: Sequence[tuple[str, str, str]], prior: float = 0.0, n_iter: int = 1000, tol: float = 1e-10
) -> dict[str, float]:
    """Strengths (geometric mean 1) from ``(source_a, source_b, verdict)`` rows, verdict A/B/tie."""
    if prior < 0:
        raise Invalid("prior must be ≥ 0")
    names = sorted({n for a, b, _ in comparisons for n in (a, b)})
    if len(names) < 2:
        raise Invalid("Bradley-Terry needs comparisons between at least two sources")
    idx = {n: k for k, n in enumerate(names)}
    k = len(names)
    wins = np.full((k, k), prior / 2)  # wins[i, j]: how often i beat j (ties count half)
    np.fill_diagonal(wins, 0.0)
    for a, b, verdict in comparisons:
        i, j = idx[a], idx[b]
        if verdict not in CHOICES:
            raise Invalid(f"verdict must be one of {list(CHOICES)}, not {verdict!r}")
        if verdict == "A":
            wins[i, j] += 1
        elif verdict == "B":
            wins[j, i] += 1
        else:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
    games = wins + wins.T
    won = wins.sum(axis=1)
    if (won == 0).any() or (won == games.sum(axis=1)).any():
        raise Invalid("a source won all or none of its comparisons: no finite strength; pass prior > 0")
    s = np.ones(k)
    for _ in range(n_iter):
        new = won / (games / (s[:, None] + s[None, :])).sum(axis=1)
        new /= np.exp(np.log(new).mean())
        done = np.abs(new - s).max() < tol
        s = new
        if done:
            break
    return dict(zip(names, s.tolist(), strict=True))


def preference_pair(payload: Mapping[str, Any], verdict: str) -> dict[str, Any] | None:
    """``{"prompt", "chosen", "rejected"}`` in the conversational form TRL's DPO trainer reads;
    None for a tie (no preference to learn)."""
    if verdict == "tie":
        return None
    a, b = payload["answer_a"], payload["answer_b"]
    chosen, rejected = (a, b) if verdict == "A" else (b, a)
    return {
        "prompt": prompt_messages(payload),
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }

"""The promotion gate: a challenger replaces the champion only if it passes a paired comparison,
regresses significantly on no slice (a class, a label source), and keeps its calibration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from loopwright.domain import GateRule


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    test: str  # the rule, or "baseline" for a first model (no champion to compare with)
    n_eval: int
    challenger_accuracy: float
    champion_accuracy: float | None
    baseline_accuracy: float  # majority-class accuracy on the same items
    delta: float  # challenger minus champion (or baseline)
    wins: int  # items only the challenger got right
    losses: int  # items only the champion got right
    p_value: float | None  # one-sided exact McNemar for the rule's alternative
    reason: str
    slices: tuple[dict[str, Any], ...] = ()  # per slice: n, wins, losses, p_worse, regressed
    ece: tuple[float, float] | None = None  # (challenger, champion) expected calibration error

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_one_sided(wins: int, losses: int) -> tuple[float, float]:
    """Exact McNemar on discordant pairs: (p that the challenger is worse, p that it is better)."""
    n = wins + losses
    if n == 0:
        return 1.0, 1.0
    from scipy.stats import binom  # on use: keeps start-up light

    return float(binom.cdf(wins, n, 0.5)), float(binom.sf(wins - 1, n, 0.5))


def gate(
    y_true: Sequence[str],
    challenger_pred: Sequence[str],
    champion_pred: Sequence[str] | None,
    rule: GateRule = GateRule.NOT_SIGNIFICANTLY_WORSE,
    alpha: float = 0.05,
    min_eval_items: int = 10,
    slices: Mapping[str, Sequence[str]] | None = None,
    ece: tuple[float, float] | None = None,
    max_ece_increase: float = 0.1,
) -> GateResult:
    """Compare predictions on the frozen evaluation split; a failed gate is a result, not an error.

    ``slices`` names, per slicing (e.g. ``"class"``, ``"source"``), each item's slice value; a
    slice whose one-sided exact McNemar p-value for "the challenger is worse" is below
    ``alpha / number of slices`` (Bonferroni) fails the gate. ``ece`` is the expected
    calibration error of (challenger, champion); an increase above ``max_ece_increase`` fails it
    unless the challenger is significantly more accurate (after a drift a model trained on few
    labels is underconfident, yet far better than the stale champion; the certificate measures
    its error before anything is auto-accepted).
    """
    y = np.asarray(y_true)
    n = len(y)
    new_ok: NDArray[np.bool_] = np.asarray(challenger_pred) == y
    baseline = float(np.unique(y, return_counts=True)[1].max() / n) if n else 0.0
    acc = float(new_ok.mean()) if n else 0.0
    test = "baseline" if champion_pred is None else rule.value
    if n < min_eval_items:
        reason = f"only {n} evaluation items (< {min_eval_items})"
        return GateResult(False, test, n, acc, None, baseline, 0.0, 0, 0, None, reason)
    if champion_pred is None:
        passed = acc > baseline
        verdict = "beats" if passed else "does not beat"
        reason = f"accuracy {acc:.3f} {verdict} the majority-class baseline {baseline:.3f}"
        return GateResult(passed, test, n, acc, None, baseline, acc - baseline, 0, 0, None, reason)
    old_ok: NDArray[np.bool_] = np.asarray(champion_pred) == y
    champion_acc = float(old_ok.mean())
    wins, losses = int(np.sum(new_ok & ~old_ok)), int(np.sum(old_ok & ~new_ok))
    p_worse, p_better = mcnemar_one_sided(wins, losses)
    if rule is GateRule.NOT_WORSE:
        passed, p = acc >= champion_acc, None
    elif rule is GateRule.NOT_SIGNIFICANTLY_WORSE:
        passed, p = p_worse >= alpha, p_worse
    else:
        passed, p = p_better < alpha, p_better
    reason = (
        f"{'passed' if passed else 'failed'} {rule.value}: accuracy {acc:.3f} "
        f"vs champion {champion_acc:.3f}, {wins} wins / {losses} losses"
        + ("" if p is None else f", p = {p:.3g} (alpha {alpha})")
    )
    table = _slices(slices or {}, new_ok, old_ok, alpha)
    if regressed := [f"{s['slicing']}={s['slice']}" for s in table if s["regressed"]]:
        passed = False
        reason += f"; significant regression on {', '.join(regressed)}"
    if ece is not None and ece[0] - ece[1] > max_ece_increase and p_better >= alpha:
        passed = False  # a significantly more accurate challenger passes: certification re-measures it
        reason += f"; calibration collapsed: ECE {ece[0]:.3f} vs champion {ece[1]:.3f}"
    return GateResult(
        passed,
        test,
        n,
        acc,
        champion_acc,
        baseline,
        acc - champion_acc,
        wins,
        losses,
        p,
        reason,
        tuple(table),
        ece,
    )


def _slices(
    slices: Mapping[str, Sequence[str]], new_ok: NDArray[np.bool_], old_ok: NDArray[np.bool_], alpha: float
) -> list[dict[str, Any]]:
    """Wins, losses and p(worse) per slice; ``regressed`` at a Bonferroni-corrected level."""
    rows: list[dict[str, Any]] = []
    for slicing, values in slices.items():
        v = np.asarray(values)
        for value in np.unique(v):
            at = v == value
            wins, losses = int(np.sum(new_ok[at] & ~old_ok[at])), int(np.sum(old_ok[at] & ~new_ok[at]))
            rows.append(
                {
                    "slicing": slicing,
                    "slice": str(value),
                    "n": int(at.sum()),
                    "wins": wins,
                    "losses": losses,
                    "p_worse": mcnemar_one_sided(wins, losses)[0],
                }
            )
    level = alpha / max(len(rows), 1)
    return [r | {"regressed": float(r["p_worse"]) < level} for r in rows]

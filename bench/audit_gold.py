"""Gold from the audits (``loopwright gold --from-audits``): does it catch a reviewer who only
accepts suggestions? Replayed on the quick demo at the end of its last round before the drift
(seeds 0-4), with that round's champion.

For each seed:
- *made*: the audited items two or more experts agreed on and the champion answers otherwise
  (a dry run at the end of round 10), and how many of their gold answers are the digit's truth;
- a *stamper* (answers with the suggestion) and a *careful* reviewer (right with probability
  0.95 on every item, like the demo's tier-1 people) answer gold checks as the demo serves them:
  the 10 oldest gold items first (onboarding), then, for each check, the unseen gold item the
  champion is about as sure of as a random item of the tier-1 work (``gold.lookalike``), with
  the demo's 30 other random gold digits, then with the made gold added to them;
- the gold checks until the pause rule (CUSUM of the SPRT, 0.7 against 0.9, alpha 0.05, at
  least 5 answers) pauses them, over 200 draws of the work order (median; "never" when the pool
  runs out first in more than half), and the share of 5,000 draws in which the careful one is
  paused by the time they have answered every gold item.
  At the demo's 2 % gold rate a check comes every 50 claims.

The careful reviewer here is as accurate on the made gold as on any item; real people find the
items the model gets wrong harder than most, so their share paused is a lower bound.

    .venv/bin/python bench/audit_gold.py            # about 40 s of CPU per seed
    .venv/bin/python bench/audit_gold.py --render   # the markdown again from the JSON
"""

from __future__ import annotations

import functools
import json
import sqlite3
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from gold_lookalike import ONBOARDING, demo_sets, replay_seeds, truth

RESULTS = Path(__file__).resolve().parent / "results"
DRAWS = 200
CAREFUL_DRAWS = 5000
CAREFUL = 0.95


@functools.cache
def _demo_gold() -> Any:
    from loopwright.cli.demo import demo_config

    return demo_config().gold


def checks_to_pause(right: list[bool] | np.ndarray) -> int | None:
    """Gold answers until the demo's pause rule (``loopwright.loop.gold``) fires on this
    sequence of right and wrong answers (None: it never does)."""
    from loopwright.loop.gold import TierSkill, is_paused, skills_step

    rule = _demo_gold()
    by_tier: dict[int, TierSkill] = {}
    for n, ok in enumerate(right, start=1):
        by_tier = skills_step(rule, by_tier, 1, bool(ok))
        if is_paused(rule, by_tier[1]):
            return n
    return None


def serve(
    c_work: np.ndarray, c_pool: np.ndarray, right_pool: np.ndarray, onboarding: np.ndarray, rng: Any
) -> list[bool]:
    """A stamper's answers: onboarding in order, then the nearest unseen gold to a random work item."""
    answers = list(onboarding)
    unseen = list(range(len(c_pool)))
    while unseen:
        anchor = c_work[rng.integers(len(c_work))]
        pick = unseen.pop(int(np.argmin(np.abs(c_pool[unseen] - anchor))))
        answers.append(bool(right_pool[pick]))
    return answers


def replay(db: Path, y: np.ndarray) -> dict[str, Any]:
    from loopwright import connect

    work, gold = demo_sets(db)
    ws = connect(f"sqlite:///{db}")
    loop = ws.project("digits")
    made = loop.gold_from_audits(dry_run=True).candidates
    con = sqlite3.connect(db)
    ids = [c.external_id for c in made]
    marks = ",".join("?" * len(ids))
    found = dict(con.execute(f"select external_id, payload from items where external_id in ({marks})", ids))
    con.close()
    made_payloads = [found[i] for i in ids]
    labels = [str(c) for c in range(10)]
    p_work = loop.predict([json.loads(p) for _, p in work])
    p_gold = loop.predict([json.loads(p) for p, _ in gold])
    p_made = loop.predict([json.loads(p) for p in made_payloads]) if made else np.zeros((0, 10))
    ws.close()
    right_gold = np.array([labels[j] for j in p_gold.argmax(axis=1)]) == [g for _, g in gold]
    c_work, c_gold, c_made = p_work.max(axis=1), p_gold.max(axis=1), p_made.max(axis=1)
    onboarding, rest = right_gold[:ONBOARDING], slice(ONBOARDING, None)
    rng = np.random.default_rng(0)
    pools = {
        "random": (c_gold[rest], right_gold[rest]),
        "random + made": (np.r_[c_gold[rest], c_made], np.r_[right_gold[rest], np.zeros(len(made), bool)]),
    }
    out: dict[str, Any] = {
        "made": len(made),
        "made_right": sum(c.label == truth(c.external_id, y) for c in made),
        "made_confidence": [round(c.confidence, 3) for c in made],
        "work_items": len(c_work),
    }
    for name, (c_pool, right_pool) in pools.items():
        stamper = [checks_to_pause(serve(c_work, c_pool, right_pool, onboarding, rng)) for _ in range(DRAWS)]
        n, chance = ONBOARDING + len(c_pool), np.random.default_rng(1)  # the careful one's own draws
        careful = [checks_to_pause(chance.random(n) < CAREFUL) is not None for _ in range(CAREFUL_DRAWS)]
        caught = sorted(s for s in stamper if s is not None)
        out[name] = {
            "stamper_paused_share": len(caught) / DRAWS,
            "stamper_median_checks": caught[len(caught) // 2] if len(caught) * 2 > DRAWS else None,
            "careful_paused_share": sum(careful) / CAREFUL_DRAWS,
        }
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    def checks(r: dict[str, Any]) -> str:
        m = r["stamper_median_checks"]
        return "never" if m is None else f"{m} (~{ONBOARDING + max(0, m - ONBOARDING) * 50:,} claims)"

    lines = [
        "# Gold from the audits (`loopwright gold --from-audits`)",
        "",
        "Generated by `bench/audit_gold.py`: the quick demo's end of round 10 (the last before the drift), "
        "replayed with its champion. *Made*: audited items two or more experts agreed on that the champion "
        "answers otherwise (a dry run). Gold checks served as the demo serves them (10 onboarding, then "
        "lookalike), to a *stamper* (answers with the suggestion) and a *careful* reviewer (right with "
        f"probability {CAREFUL} on any item), {DRAWS:,} and {CAREFUL_DRAWS:,} draws; the careful one is "
        "counted paused if the rule fires before they have answered every gold item.",
        "",
        "| seed | made | of them the truth | their confidence | stamper paused: random gold → + made "
        "| median checks to pause: random → + made | careful paused: random → + made |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, b = r["random"], r["random + made"]
        conf = ", ".join(f"{c:.2f}" for c in r["made_confidence"]) or "none"
        lines.append(
            f"| {r['seed']} | {r['made']} | {r['made_right']} | {conf} "
            f"| {a['stamper_paused_share']:.0%} → {b['stamper_paused_share']:.0%} "
            f"| {checks(a)} → {checks(b)} "
            f"| {a['careful_paused_share']:.1%} → {b['careful_paused_share']:.1%} |"
        )
    lines += [
        "",
        "- The median counts the 10 onboarding answers (the first 10 claims); after them a check comes "
        "every 50 claims at the demo's 2 % gold rate, hence the claims in brackets.",
        "- The careful reviewer is as accurate on the made gold as on any item here, so their share grows "
        "only because there is more gold to answer (the pause rule's false alarms at 0.95 accuracy add up "
        "over more answers; any gold would do the same). Real people find the items a model gets wrong "
        "harder than most, so look at the list (`--dry-run`) before adding it.",
        "- Seeds 0 and 3 make 6 items each. Each wrong answer adds 1.10 to the rule's evidence and each "
        "right one takes 0.25 away (pause at 3.0): when the 30 random gold items the stamper gets right "
        "fall between the 6 wrong ones, the evidence never reaches the bar before every gold item is "
        "answered.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    if sys.argv[1:] == ["--render"]:  # the markdown again from the JSON kept
        rows = json.loads((RESULTS / "audit_gold.json").read_text())["seeds"]
        (RESULTS / "audit_gold.md").write_text(markdown(rows))
        return
    warnings.filterwarnings("ignore", "The `probability` parameter", FutureWarning)
    rows = replay_seeds(replay)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "audit_gold.json").write_text(json.dumps({"seeds": rows}, indent=2) + "\n")
    (RESULTS / "audit_gold.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()

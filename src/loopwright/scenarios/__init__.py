"""Demo scenarios, one per use case: ``loopwright demo --scenario NAME [--quick] [--seed N]``.

Each scenario module has ``run(out, seed=0, quick=False, data_dir=None) -> dict`` that runs the
loop on real (or honestly derived) data with simulated reviewers answering through the review
API, and returns a summary built by :func:`summary`; :func:`write` stores it as
``summary.json`` and ``report.html``. ``digits`` is the original demo (``loopwright.cli.demo``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from loopwright.errors import Capped, Invalid, Paused
from loopwright.loop import Loop
from loopwright.loop.review import Assignment

SCENARIOS = {
    "digits": "scikit-learn's 8x8 digits, single label (the original demo)",
    "images": "digits rendered as PNG files, referenced by path",
    "multilabel": "digits with four derived attributes: a label set per image",
    "chat": "TREC questions as a support chatbot's inbox: rubric ratings and pairwise preferences",
    "spans": "SMS messages with seeded personal data, marked as character spans",
    "boxes": "real digits placed on larger canvases, found as labelled boxes",
}
DEFAULT_DATA = Path("../shared/data")  # the shared data sets, relative to the working directory


class ScenarioRun(Protocol):
    def __call__(
        self, out: Path, seed: int = 0, quick: bool = False, data_dir: Path | None = None
    ) -> dict[str, Any]: ...


def runner(name: str) -> ScenarioRun:
    """The ``run`` function of scenario ``name`` (imported on use: each brings its own stack)."""
    if name == "digits":
        raise Invalid("scenario digits is the original demo: loopwright.cli.demo.run_demo")
    if name not in SCENARIOS:
        raise Invalid(f"scenario: unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    try:
        module = importlib.import_module(f"loopwright.scenarios.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"loopwright.scenarios.{name}":
            raise  # a missing optional dependency: the CLI names the extra
        raise Invalid(f"scenario {name} is not part of this build yet") from None
    run: ScenarioRun = module.run
    return run


def summary(
    scenario: str,
    items_seen: int,
    human_labels: int,
    auto_accepted: int,
    auto_accept_errors: int,
    metric: str,
    value: float | None,
    **extra: Any,
) -> dict[str, Any]:
    """The fields every scenario reports, then its own."""
    return {
        "scenario": scenario,
        "items_seen": items_seen,
        "human_labels": human_labels,
        "auto_accepted": auto_accepted,
        "auto_accept_error": auto_accept_errors / auto_accepted if auto_accepted else None,
        "final_metric": {"name": metric, "value": value},
        **extra,
    }


def write(out: Path, result: Mapping[str, Any]) -> None:
    """``summary.json`` and a one-page ``report.html`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    from loopwright.scenarios.report import report_html  # matplotlib on first use

    (out / "report.html").write_text(report_html(result), encoding="utf-8")


def shared_file(data_dir: Path | None, relative: str, scenario: str) -> Path:
    """A file of the shared data sets, or Invalid saying where it was looked for."""
    root = data_dir or DEFAULT_DATA
    path = root / relative
    if not path.is_file():
        raise Invalid(
            f"scenario {scenario} needs {relative} from the shared data sets, not found under "
            f"{root.resolve()}; pass --data DIR (the folder holding text/ and crowd/)"
        )
    return path


def fresh_db(out: Path) -> str:
    """A new SQLite URL in ``out`` (an earlier run's files removed)."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("loopwright.db*"):
        stale.unlink()
    return f"sqlite:///{out / 'loopwright.db'}"


Answer = tuple[str, bool, str | None]  # (label text, unsure, comment)


class Reviewer(Protocol):
    name: str
    tiers: tuple[int, ...]

    def review(self, assignment: Assignment) -> Answer: ...


@dataclass
class ReviewLog:
    annotations: int = 0
    by_reviewer: dict[str, int] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)


def review(loop: Loop, reviewers: Sequence[Reviewer], limit: int | None = None) -> ReviewLog:
    """Reviewers take turns (claim → answer → submit through the review API) until none finds a task."""
    log = ReviewLog()
    idle: set[str] = set()
    while len(idle) < len(reviewers):
        for person in reviewers:
            if person.name in idle or (limit is not None and log.annotations >= limit):
                idle.add(person.name)
                continue
            try:
                assignment = loop.next_task(person.name, person.tiers)
            except (Paused, Capped) as stop:
                log.stopped[person.name] = stop.message
                idle.add(person.name)
                continue
            if assignment is None:
                idle.add(person.name)
                continue
            label, unsure, comment = person.review(assignment)
            loop.submit(assignment.lease.id, person.name, label, unsure, comment)
            log.annotations += 1
            log.by_reviewer[person.name] = log.by_reviewer.get(person.name, 0) + 1
            idle.clear()
    return log


Truth = Callable[[str], Any]


def new_resolutions(loop: Loop, after_id: int) -> tuple[dict[int, str], int]:
    """Resolved labels by item id since resolution ``after_id``, and the newest id seen."""
    found: dict[int, str] = {}
    while page := loop.resolutions(after_id, 500):
        found.update((r.item_id, r.label) for r in page)
        after_id = page[-1].id
    return found, after_id


def all_annotations(loop: Loop) -> list[tuple[str, str, str]]:
    """Every ``(item id, annotator, label)`` of the project, oldest first."""
    rows: list[tuple[str, str, str]] = []
    after = 0
    while page := loop.annotations(after, 1000):
        rows += [(str(a.item_id), a.annotator, a.label) for a in page]
        after = page[-1].id
    return rows

"""Model annotators: LLM judges and registered model versions answering as weak annotators.

``annotate`` runs right after an ingest batch is stored, for its new items routed to review
(audit items excepted: the audit is the unbiased, human-only evidence that certifies the
threshold). Each answer becomes a machine label (``MachineLabel``): ``labelled`` with one of the
project's labels (for ``task: multilabel`` a label set, :func:`parse_set`), ``unparseable``
with the raw answer, or ``failed`` with the error. Machine labels are never annotations: they
do not count toward a task's required annotations, so a machine never resolves an item alone.
Dawid-Skene consensus counts them as the annotator ``machine:<name>`` with its own estimated
skill, and reviewers see them as pre-labels.

A judge that fails (down, too slow, garbage) is asked no more in that batch: one timeout per
batch at most, and the items stay with the humans. There is no job engine yet, so the calls run
on the ingest request (after its transaction), bounded by ``timeout_s`` per call and
``batch_budget_s`` per batch; items past the budget are not asked.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from loopwright.config import ModelAnnotatorConfig
from loopwright.domain import Item, MachineLabel, Route, TaskStatus
from loopwright.learning import featurize, predict_proba_by_label
from loopwright.loop.context import Context
from loopwright.loop.ports import UnitOfWork
from loopwright.privacy import scrub_payload

log = logging.getLogger(__name__)

WORKER_PREFIX = "machine:"  # how consensus names a model annotator
DETAIL_CHARS = 200


class _Outcomes(Protocol):
    @property
    def outcomes(self) -> Sequence[Any]: ...  # each with item_id, duplicate, route


def worker(name: str) -> str:
    """The annotator id a model annotator has in consensus (never a human's name)."""
    return WORKER_PREFIX + name


def parse_label(answer: str, labels: Sequence[str]) -> str | None:
    """The one label ``answer`` names, ignoring case, surrounding whitespace, quotes and a final
    full stop; ``None`` for anything else."""
    text, before = answer.strip(), None
    while text != before:
        before = text
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
            text = text[1:-1].strip()
        text = text.removesuffix(".").strip()
    found = [label for label in labels if label.casefold() == text.casefold()]
    return found[0] if len(found) == 1 else None


def parse_set(answer: str, labels: Sequence[str]) -> str | None:
    """The label set ``answer`` names, as canonical text: a JSON array of labels, or labels
    separated by commas (each read like :func:`parse_label`; ``none`` or ``[]`` is the empty
    set); ``None`` when any part is no label."""
    from loopwright.tasks.multilabel import canonical  # NumPy: loaded on use

    text = answer.strip()
    if not text:
        return None
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if isinstance(found, list) and all(isinstance(x, str) for x in found):
        parts: list[str] = found
    else:
        parts = [p for p in text.strip("[]").split(",") if p.strip()]
        if len(parts) == 1 and parts[0].strip().strip("\"'`.").casefold() == "none":
            parts = []
    named = [parse_label(p, labels) for p in parts]
    return None if any(n is None for n in named) else canonical(n for n in named if n is not None)


def render(template: str, payload: Mapping[str, Any], labels: Sequence[str]) -> str:
    """The prompt: ``{labels}`` the label set, ``{payload}`` the payload as JSON, any other
    placeholder the payload field of that name (names were checked with the config)."""
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in payload.items()}
    values["labels"] = ", ".join(labels)
    values["payload"] = json.dumps(payload, ensure_ascii=False, sort_keys=True)
    return template.format_map(_Blank(values))


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:  # a payload without that field: an empty string
        return ""


def annotate(ctx: Context, report: _Outcomes, actor: str = "system") -> list[MachineLabel]:
    """Ask every configured model annotator about the report's new review items; store and
    return their answers. Never raises for an annotator's failure: it is recorded."""
    annotators = ctx.config.model_annotators
    wanted = [o.item_id for o in report.outcomes if not o.duplicate and o.route is Route.REVIEW]
    if not annotators or not wanted:
        return []
    with ctx.store.unit_of_work() as uow:
        targets = _targets(uow, wanted)
    if not targets:
        return []
    rows: list[dict[str, Any]] = []
    for annotator in annotators:
        if annotator.kind == "chat":
            rows += _ask_chat(ctx, annotator, targets)
        else:
            rows += _ask_version(ctx, annotator, targets)
    with ctx.store.unit_of_work() as uow:
        stored = [uow.machine_labels.add({"project_id": ctx.project.id, **r}) for r in rows]
        for annotator in annotators:
            mine = [s for s in stored if s.annotator == annotator.name]
            counts = Counter(s.status for s in mine)
            failed = next((s.detail for s in mine if s.status == "failed"), None)
            ctx.event(
                uow,
                actor,
                "model_annotator.answered",
                ("model_annotator", annotator.name),
                kind=annotator.kind,
                items=len(targets),
                labelled=counts["labelled"],
                unparseable=counts["unparseable"],
                failed=counts["failed"],
                not_asked=len(targets) - len(mine),
                **({"error": failed} if failed else {}),
            )
    return stored


def _targets(uow: UnitOfWork, item_ids: Sequence[int]) -> list[tuple[Item, int]]:
    """(item, open task id) of the items waiting for review, audit items left out."""
    out = []
    for item in uow.items.get_many(list(item_ids)):
        open_tasks = [t for t in uow.tasks.for_item(item.id) if t.status is TaskStatus.OPEN]
        if open_tasks and open_tasks[-1].reason != "audit":
            out.append((item, open_tasks[-1].id))
    return out


def _row(
    a: ModelAnnotatorConfig,
    model: str,
    item: Item,
    task_id: int,
    label: str | None,
    status: str,
    detail: str | None,
) -> dict[str, Any]:
    return {
        "item_id": item.id,
        "task_id": task_id,
        "annotator": a.name,
        "kind": a.kind,
        "model": model,
        "label": label,
        "status": status,
        "detail": None if detail is None else detail[:DETAIL_CHARS],
    }


def _ask_chat(ctx: Context, a: ModelAnnotatorConfig, targets: list[tuple[Item, int]]) -> list[dict[str, Any]]:
    """One chat call per item; the first failure ends the batch for this annotator."""
    model, labels = str(a.model), a.labels or ctx.labels
    if ctx.chat is None:
        error = "no chat client is installed (open the workspace with loopwright.connect)"
        return [_row(a, model, targets[0][0], targets[0][1], None, "failed", error)]
    rows, deadline = [], time.monotonic() + a.batch_budget_s
    for item, task_id in targets:
        left = deadline - time.monotonic()
        if left <= 0:  # the batch's budget is spent: the rest are not asked (counted in the event)
            break
        messages = [{"role": "system", "content": a.system}] if a.system else []
        messages.append({"role": "user", "content": render(str(a.prompt), _visible(ctx, item), labels)})
        try:
            answer = ctx.chat.complete(str(a.url), model, messages, a.api_key_env, min(a.timeout_s, left))
        except Exception as exc:  # down, too slow, not a chat completion: recorded, then stop asking
            log.warning("model annotator %s failed: %s", a.name, exc)
            rows.append(_row(a, model, item, task_id, None, "failed", f"{type(exc).__name__}: {exc}"))
            break
        label = parse_set(answer, labels) if ctx.config.task == "multilabel" else parse_label(answer, labels)
        status, detail = ("labelled", None) if label else ("unparseable", answer)
        rows.append(_row(a, model, item, task_id, label, status, detail))
    return rows


def _ask_version(
    ctx: Context, a: ModelAnnotatorConfig, targets: list[tuple[Item, int]]
) -> list[dict[str, Any]]:
    """The registered version's predicted label for every item, in one batch."""
    model = f"v{a.version}"
    try:
        with ctx.store.unit_of_work() as uow:
            estimator = ctx.model(uow, uow.models.get(ctx.project.id, int(a.version or 0)))
        X = featurize(ctx.config, [item.payload for item, _ in targets])
        proba = predict_proba_by_label(estimator, X, ctx.labels)
    except Exception as exc:  # unknown version, no artifact, a model that raises: recorded
        log.warning("model annotator %s failed: %s", a.name, exc)
        item, task_id = targets[0]
        return [_row(a, model, item, task_id, None, "failed", f"{type(exc).__name__}: {exc}")]
    from loopwright.tasks.multilabel import decide  # NumPy: loaded on use

    answers, _ = decide(ctx.config.task, ctx.labels, proba)  # multilabel: the set with p ≥ 0.5
    return [
        _row(a, model, item, task_id, answer, "labelled", None)
        for (item, task_id), answer in zip(targets, answers, strict=True)
    ]


def _visible(ctx: Context, item: Item) -> dict[str, Any]:
    """The payload as a human annotator would see it: scrubbed if the store keeps originals."""
    privacy = ctx.config.privacy
    if not (privacy.fields and privacy.keep_original):
        return dict(item.payload)
    return scrub_payload(item.payload, privacy.fields, privacy.kinds)[0]

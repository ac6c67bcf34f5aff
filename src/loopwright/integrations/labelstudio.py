"""Label Studio interop: its JSON export ⇄ loopwright records and annotations. Pure conversion
(the standard library only; Label Studio itself is never imported).

Import (:func:`parse_export`): one record per Label Studio task — ``data`` becomes the payload
(text, an image URL, tabular columns: as given), the task's id and the control it was labelled
with go to ``metadata.label_studio``; the external id is ``meta.loopwright.external_id`` (set by
:func:`to_export`), else the data field named by ``id_field``, else ``ls-<task id>``. Every
annotation that chose something in a ``choices`` result becomes one annotation by
``ls:<email or user id>`` (one per annotator per task: the latest); cancelled (skipped) and
empty ones are counted and left out. Several choices are one set answer, its canonical text
``["a","b"]``, and need a multi-label project. The newest prediction with a score becomes the
record's carried prediction ``{"model": "<name>@<tag>", "probabilities": …}``: the score on its
choice, the rest spread evenly over the other labels.

Export (:func:`to_export`): one task per item with its data, every annotation as one
``choices`` result by its annotator, the champion's prediction with its score, and the resolved
label as a prediction of model version ``loopwright-consensus`` (its score the agreement) plus
``meta.loopwright.resolved``; importing that file again skips the consensus. ``completed_by`` is
the user id or ``{"email": …}`` of ``ls:`` annotators, which Label Studio's import maps back to
its users; other annotators are named in the annotation's ``meta`` only, which loopwright reads
back but Label Studio drops (it credits those annotations to the user who imports).

The ML backend protocol (``/health``, ``/setup``, ``/predict``, ``/webhook``) is served by
:mod:`loopwright.service.routes.labelstudio`; :func:`choices_control` and
:func:`prediction_result` are the parts of it that are conversion.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopwright.errors import Invalid
from loopwright.loop.history import ItemHistory, LabelledItem, PastAnnotation, set_label

ANNOTATOR_PREFIX = "ls:"
CONSENSUS_MODEL = "loopwright-consensus"  # the resolved label, exported as a prediction
DEFAULT_MODEL_NAME = "labelstudio"  # name of a prediction's model whose version is no name@tag
SOURCE = "label-studio"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TAG_CHARS = re.compile(r"[^A-Za-z0-9_.\-+]+")


@dataclass(frozen=True, slots=True)
class Control:
    """A ``<Choices>`` control of a labelling config: where a choice result comes from and goes."""

    from_name: str
    to_name: str
    choices: tuple[str, ...] = ()
    multiple: bool = False


@dataclass(slots=True)
class Parsed:
    """What :func:`parse_export` read, and what it left out (counted)."""

    items: list[LabelledItem] = field(default_factory=list)
    tasks: int = 0
    annotations: int = 0
    cancelled: int = 0  # skipped in Label Studio: no label
    empty: int = 0  # no choice made in the control
    replaced: int = 0  # an earlier annotation by the same annotator on the same task
    predictions: int = 0  # carried with the records
    predictions_skipped: int = 0  # without a score or choice, consensus ones, or on a multi-label project
    annotators: set[str] = field(default_factory=set)


def load(text: str | bytes) -> list[Any]:
    """The tasks of a Label Studio JSON export (a list, or one task object)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise Invalid(f"not a Label Studio JSON export: {exc}") from None
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        raise Invalid(f"a Label Studio JSON export is a list of tasks, not {type(data).__name__}")
    return data


def annotator_of(annotation: Mapping[str, Any]) -> str | None:
    """The loopwright annotator of an annotation: the one :func:`to_export` named in its
    ``meta``, else ``ls:<email>`` or ``ls:<user id>`` of its author; None when unnamed."""
    meta = annotation.get("meta")
    mine = meta.get("loopwright") if isinstance(meta, Mapping) else None
    if isinstance(mine, Mapping) and isinstance(mine.get("annotator"), str) and mine["annotator"]:
        return str(mine["annotator"])
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("email") or who.get("id")
    if who is None or who == "" or isinstance(who, bool):
        return None
    return f"{ANNOTATOR_PREFIX}{who}"


def completed_by(annotator: str) -> int | dict[str, str] | None:
    """What Label Studio's import takes as the author of an ``ls:`` annotator's annotation: the
    user id, or ``{"email": …}``; None for anyone else (Label Studio then credits the importer)."""
    if not annotator.startswith(ANNOTATOR_PREFIX):
        return None
    rest = annotator.removeprefix(ANNOTATOR_PREFIX)
    return int(rest) if rest.isdigit() else {"email": rest}


def choices_control(label_config: Any, from_name: str | None = None) -> Control | None:
    """The ``<Choices>`` control of a labelling config (the one named ``from_name``, else the
    first), or None when there is none; Invalid for a config that is not XML."""
    if not label_config:
        return None
    if not isinstance(label_config, str):
        raise Invalid(f"the labelling config must be XML text, not {type(label_config).__name__}")
    try:
        root = ET.fromstring(label_config)
    except (ET.ParseError, ValueError) as exc:
        raise Invalid(f"the labelling config is not valid XML: {exc}") from None
    for node in root.iter():
        if node.tag.lower() == "choices" and (from_name is None or node.get("name") == from_name):
            values = tuple(c.get("value", "") for c in node.iter() if c.tag.lower() == "choice")
            multiple = node.get("choice", "single").lower() == "multiple"
            return Control(node.get("name", ""), node.get("toName", ""), values, multiple)
    return None


def _choices(result: Any, from_name: str | None) -> tuple[Control | None, list[str] | None, str | None]:
    """(control, choices made, problem) of an annotation's or prediction's ``result``."""
    if not isinstance(result, list):
        return None, None, "result must be a list"
    found = [
        r
        for r in result
        if isinstance(r, Mapping)
        and r.get("type") == "choices"
        and (from_name is None or r.get("from_name") == from_name)
    ]
    names = sorted({str(r.get("from_name")) for r in found})
    if len(names) > 1:
        return None, None, f"choices from several controls {names}: choose one with from_name"
    if not found:
        return None, None, None
    made: list[str] = []
    for r in found:
        value = r.get("value")
        chosen = value.get("choices") if isinstance(value, Mapping) else None
        if not isinstance(chosen, list) or not all(isinstance(c, str) for c in chosen):
            return None, None, "value.choices must be a list of strings"
        made += chosen
    control = Control(str(found[0].get("from_name")), str(found[0].get("to_name", "")))
    return control, made, None


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _model_ref(model_version: Any) -> str:
    """``name@tag`` for a prediction's model version (``labelstudio@<version>`` when it is none)."""
    text = str(model_version or "").strip()
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}@[A-Za-z0-9][A-Za-z0-9_.\-+]{0,199}", text):
        return text
    tag = _TAG_CHARS.sub("-", text).strip("-.+_")[:200] or "unknown"
    return f"{DEFAULT_MODEL_NAME}@{tag}"


def _label(made: list[str], labels: Sequence[str], multilabel: bool) -> tuple[str | None, str | None]:
    """(the answer's label text, problem)."""
    if unknown := sorted(set(made) - set(labels)):
        return None, f"unknown label(s) {unknown}; the project's labels are {list(labels)}"
    if multilabel:
        return set_label(made), None
    if len(set(made)) > 1:
        return None, (
            f"several choices {sorted(set(made))} need a multi-label project (task: multilabel); "
            "this project takes one label per item"
        )
    return made[0], None


def parse_export(
    tasks: Sequence[Any],
    labels: Sequence[str],
    *,
    multilabel: bool = False,
    from_name: str | None = None,
    id_field: str | None = None,
    predictions: bool = True,
) -> Parsed:
    """Records and annotations of Label Studio ``tasks`` (see the module docstring); one
    Invalid naming every problem (unknown label, task without data, …) when any."""
    out = Parsed(tasks=len(tasks))
    errors: list[tuple[str, str]] = []
    seen_ids: dict[str, int] = {}
    for i, task in enumerate(tasks):
        where = f"[{i}]"
        if not isinstance(task, Mapping):
            errors.append((where, f"a task must be an object, not {type(task).__name__}"))
            continue
        data = task.get("data")
        if not isinstance(data, Mapping) or not data:
            errors.append((f"{where}.data", "the task has no data: nothing to label"))
            continue
        ext = _external_id(task, data, id_field)
        if ext is None:
            errors.append(
                (where, "the task has no id" + (f" and no data field {id_field!r}" if id_field else ""))
            )
            continue
        if ext in seen_ids:
            errors.append((where, f"external id {ext!r} also names task [{seen_ids[ext]}]"))
            continue
        seen_ids[ext] = i
        controls: list[Control] = []
        answers = _annotations(task, where, labels, multilabel, from_name, out, errors, controls)
        record: dict[str, Any] = {"external_id": ext, "payload": dict(data)}
        meta: dict[str, Any] = {"task_id": task.get("id")}
        if controls:
            meta |= {"from_name": controls[0].from_name, "to_name": controls[0].to_name}
        record["metadata"] = {"label_studio": meta}
        if predictions:
            carried = _prediction(task, where, labels, multilabel, from_name, out, errors)
            if carried is not None:
                record["prediction"] = carried
        else:
            out.predictions_skipped += len(task.get("predictions") or [])
        out.items.append(LabelledItem(record, tuple(answers)))
    if errors:
        raise Invalid(f"{len(errors)} problem(s) in the Label Studio export; nothing was imported", errors)
    return out


def _external_id(task: Mapping[str, Any], data: Mapping[str, Any], id_field: str | None) -> str | None:
    meta = task.get("meta")
    mine = meta.get("loopwright") if isinstance(meta, Mapping) else None
    if isinstance(mine, Mapping) and mine.get("external_id") not in (None, ""):
        return str(mine["external_id"])
    if id_field is not None:
        value = data.get(id_field)
        return None if value in (None, "") or isinstance(value, bool) else str(value)
    ls_id = task.get("id")
    return None if ls_id in (None, "") or isinstance(ls_id, bool) else f"ls-{ls_id}"


def _annotations(
    task: Mapping[str, Any],
    where: str,
    labels: Sequence[str],
    multilabel: bool,
    from_name: str | None,
    out: Parsed,
    errors: list[tuple[str, str]],
    controls: list[Control],
) -> list[PastAnnotation]:
    found = task.get("annotations") or task.get("completions") or []  # completions: LS < 1.0
    if not isinstance(found, list):
        errors.append((f"{where}.annotations", "must be a list"))
        return []
    answers: dict[str, tuple[datetime, PastAnnotation]] = {}
    for j, ann in enumerate(found):
        at = f"{where}.annotations[{j}]"
        if not isinstance(ann, Mapping):
            errors.append((at, "an annotation must be an object"))
            continue
        out.annotations += 1
        if ann.get("was_cancelled"):
            out.cancelled += 1
            continue
        control, made, problem = _choices(ann.get("result"), from_name)
        if problem:
            errors.append((f"{at}.result", problem))
            continue
        if not made or control is None:
            out.empty += 1
            continue
        label, problem = _label(made, labels, multilabel)
        who = annotator_of(ann)
        if who is None:
            problem = problem or "completed_by is missing: the annotator must be known"
        if problem or label is None or who is None:
            errors.append((at, problem or "unusable"))
            continue
        controls.append(control)
        when = _when(ann.get("updated_at")) or _when(ann.get("created_at")) or EPOCH
        if who in answers:
            out.replaced += 1
            if answers[who][0] > when:
                continue  # an older answer by the same annotator: the newest one counts
        answers[who] = (
            when,
            PastAnnotation(who, label, _when(ann.get("created_at")) or _when(ann.get("updated_at"))),
        )
        out.annotators.add(who)
    return [a for _, a in answers.values()]


def _prediction(
    task: Mapping[str, Any],
    where: str,
    labels: Sequence[str],
    multilabel: bool,
    from_name: str | None,
    out: Parsed,
    errors: list[tuple[str, str]],
) -> dict[str, Any] | None:
    """The record's carried prediction: the newest usable one of the task, or None."""
    found = task.get("predictions") or []
    if not isinstance(found, list):
        errors.append((f"{where}.predictions", "must be a list"))
        return None
    chosen = None
    for j, pred in enumerate(found):
        if not isinstance(pred, Mapping) or pred.get("model_version") == CONSENSUS_MODEL or multilabel:
            out.predictions_skipped += 1
            continue
        _, made, problem = _choices(pred.get("result"), from_name)
        score = pred.get("score")
        if problem or not made or len(set(made)) != 1:
            out.predictions_skipped += 1
            continue
        if made[0] not in labels:
            errors.append(
                (
                    f"{where}.predictions[{j}]",
                    f"unknown label {made[0]!r}; the project's labels are {list(labels)}",
                )
            )
            continue
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
            out.predictions_skipped += 1
            continue
        if chosen is not None:
            out.predictions_skipped += 1
        chosen = (pred, made[0], float(score))
    if chosen is None:
        return None
    pred, label, score = chosen
    rest = (1.0 - score) / (len(labels) - 1)
    probabilities = {lab: (score if lab == label else rest) for lab in labels}
    out.predictions += 1
    return {"model": _model_ref(pred.get("model_version")), "probabilities": probabilities}


# -- export ----------------------------------------------------------------------------------


def choice_result(control: Control, choices: Sequence[str]) -> dict[str, Any]:
    """One ``choices`` result, as Label Studio stores it."""
    return {
        "from_name": control.from_name,
        "to_name": control.to_name,
        "type": "choices",
        "value": {"choices": list(choices)},
    }


def answer_choices(label: str, multilabel: bool) -> list[str]:
    """The choices of a stored answer (a set's canonical text is a JSON list)."""
    return list(json.loads(label)) if multilabel else [label]


def prediction_result(
    control: Control, label: str, score: float, model_version: str, multilabel: bool = False
) -> dict[str, Any]:
    """A Label Studio prediction: one choices result, its score and model version."""
    return {
        "model_version": model_version,
        "score": round(float(score), 6),
        "result": [choice_result(control, answer_choices(label, multilabel))],
    }


def to_export(
    histories: Sequence[ItemHistory], default: Control, multilabel: bool = False
) -> list[dict[str, Any]]:
    """Label Studio tasks for the items (see the module docstring)."""
    return [_task(h, default, multilabel) for h in histories]


def _task(h: ItemHistory, default: Control, multilabel: bool) -> dict[str, Any]:
    ls = h.item.metadata.get("label_studio")
    ls = ls if isinstance(ls, Mapping) else {}
    control = Control(
        str(ls.get("from_name") or default.from_name), str(ls.get("to_name") or default.to_name)
    )
    mine: dict[str, Any] = {"external_id": h.item.external_id, "item_id": h.item.id}
    if ls.get("task_id") is not None:
        mine["label_studio_task_id"] = ls["task_id"]
    annotations = []
    for a in h.annotations:
        ann: dict[str, Any] = {
            "result": [choice_result(control, answer_choices(a.label, multilabel))],
            "was_cancelled": False,
            "ground_truth": False,
            "created_at": a.created_at.isoformat(),
            "meta": {"loopwright": {"annotator": a.annotator}},
        }
        if (who := completed_by(a.annotator)) is not None:
            ann["completed_by"] = who
        annotations.append(ann)
    predictions = []
    if h.prediction is not None and h.prediction.label is not None:
        ref = (
            h.model.ref
            if h.model is not None and h.model.name
            else (f"loopwright@{h.model.ref}" if h.model is not None else "loopwright@unknown")
        )
        predictions.append(
            prediction_result(control, h.prediction.label, h.prediction.confidence or 0.0, ref, multilabel)
        )
    if h.resolution is not None:
        r = h.resolution
        mine["resolved"] = {
            "label": r.label, "method": r.method, "agreement": r.agreement, "n_annotations": r.n_annotations,
        }  # fmt: skip
        predictions.append(prediction_result(control, r.label, r.agreement, CONSENSUS_MODEL, multilabel))
    return {
        "data": dict(h.item.payload),
        "meta": {"loopwright": mine},
        "annotations": annotations,
        "predictions": predictions,
    }

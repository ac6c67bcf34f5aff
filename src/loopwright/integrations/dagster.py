"""Dagster: a resource for the client, assets for dataset and model versions, a sensor on events.

``pip install 'loopwright[dagster]'``. Dagster is imported only here, and this module only talks
to a loopwright server through :class:`loopwright.Client` (REST), so it runs wherever Dagster
runs.

- :class:`LoopwrightResource` — a ``ConfigurableResource`` (``url``, ``token``, ``timeout``)
  whose :meth:`~LoopwrightResource.client` opens a :class:`~loopwright.Client`.
- :func:`dataset_asset` — materialises a dataset version: a fresh snapshot, or the version the
  run config names (``ref``), as a :class:`Dataset` (train rows with labels, eval items without),
  with the dataset version id in its metadata.
- :func:`model_asset` — takes a :class:`Challenger` (trained by your own asset, outside
  loopwright), registers it, uploads its eval predictions and gates it against the champion
  (promoted on a pass); a rerun of a version already gated reports the recorded verdict.
- :func:`event_sensor` — reads the project's event log with a cursor and requests a run for
  ``model.retrain_due``, ``drift.detected`` and ``model.promoted`` (or the actions you name),
  one per action per tick (the newest), keyed ``<project>:evt_<id>``.

Dagster reads the annotations of the functions below to find configs and resources, so this
module does not use postponed annotations.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    Config,
    ConfigurableResource,
    Output,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    asset,
    sensor,
)

from loopwright import wire
from loopwright.client import Client
from loopwright.errors import Conflict

DEFAULT_ACTIONS = ("model.retrain_due", "drift.detected", "model.promoted")
PAGE = 500  # events read per request
MAX_PAGES = 20  # per tick: a sensor far behind catches up over several ticks


class LoopwrightResource(ConfigurableResource):  # type: ignore[misc,unused-ignore]
    """Where the loopwright server is and the token to use: a lead's (a fresh snapshot needs
    one) or a service account's (reading events, registering and gating)."""

    url: str
    token: str | None = None
    timeout: float = 30.0

    def client(self) -> Client:
        return Client(self.url, self.token, timeout=self.timeout)


class DatasetConfig(Config):  # type: ignore[misc,unused-ignore]
    """``ref``: a dataset version (id, prefix ≥ 6, ``latest``); empty: take a fresh snapshot."""

    ref: str = ""


@dataclass(frozen=True)
class Dataset:
    """One dataset version, ready to train on: ``train`` rows carry labels, ``eval`` items not."""

    project: str
    version: str
    parent: str | None
    label_counts: dict[str, int]
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]  # {external_id, payload, embedding?}: score these for the gate


@dataclass(frozen=True)
class Challenger:
    """A version your pipeline trained on ``dataset_version``, with its eval predictions."""

    name: str
    version: str
    dataset_version: str
    predictions: Mapping[str, Mapping[str, float]]  # {external_id: {label: p}} on the eval split
    artifact_uri: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def load_dataset(lw: Client, project: str, ref: str = "") -> Dataset:
    """A dataset version (``ref`` empty: a fresh snapshot) as train rows and eval items."""
    version = lw.snapshot(project).id if not ref else lw.dataset(project, ref).id
    detail = lw.dataset(project, version)
    rows = [json.loads(line) for line in lw.export(project, version, "jsonl").splitlines() if line]
    evals = lw.eval_split(project, version).items
    return Dataset(
        project=project,
        version=version,
        parent=detail.parent_id,
        label_counts=dict(detail.label_counts),
        train=[r for r in rows if r["split"] == "train"],
        eval=[i.model_dump(mode="json", exclude_none=True) for i in evals],
    )


def gate_challenger(lw: Client, project: str, challenger: Challenger) -> wire.GateOutcome:
    """Register, upload and gate ``challenger``; a version already past its gate reports it."""
    try:
        lw.register_model(
            project,
            challenger.name,
            challenger.version,
            artifact_uri=challenger.artifact_uri,
            dataset_version=challenger.dataset_version,
            metadata=dict(challenger.metadata),
        )
    except Conflict:  # registered by an earlier try of this run
        found = [m for m in lw.models(project) if (m.name, m.tag) == (challenger.name, challenger.version)]
        if not found:
            raise
        if found[0].status != "candidate":
            done = found[0]
            return wire.GateOutcome(model=done, gate=done.gate or {}, promoted=done.status == "champion")
    lw.upload_predictions(project, challenger.ref, challenger.predictions)
    return lw.gate(project, challenger.ref)


def dataset_asset(project: str, *, name: str = "dataset", group_name: str = "loopwright") -> AssetsDefinition:
    """An asset holding a :class:`Dataset` of ``project`` (resource key ``loopwright``)."""

    @asset(name=name, group_name=group_name, kinds={"loopwright"})
    def _dataset(
        context: AssetExecutionContext, config: DatasetConfig, loopwright: LoopwrightResource
    ) -> Output[Dataset]:
        with loopwright.client() as lw:
            data = load_dataset(lw, project, config.ref)
        context.log.info(f"dataset version {data.version[:12]} of {project}: {len(data.train)} train rows")
        return Output(
            data,
            metadata={
                "dataset_version": data.version,
                "parent": data.parent or "",
                "train_rows": len(data.train),
                "eval_items": len(data.eval),
                "label_counts": data.label_counts,
            },
        )

    return _dataset


def model_asset(
    project: str, *, name: str = "model", challenger: str = "challenger", group_name: str = "loopwright"
) -> AssetsDefinition:
    """An asset that gates the :class:`Challenger` of asset ``challenger``; its value is the
    gate outcome as JSON (``model``, ``gate``, ``promoted``)."""

    @asset(name=name, group_name=group_name, ins={"trained": AssetIn(challenger)}, kinds={"loopwright"})
    def _model(
        context: AssetExecutionContext, trained: Challenger, loopwright: LoopwrightResource
    ) -> Output[dict[str, Any]]:
        with loopwright.client() as lw:
            outcome = gate_challenger(lw, project, trained)
        gate = outcome.gate
        verdict = "promoted to champion" if outcome.promoted else f"not promoted ({outcome.model.status})"
        context.log.info(f"{trained.ref}: {verdict} — {gate.get('reason', '')}")
        return Output(
            outcome.model_dump(mode="json"),
            metadata={
                "model": trained.ref,
                "model_version": outcome.model.version,
                "status": outcome.model.status,
                "promoted": outcome.promoted,
                "dataset_version": trained.dataset_version,
                **{k: v for k, v in gate.items() if isinstance(v, int | float | str) and v is not None},
            },
        )

    return _model


def dataset_config(asset_name: str = "dataset") -> Callable[[wire.Event], dict[str, Any]]:
    """Run config for :func:`event_sensor`: the dataset asset takes the event's dataset version
    (a ``model.retrain_due`` names one), else a fresh snapshot."""

    def config(event: wire.Event) -> dict[str, Any]:
        ref = str(event.data.get("dataset_version") or "")
        return {"ops": {asset_name: {"config": {"ref": ref}}}}

    return config


def new_events(lw: Client, project: str, after: int, actions: Sequence[str]) -> tuple[list[wire.Event], int]:
    """The newest event per action in ``actions`` after id ``after``, and the new cursor."""
    newest: dict[str, wire.Event] = {}
    for _ in range(MAX_PAGES):
        page = lw.events(project, after=after, limit=PAGE)
        newest |= {e.action: e for e in page.events if e.action in actions}
        moved = page.next_after > after
        after = max(after, page.next_after)
        if not moved or len(page.events) < PAGE:
            break
    return sorted(newest.values(), key=lambda e: e.id), after


def event_sensor(
    project: str,
    target: Any,
    *,
    actions: Sequence[str] = DEFAULT_ACTIONS,
    run_config: Callable[[wire.Event], Mapping[str, Any]] | None = None,
    name: str | None = None,
    minimum_interval_seconds: int = 30,
) -> SensorDefinition:
    """A sensor that requests a run of ``target`` (a job or assets) for the project's events.

    The cursor is the last event id read (start: the beginning of the log; set the cursor to
    skip history). ``run_config(event)`` builds each run's config (see :func:`dataset_config`).
    Each request carries the tags ``loopwright/project``, ``loopwright/event`` and
    ``loopwright/event_id``; its run key makes a request for an event idempotent.
    """
    unknown = [a for a in actions if not isinstance(a, str) or "." not in a]
    if not actions or unknown:
        raise ValueError(f"actions must be event actions such as 'model.retrain_due', not {unknown or '[]'}")

    @sensor(
        name=name or f"loopwright_{project.replace('-', '_')}_events",
        target=target,
        minimum_interval_seconds=minimum_interval_seconds,
    )
    def _sensor(context: SensorEvaluationContext, loopwright: LoopwrightResource) -> Any:
        after = int(context.cursor or 0)
        with loopwright.client() as lw:
            events, cursor = new_events(lw, project, after, actions)
        context.update_cursor(str(cursor))
        if not events:
            return SkipReason(f"no {', '.join(actions)} event in {project} after event {after}")
        return [
            RunRequest(
                run_key=f"{project}:evt_{e.id}",
                run_config=dict(run_config(e)) if run_config else {},
                tags={
                    "loopwright/project": project,
                    "loopwright/event": e.action,
                    "loopwright/event_id": str(e.id),
                },
            )
            for e in events
        ]

    return _sensor

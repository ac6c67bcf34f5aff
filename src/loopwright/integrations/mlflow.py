"""MLflow: every model version as a tracking run, promoted versions in the Model Registry with
an alias on the champion; and, for a model that lives elsewhere, the champion read from an alias.

``pip install 'loopwright[mlflow]'`` (``mlflow-skinny``: the tracking and registry client; a
local ``sqlite:///…`` store or any tracking server). MLflow is imported only here.

:func:`sync` is idempotent (``loopwright mlflow sync``, or call it on ``model.registered`` /
``model.promoted`` events): per loopwright model version one run in experiment
``loopwright/<project>`` (tags ``loopwright.project``, ``loopwright.model_version``), with its
parameters (model ref, kind, dataset version, config hash, seed, artifact URI, metadata), its
numeric metrics and gate evidence (``gate.challenger_accuracy``, ``gate.p_value``, …) as metrics,
and the evidence and the version's record as ``loopwright/gate.json`` and ``model/model.json``.
Every version that was ever promoted becomes a version of registered model ``NAME`` (source:
its artifact URI, else the run's ``model`` folder; tag ``loopwright.ref``), and alias
``champion`` follows loopwright's champion.

:func:`champion_from_alias` goes the other way: the MLflow version an alias names becomes a
registered loopwright version (``<name>@<mlflow version>``, or the ``loopwright.ref`` tag it
carries) and, unless told not to, loopwright's champion — for a project whose production model
is deployed from the MLflow registry.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from loopwright import wire
from loopwright.errors import Invalid, NotFound

if TYPE_CHECKING:
    from loopwright.client import Client
    from loopwright.loop import Loop

TAG_PROJECT = "loopwright.project"
TAG_VERSION = "loopwright.model_version"
TAG_REF = "loopwright.ref"
SYNCED_GATE = "gate.synced"  # a metric: gate evidence was logged once


class Registry(Protocol):
    """What the sync needs of a project: its versions, and registering and promoting one."""

    project: str

    def models(self) -> list[wire.ModelVersion]: ...

    def register(self, name: str, tag: str, artifact_uri: str | None, metadata: dict[str, Any]) -> None: ...

    def promote(self, version: int) -> None: ...


@dataclass
class ClientRegistry:
    """A project over REST (:class:`loopwright.Client`)."""

    client: Client
    project: str

    def models(self) -> list[wire.ModelVersion]:
        return self.client.models(self.project)

    def register(self, name: str, tag: str, artifact_uri: str | None, metadata: dict[str, Any]) -> None:
        self.client.register_model(self.project, name, tag, artifact_uri=artifact_uri, metadata=metadata)

    def promote(self, version: int) -> None:
        self.client.promote(self.project, version)


@dataclass
class LoopRegistry:
    """A project in process (:class:`loopwright.Loop`, as the CLI opens it)."""

    loop: Loop
    actor: str = "mlflow"
    project: str = field(init=False)

    def __post_init__(self) -> None:
        self.project = self.loop.project.name

    def models(self) -> list[wire.ModelVersion]:
        aliases = self.loop.model_aliases()
        return [
            wire.ModelVersion.model_validate(
                dataclasses.asdict(m) | {"status": m.status.value, "aliases": aliases.of(m)}
            )
            for m in self.loop.models()
        ]

    def register(self, name: str, tag: str, artifact_uri: str | None, metadata: dict[str, Any]) -> None:
        self.loop.register_model(name, tag, artifact_uri, None, metadata, actor=self.actor)

    def promote(self, version: int) -> None:
        self.loop.promote(version, self.actor)


@dataclass(frozen=True)
class Synced:
    """Run id per loopwright version, MLflow version per promoted one, the champion's."""

    experiment_id: str
    registered_model: str
    runs: dict[int, str]
    registered: dict[int, str]
    champion: str | None


def _client(tracking_uri: str) -> Any:
    try:
        from mlflow import MlflowClient  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise Invalid("MLflow is not installed: pip install 'loopwright[mlflow]'") from None
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _numbers(prefix: str, values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric (and true/false) values, as MLflow metrics named ``<prefix><key>``."""
    return {
        f"{prefix}{k}": float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and math.isfinite(v)  # bools count as 0/1
    }


def _params(m: wire.ModelVersion) -> dict[str, str]:
    found = m.metrics.get("metadata")
    meta: dict[str, Any] = found if isinstance(found, dict) else {}
    params = {
        "model": f"{m.name}@{m.tag}" if m.name else f"v{m.version}",
        "kind": m.kind,
        "dataset_version": m.dataset_version_id or "",
        "config_hash": m.config_hash,
        "seed": str(m.seed),
        "artifact_uri": m.artifact_uri or "",
    }
    params |= {f"metadata.{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()}
    return {k: v[:6000] for k, v in params.items()}


def _run(client: Any, experiment_id: str, project: str, m: wire.ModelVersion) -> tuple[str, bool]:
    """The run of version ``m`` (found by its tags) and whether it is new."""
    query = f"tags.`{TAG_PROJECT}` = '{project}' and tags.`{TAG_VERSION}` = '{m.version}'"
    found = client.search_runs([experiment_id], filter_string=query, max_results=1)
    if found:
        return str(found[0].info.run_id), False
    tags = {TAG_PROJECT: project, TAG_VERSION: str(m.version), "mlflow.runName": _ref(m)}
    run = client.create_run(experiment_id, tags=tags)
    return str(run.info.run_id), True


def _ref(m: wire.ModelVersion) -> str:
    return f"{m.name}@{m.tag}" if m.name else f"v{m.version}"


def _log_version(client: Any, run_id: str, new: bool, m: wire.ModelVersion) -> None:
    from mlflow.entities import Metric, Param, RunTag  # type: ignore[import-not-found,unused-ignore]

    run = client.get_run(run_id)
    at = int(m.created_at.timestamp() * 1000)
    params = [Param(k, v) for k, v in _params(m).items()] if new else []
    metrics = [Metric(k, v, at, 0) for k, v in _numbers("", m.metrics).items() if k not in run.data.metrics]
    if m.gate is not None and SYNCED_GATE not in run.data.metrics:
        gate = _numbers("gate.", m.gate) | {SYNCED_GATE: 1.0}
        metrics += [Metric(k, v, at, 0) for k, v in gate.items()]
        client.log_dict(run_id, m.gate, "loopwright/gate.json")
    tags = [RunTag("loopwright.status", m.status), RunTag("loopwright.aliases", ",".join(m.aliases))]
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    client.log_dict(run_id, m.model_dump(mode="json"), "model/model.json")
    if run.info.status != "FINISHED":
        client.set_terminated(run_id, "FINISHED")


def _registered_version(client: Any, name: str, m: wire.ModelVersion, run_id: str) -> str:
    """The MLflow version of loopwright version ``m`` under ``name``, created if missing."""
    for mv in client.search_model_versions(f"name = '{name}'"):
        if mv.tags.get(TAG_VERSION) == str(m.version):
            return str(mv.version)
    source = m.artifact_uri or f"{client.get_run(run_id).info.artifact_uri}/model"
    tags = {TAG_VERSION: str(m.version), TAG_REF: _ref(m)}
    created = client.create_model_version(name, source, run_id=run_id, tags=tags)
    return str(created.version)


def sync(
    registry: Registry,
    tracking_uri: str,
    registered_model: str | None = None,
    experiment: str | None = None,
    alias: str = "champion",
) -> Synced:
    """Log every version's run, register every promoted version, move ``alias`` to the champion."""
    client = _client(tracking_uri)
    project = registry.project
    models = registry.models()
    name = registered_model or _default_name(project, models)
    exp_name = experiment or f"loopwright/{project}"
    found = client.get_experiment_by_name(exp_name)
    experiment_id = str(found.experiment_id if found else client.create_experiment(exp_name))
    runs: dict[int, str] = {}
    for m in models:
        run_id, new = _run(client, experiment_id, project, m)
        _log_version(client, run_id, new, m)
        runs[m.version] = run_id
    promoted = [m for m in models if m.promoted_at is not None]
    registered: dict[int, str] = {}
    if promoted:
        try:
            client.get_registered_model(name)
        except Exception:  # MLflow raises its RestException for a missing name
            client.create_registered_model(name, tags={TAG_PROJECT: project})
        for m in promoted:
            registered[m.version] = _registered_version(client, name, m, runs[m.version])
    champion = next((m for m in models if "champion" in m.aliases), None)
    mlflow_champion = None if champion is None else registered.get(champion.version)
    if mlflow_champion is not None:
        client.set_registered_model_alias(name, alias, mlflow_champion)
    return Synced(experiment_id, name, runs, registered, mlflow_champion)


def _default_name(project: str, models: list[wire.ModelVersion]) -> str:
    """The external models' one name if they share it, else ``loopwright-<project>``."""
    names = {m.name for m in models if m.name}
    return names.pop() if len(names) == 1 else f"loopwright-{project}"


def champion_from_alias(
    registry: Registry,
    tracking_uri: str,
    registered_model: str,
    alias: str = "champion",
    promote: bool = True,
) -> wire.ModelVersion:
    """The loopwright version for the MLflow version ``registered_model@alias`` (registered here
    if new, with its source as artifact URI), made champion unless ``promote`` is False."""
    client = _client(tracking_uri)
    try:
        mv = client.get_model_version_by_alias(registered_model, alias)
    except Exception as exc:  # MLflow's RestException: no such model or alias
        raise NotFound(
            f"MLflow has no version of {registered_model!r} with alias {alias!r} at {tracking_uri}: "
            f"{str(exc).splitlines()[0]}"
        ) from None
    ref = mv.tags.get(TAG_REF) or f"{registered_model}@{mv.version}"
    name, _, tag = ref.rpartition("@")

    def find() -> wire.ModelVersion | None:
        return next((m for m in registry.models() if (m.name, m.tag) == (name, tag)), None)

    found = find()
    if found is None:
        meta = {
            "mlflow": {
                "name": registered_model,
                "version": str(mv.version),
                "run_id": mv.run_id,
                "alias": alias,
            }
        }
        registry.register(name, tag, mv.source, meta)
        found = find()
        assert found is not None
    if promote and "champion" not in found.aliases:
        registry.promote(found.version)
        found = find()
        assert found is not None
    return found

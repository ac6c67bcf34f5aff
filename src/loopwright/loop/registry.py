"""The model registry: aliases, rollback and per-environment deployment manifests.

Aliases. ``champion`` is the version with status champion. ``previous`` is replayed from the
event log, not from ``promoted_at``: every ``model.promoted`` event pushes its version on a
stack of champions and every ``model.rolled_back`` pops one, so ``previous`` is the champion
that the current one replaced when it last became champion. Rolling back twice from v3 (which
replaced v2, which replaced v1) gives v2, then v1 — never the version just rolled back from; and
a model promoted after a rollback to v2 has v2, not the rolled-back v3, as its ``previous``.

Deployment manifests. Given a deploy directory, promotion and rollback write
``<deploy_dir>/<env>/<project>.json`` (env ∈ dev, staging, prod), atomically, after the database
transaction committed: the database is the truth, the files follow it (a GitOps tool such as
Argo CD can watch them). Promotion always writes ``dev``, plus the environments asked for;
rollback writes ``dev``, the environments asked for, and every environment whose manifest names
the version rolled back from.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from loopwright.domain import ModelStatus, ModelVersion
from loopwright.errors import Conflict, Invalid, NotFound
from loopwright.loop.context import Context
from loopwright.loop.datasets import write_atomic
from loopwright.loop.ports import UnitOfWork
from loopwright.loop.retrain import promote_in

ENVIRONMENTS = ("dev", "staging", "prod")
MANIFEST_FORMAT = "loopwright.deployment/1"


@dataclass(frozen=True, slots=True)
class Aliases:
    champion: ModelVersion | None
    previous: ModelVersion | None

    def of(self, version: ModelVersion) -> list[str]:
        """The aliases naming ``version``."""
        return [
            name
            for name, v in (("champion", self.champion), ("previous", self.previous))
            if v is not None and v.id == version.id
        ]


@dataclass(frozen=True, slots=True)
class Deployment:
    """The champion after a promotion or rollback, the one it replaced, the manifests written."""

    model: ModelVersion
    replaced: ModelVersion | None
    manifests: tuple[Path, ...]


def _previous_version(log: Sequence[tuple[str, int]], champion: int | None) -> int | None:
    stack: list[int] = []
    for action, version in log:
        if action == "model.promoted":
            if not stack or stack[-1] != version:
                stack.append(version)
        else:  # model.rolled_back: its subject is the version champion again
            if stack:
                stack.pop()
            if not stack or stack[-1] != version:
                stack.append(version)
    return next((v for v in reversed(stack[:-1]) if v != champion), None)


def _aliases(uow: UnitOfWork, project_id: int) -> Aliases:
    champion = uow.models.champion(project_id)
    prev = _previous_version(uow.models.champion_log(project_id), champion.version if champion else None)
    return Aliases(champion, None if prev is None else uow.models.get(project_id, prev))


def aliases(ctx: Context) -> Aliases:
    with ctx.store.unit_of_work() as uow:
        return _aliases(uow, ctx.project.id)


def resolve(uow: UnitOfWork, project_id: int, ref: int | str) -> ModelVersion:
    """A model version by number (``3``, ``v3``), alias (``champion``, ``previous``) or, for one
    that lives elsewhere, ``name@version``."""
    if isinstance(ref, str) and "@" in ref:
        name, _, tag = ref.strip().rpartition("@")
        found = uow.models.by_ref(project_id, name, tag) if name and tag else None
        if found is None:
            raise NotFound(
                f"model {ref.strip()} is not registered in this project (see `loopwright models list`)"
            )
        return found
    text = str(ref).strip().lower()
    if text in ("champion", "previous"):
        found = getattr(_aliases(uow, project_id), text)
        if found is None:
            raise NotFound(f"the project has no {text} model version yet (see `loopwright models list`)")
        return found
    number = text.removeprefix("v")
    if not number.isdigit():
        raise Invalid(f"model version {ref!r} is neither a number (3, v3) nor an alias (champion, previous)")
    try:
        return uow.models.get(project_id, int(number))
    except NotFound:
        raise NotFound(
            f"model version {int(number)} does not exist in this project (see `loopwright models list`)"
        ) from None


def get(ctx: Context, ref: int | str) -> ModelVersion:
    with ctx.store.unit_of_work() as uow:
        return resolve(uow, ctx.project.id, ref)


def _envs(envs: Iterable[str]) -> list[str]:
    asked = {e.strip().lower() for e in envs}
    if unknown := sorted(asked - set(ENVIRONMENTS)):
        raise Invalid(f"unknown environment(s) {unknown}: choose from {', '.join(ENVIRONMENTS)}")
    return [e for e in ENVIRONMENTS if e in asked or e == "dev"]


def manifest(ctx: Context, uow: UnitOfWork, model: ModelVersion, env: str) -> dict[str, Any]:
    """What ``<deploy_dir>/<env>/<project>.json`` says about the deployed champion."""
    artifact = uow.models.artifact(model.id)
    body: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "project": ctx.project.name,
        "environment": env,
        "model_version": model.version,
        "model_id": model.id,
        "dataset_version": model.dataset_version_id,
        "config_hash": model.config_hash,
        "seed": model.seed,
        "artifact_sha256": hashlib.sha256(artifact).hexdigest() if artifact else None,
        "promoted_at": None if model.promoted_at is None else model.promoted_at.astimezone(UTC).isoformat(),
    }
    if model.kind == "external":  # where a model that lives elsewhere keeps its artifact
        body |= {"kind": model.kind, "model": model.ref, "artifact_uri": model.artifact_uri}
    return body


def _write(ctx: Context, deploy_dir: Path, manifests: dict[str, dict[str, Any]]) -> tuple[Path, ...]:
    written = []
    for env, body in manifests.items():
        path = Path(deploy_dir) / env / f"{ctx.project.name}.json"
        write_atomic(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        written.append(path)
    return tuple(written)


def _deployed_envs(ctx: Context, deploy_dir: Path, model_id: int) -> set[str]:
    """The environments whose manifest currently names ``model_id``."""
    found = set()
    for env in ENVIRONMENTS:
        path = Path(deploy_dir) / env / f"{ctx.project.name}.json"
        try:
            if json.loads(path.read_text(encoding="utf-8")).get("model_id") == model_id:
                found.add(env)
        except (OSError, ValueError, AttributeError):
            continue
    return found


def deploy(
    ctx: Context,
    deploy_dir: Path,
    envs: Iterable[str] = (),
    version: int | str | None = None,
    actor: str = "system",
) -> Deployment:
    """Promote ``version`` (unless it is the champion already; None: the champion) and write its
    manifests for ``dev`` and ``envs``. Rejected: Conflict; unknown: NotFound; nothing is written."""
    targets = _envs(envs)
    with ctx.store.unit_of_work() as uow:
        replaced = None
        if version is None:
            model = uow.models.champion(ctx.project.id)
            if model is None:
                raise NotFound("the project has no champion to deploy: train one or name a version")
        else:
            model = resolve(uow, ctx.project.id, version)
            if model.status is not ModelStatus.CHAMPION:
                replaced = uow.models.champion(ctx.project.id)
            model = promote_in(ctx, uow, model, actor)
        bodies = {env: manifest(ctx, uow, model, env) for env in targets}
    paths = _write(ctx, deploy_dir, bodies)
    _record(ctx, actor, model, targets, paths)
    return Deployment(model, replaced, paths)


def rollback(
    ctx: Context, actor: str = "system", deploy_dir: Path | None = None, envs: Iterable[str] = ()
) -> Deployment:
    """Make the ``previous`` version champion again and retire the current one."""
    targets = _envs(envs)
    bodies: dict[str, dict[str, Any]] = {}
    with ctx.store.unit_of_work() as uow:
        found = _aliases(uow, ctx.project.id)
        current, previous = found.champion, found.previous
        if current is None:
            raise Conflict("nothing to roll back: the project has no champion model")
        if previous is None:
            raise Conflict(
                f"cannot roll back: champion v{current.version} is the first champion, there is no "
                "previous version (promote another one with `loopwright models promote V`)"
            )
        if previous.status is ModelStatus.REJECTED:  # unreachable unless edited by hand
            raise Conflict(f"cannot roll back to v{previous.version}: it was rejected by its gate")
        uow.models.set_status(current.id, ModelStatus.RETIRED)
        model = uow.models.set_status(previous.id, ModelStatus.CHAMPION, promoted_at=ctx.clock())
        ctx.event(
            uow,
            actor,
            "model.rolled_back",
            ("model_version", model.version),
            before=current.version,
            after=model.version,
            before_id=current.id,
            after_id=model.id,
        )
        if deploy_dir is not None:
            targets = [
                e for e in ENVIRONMENTS if e in targets or e in _deployed_envs(ctx, deploy_dir, current.id)
            ]
            bodies = {env: manifest(ctx, uow, model, env) for env in targets}
    paths: tuple[Path, ...] = ()
    if deploy_dir is not None:
        paths = _write(ctx, deploy_dir, bodies)
        _record(ctx, actor, model, targets, paths)
    return Deployment(model, current, paths)


def _record(ctx: Context, actor: str, model: ModelVersion, envs: list[str], paths: Sequence[Path]) -> None:
    with ctx.store.unit_of_work() as uow:
        ctx.event(
            uow,
            actor,
            "model.deployed",
            ("model_version", model.version),
            model_id=model.id,
            environments=envs,
            manifests=[str(p) for p in paths],
        )


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """The Wilson score interval (95 % by default) of a proportion; None when ``n`` is 0."""
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def evidence(model: ModelVersion) -> dict[str, Any] | None:
    """The gate evidence of a version, with a 95 % Wilson interval of its eval accuracy."""
    if model.gate is None:
        return None
    gate = dict(model.gate)
    n = int(gate.get("n_eval") or 0)
    acc = gate.get("challenger_accuracy")
    interval = None if acc is None else wilson(round(float(acc) * n), n)
    return {**gate, "accuracy_interval_95": None if interval is None else list(interval)}

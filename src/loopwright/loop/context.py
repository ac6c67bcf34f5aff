"""What every use case of one project needs: the store, the validated config, a clock, models."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopwright.config import ProjectConfig
from loopwright.domain import ModelVersion, Project
from loopwright.errors import NotFitted
from loopwright.learning import ProbabilisticModel, load_model
from loopwright.loop.ports import Store, UnitOfWork

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    store: Store
    project: Project
    config: ProjectConfig
    clock: Clock = utc_now
    models: dict[int, ProbabilisticModel] = field(default_factory=dict)  # by model version id

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def model(self, uow: UnitOfWork, version: ModelVersion) -> ProbabilisticModel:
        """The estimator of a model version, loaded once per process."""
        if version.id not in self.models:
            blob = uow.models.artifact(version.id)
            if not blob:
                raise NotFitted(
                    f"model version {version.version} was registered in another process without an "
                    "artifact; register it again with Loop.use_model()"
                )
            self.models[version.id] = load_model(blob)
        return self.models[version.id]

    def event(self, uow: UnitOfWork, actor: str, action: str, subject: tuple[str, Any], **data: Any) -> None:
        uow.events.add(self.project.id, actor, action, subject[0], str(subject[1]), data)

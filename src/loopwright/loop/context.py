"""What every use case of one project needs: the store, the validated config, a clock, models."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from loopwright.config import ProjectConfig
from loopwright.domain import ModelVersion, Project
from loopwright.errors import NotFitted
from loopwright.learning import ProbabilisticModel, load_model
from loopwright.loop.ports import ChatClient, Scorer, Store, UnitOfWork

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Builds the scorer of a ``model.kind`` that lives at the edge (``http``: a served model); the
# faces install them by kind, so the use cases never import the integrations.
ScorerFactory = Callable[["Context", UnitOfWork], Scorer]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    store: Store
    project: Project
    config: ProjectConfig
    clock: Clock = utc_now
    models: dict[int, ProbabilisticModel] = field(default_factory=dict)  # by model version id
    scorers: Mapping[str, ScorerFactory] = field(default_factory=dict)  # by model.kind
    chat: ChatClient | None = None  # model annotators of kind chat (installed by the faces)

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def model(self, uow: UnitOfWork, version: ModelVersion) -> ProbabilisticModel:
        """The estimator of a model version, loaded once per process."""
        if version.id not in self.models:
            blob = uow.models.artifact(version.id)
            if not blob:
                raise NotFitted(
                    f"model version {version.version} has no stored artifact (use_model with "
                    "persist=False in another process, or a model trained elsewhere); store one with "
                    "Loop.use_model(), trusting your own types in model.trusted_types"
                )
            self.models[version.id] = load_model(blob, self.config.model.trusted_types)
        return self.models[version.id]

    def event(self, uow: UnitOfWork, actor: str, action: str, subject: tuple[str, Any], **data: Any) -> None:
        uow.events.add(self.project.id, actor, action, subject[0], str(subject[1]), data)

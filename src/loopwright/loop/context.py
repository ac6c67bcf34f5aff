"""What every use case of one project needs: the store, the validated config, a clock, models."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopwright.domain import ModelVersion, Project
from loopwright.errors import NotFitted
from loopwright.loop.ports import ChatClient, Scorer, Store, UnitOfWork

if TYPE_CHECKING:
    from loopwright.config import ProjectConfig
    from loopwright.learning.estimators import ProbabilisticModel

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Builds the scorer of a ``model.kind`` that lives at the edge (``http``: a served model); the
# faces install them by kind, so the use cases never import the integrations.
ScorerFactory = Callable[["Context", UnitOfWork], Scorer]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ModelCache:
    """Loaded estimators by model version id: an LRU that a :class:`Workspace` shares with every
    ``Loop`` it opens (one per process in the server, so a request-scoped ``Loop`` does not reload
    the champion's artifact), safe across threads. A version's artifact never changes, so the id
    is the key: a promotion in another process shows up as a new champion id, loaded once on the
    next request that sees it."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._models: OrderedDict[int, ProbabilisticModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}

    def __contains__(self, version_id: object) -> bool:
        with self._lock:
            return version_id in self._models

    def __getitem__(self, version_id: int) -> ProbabilisticModel:
        with self._lock:
            self._models.move_to_end(version_id)
            return self._models[version_id]

    def __setitem__(self, version_id: int, model: ProbabilisticModel) -> None:
        with self._lock:
            self._models[version_id] = model
            self._models.move_to_end(version_id)
            while len(self._models) > self.size:
                self._models.popitem(last=False)

    def __len__(self) -> int:
        return len(self._models)

    def get_or_load(self, version_id: int, load: Callable[[], ProbabilisticModel]) -> ProbabilisticModel:
        """The cached model, or ``load()`` once (threads asking for the same id wait for it)."""
        with self._lock:
            if version_id in self._models:
                self._models.move_to_end(version_id)
                return self._models[version_id]
            gate = self._loading.setdefault(version_id, threading.Lock())
        with gate:
            with self._lock:
                if version_id in self._models:
                    return self._models[version_id]
            model = load()
            self[version_id] = model
        with self._lock:
            self._loading.pop(version_id, None)
        return model


@dataclass
class Context:
    store: Store
    project: Project
    config: ProjectConfig
    clock: Clock = utc_now
    cache: ModelCache | None = None  # loaded models; default: this Context's own
    scorers: Mapping[str, ScorerFactory] = field(default_factory=dict)  # by model.kind
    chat: ChatClient | None = None  # model annotators of kind chat (installed by the faces)

    def __post_init__(self) -> None:
        if self.cache is None:
            self.cache = ModelCache()

    @property
    def models(self) -> ModelCache:
        """Loaded estimators by model version id (``ctx.models[version.id] = model`` installs one)."""
        assert self.cache is not None
        return self.cache

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    def model(self, uow: UnitOfWork, version: ModelVersion) -> ProbabilisticModel:
        """The estimator of a model version, loaded once per process (:class:`ModelCache`)."""

        def load() -> ProbabilisticModel:
            from loopwright.learning.artifact import load_model  # skops and scikit-learn

            blob = uow.models.artifact(version.id)
            if not blob:
                raise NotFitted(
                    f"model version {version.version} has no stored artifact (use_model with "
                    "persist=False in another process, or a model trained elsewhere); store one with "
                    "Loop.use_model(), trusting your own types in model.trusted_types"
                )
            return load_model(blob, self.config.model.trusted_types)

        return self.models.get_or_load(version.id, load)

    def event(self, uow: UnitOfWork, actor: str, action: str, subject: tuple[str, Any], **data: Any) -> None:
        uow.events.add(self.project.id, actor, action, subject[0], str(subject[1]), data)

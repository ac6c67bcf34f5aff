"""One error tree. Each class has a stable ``code``; faces map classes to statuses in one table."""

from __future__ import annotations


class LoopwrightError(Exception):
    """Base of every error loopwright raises on purpose."""

    code = "loopwright_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(LoopwrightError):
    """A named thing (project, item, task, version) does not exist."""

    code = "not_found"


class Conflict(LoopwrightError):
    """The request clashes with the current state (lease held by someone else, already done)."""

    code = "conflict"


class LeaseExpired(Conflict):
    """The annotator's lease on a task ran out before the submission arrived."""

    code = "lease_expired"


class Paused(Conflict):
    """The annotator's gold accuracy on a tier fell below the threshold: no work there for now."""

    code = "paused"


class Capped(Conflict):
    """A fatigue cap (per hour, per session) is reached; the message says when work may resume."""

    code = "capped"


class Invalid(LoopwrightError):
    """Input failed validation; ``errors`` lists each problem as ``(field, message)``."""

    code = "invalid"

    def __init__(self, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        self.errors = errors or []
        if self.errors:
            message = message + "\n" + "\n".join(f"  - {f}: {m}" for f, m in self.errors)
        super().__init__(message)


class TooFewLabels(Invalid):
    """Too few training labels to retrain: the audit and evaluation shares are not trained on,
    so a retrain due by its count of resolved labels may still have to wait for more."""


class UnknownLabel(Invalid):
    """A label outside the project's label set."""

    code = "unknown_label"


class NotFitted(LoopwrightError):
    """A component was used before ``fit``; or a project has no champion model yet."""

    code = "not_fitted"


class StoreUnavailable(LoopwrightError):
    """The database could not be reached after retrying."""

    code = "store_unavailable"


class ModelUnavailable(LoopwrightError):
    """A served model could not be reached in time, or answered something that is not a usable
    prediction; items it should have scored go to review with reason ``model_unavailable``."""

    code = "model_unavailable"


def by_code() -> dict[str, type[LoopwrightError]]:
    """Every error class of this module by its stable ``code``: what a REST error body names."""
    found: dict[str, type[LoopwrightError]] = {}
    todo: list[type[LoopwrightError]] = [LoopwrightError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == __name__:  # not the faces' own errors (401, 403, unreachable, …)
            found[cls.code] = cls
            todo.extend(cls.__subclasses__())
    return found

"""Airflow: a hook for the client, a sensor that waits for new labels or drift, and operators
for the pipeline steps (snapshot, export, register a challenger, gate/promote).

``pip install 'loopwright[airflow]'`` (Airflow 3; its own virtualenv is best, as it pins an
older FastAPI than ``loopwright[service]``). Airflow is imported only here; everything talks to
a loopwright server over REST through connection ``loopwright_default`` (or ``conn_id``): host
(``http://host`` or a bare host, with ``schema`` http/https), port, and the token as password,
e.g. ``AIRFLOW_CONN_LOOPWRIGHT_DEFAULT='{"conn_type": "http", "host": "127.0.0.1",
"port": 8000, "password": "<token>"}'``.

- :class:`LoopwrightSensor` — done when ``min_new_labels`` labels were resolved since the
  champion's training data (its dataset version; all labels if it has none), or, with
  ``drift=True``, when the last drift check found drift after the champion was promoted.
  Its XCom: ``{"trigger", "new_labels", "drift"}``.
- :class:`LoopwrightSnapshotOperator` — a new dataset version; XCom: its id.
- :class:`LoopwrightExportOperator` — a dataset version to ``path`` (jsonl/csv/parquet) and,
  with ``eval_path``, its evaluation split (ids and payloads, no labels) as JSONL.
- :class:`LoopwrightRegisterChallengerOperator` — registers ``name@version`` with its dataset
  version and uploads its eval predictions (JSONL ``{external_id, probabilities}``).
- :class:`LoopwrightPromoteOperator` — gates the challenger (promoted on a pass; a rejection
  fails the task only with ``fail_on_reject``), or with ``gate=False`` promotes it by hand.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

try:  # Airflow 3: the task SDK
    from airflow.sdk import BaseHook, BaseOperator, BaseSensorOperator, PokeReturnValue
except ImportError:  # Airflow 2.x
    from airflow.hooks.base import BaseHook  # type: ignore[no-redef,unused-ignore]
    from airflow.models import BaseOperator  # type: ignore[no-redef,unused-ignore]
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore[no-redef,unused-ignore]

from loopwright.client import Client
from loopwright.errors import Conflict, Invalid

DEFAULT_CONN = "loopwright_default"


class LoopwrightHook(BaseHook):  # type: ignore[misc,unused-ignore]
    """A :class:`loopwright.Client` from an Airflow connection."""

    conn_name_attr = "conn_id"
    default_conn_name = DEFAULT_CONN
    conn_type = "http"
    hook_name = "loopwright"

    def __init__(self, conn_id: str = DEFAULT_CONN, timeout: float = 60.0) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.timeout = timeout

    def get_conn(self) -> Client:
        conn = self.get_connection(self.conn_id)
        host = str(conn.host or "")
        if not host:
            raise Invalid(f"Airflow connection {self.conn_id!r} has no host: set the loopwright server's URL")
        url = host if "://" in host else f"{conn.schema or 'http'}://{host}"
        if conn.port:
            url = f"{url}:{conn.port}"
        return Client(url, conn.password or None, timeout=self.timeout)


class _LoopwrightOperator(BaseOperator):  # type: ignore[misc,unused-ignore]
    template_fields: Sequence[str] = ("project",)

    def __init__(self, *, project: str, conn_id: str = DEFAULT_CONN, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.project = project
        self.conn_id = conn_id

    def client(self) -> Client:
        return LoopwrightHook(self.conn_id).get_conn()


class LoopwrightSnapshotOperator(_LoopwrightOperator):
    """Snapshot the resolved labels into a new dataset version; returns its id."""

    def execute(self, context: Any) -> str:
        with self.client() as lw:
            version = lw.snapshot(self.project)
        self.log.info("dataset version %s of %s: %d items", version.id[:12], self.project, version.n_items)
        return version.id


class LoopwrightExportOperator(_LoopwrightOperator):
    """Write dataset version ``ref`` to ``path`` (and its eval split to ``eval_path``)."""

    template_fields: Sequence[str] = ("project", "ref", "path", "eval_path")

    def __init__(
        self,
        *,
        ref: str = "latest",
        path: str,
        fmt: str = "jsonl",
        eval_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ref, self.path, self.fmt, self.eval_path = ref, path, fmt, eval_path

    def execute(self, context: Any) -> dict[str, Any]:
        if self.fmt not in ("jsonl", "csv", "parquet"):
            raise Invalid(f"fmt must be jsonl, csv or parquet, not {self.fmt!r}")
        with self.client() as lw:
            version = lw.dataset(self.project, self.ref).id
            blob = lw.export(self.project, version, self.fmt)  # type: ignore[arg-type]
            evals = lw.eval_split(self.project, version).items if self.eval_path else []
        out = {"dataset_version": version, "path": _write(self.path, blob)}
        out["sha256"] = hashlib.sha256(blob).hexdigest()
        if self.eval_path:
            lines = "".join(json.dumps(i.model_dump(mode="json", exclude_none=True)) + "\n" for i in evals)
            out["eval_path"] = _write(self.eval_path, lines.encode("utf-8"))
        return out


class LoopwrightRegisterChallengerOperator(_LoopwrightOperator):
    """Register ``model`` (``name@version``) trained on ``dataset_version`` and upload its
    predictions on the eval split from ``predictions_path``; returns its version number."""

    template_fields: Sequence[str] = (
        "project",
        "model",
        "dataset_version",
        "predictions_path",
        "artifact_uri",
    )

    def __init__(
        self,
        *,
        model: str,
        dataset_version: str,
        predictions_path: str,
        artifact_uri: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model, self.dataset_version, self.predictions_path = model, dataset_version, predictions_path
        self.artifact_uri, self.metadata = artifact_uri, dict(metadata or {})

    def execute(self, context: Any) -> int:
        name, at, tag = self.model.rpartition("@")
        if not at or not name:
            raise Invalid(f"model must be <name>@<version>, not {self.model!r}")
        predictions = read_predictions(Path(self.predictions_path))
        with self.client() as lw:
            try:
                registered = lw.register_model(
                    self.project, name, tag, self.artifact_uri, self.dataset_version, self.metadata
                )
            except Conflict:  # a retry of this task: registered already
                registered = next(m for m in lw.models(self.project) if (m.name, m.tag) == (name, tag))
            if registered.status == "candidate":
                lw.upload_predictions(self.project, self.model, predictions)
        return registered.version


class LoopwrightPromoteOperator(_LoopwrightOperator):
    """Gate ``model`` against the champion (promoted on a pass), or promote it by hand."""

    template_fields: Sequence[str] = ("project", "model")

    def __init__(self, *, model: str, gate: bool = True, fail_on_reject: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model, self.gate, self.fail_on_reject = model, gate, fail_on_reject

    def execute(self, context: Any) -> dict[str, Any]:
        with self.client() as lw:
            if self.gate:
                outcome = lw.gate(self.project, self.model)
                promoted, body = outcome.promoted, outcome.model_dump(mode="json")
                reason = str(outcome.gate.get("reason", ""))
            else:
                version = next(m.version for m in lw.models(self.project) if _ref(m) == self.model)
                model = lw.promote(self.project, version)
                promoted, body, reason = (
                    True,
                    {"model": model.model_dump(mode="json"), "promoted": True},
                    "by hand",
                )
        self.log.info("%s: %s (%s)", self.model, "promoted" if promoted else "rejected", reason)
        if not promoted and self.fail_on_reject:
            raise Invalid(f"{self.model} was rejected by the gate: {reason}")
        return body


class LoopwrightSensor(BaseSensorOperator):  # type: ignore[misc,unused-ignore]
    """Wait until ``min_new_labels`` new resolved labels (and/or, with ``drift``, detected drift)."""

    template_fields: Sequence[str] = ("project",)

    def __init__(
        self,
        *,
        project: str,
        min_new_labels: int | None = None,
        drift: bool = False,
        conn_id: str = DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        if min_new_labels is None and not drift:
            raise ValueError("LoopwrightSensor waits for something: give min_new_labels=N and/or drift=True")
        if min_new_labels is not None and min_new_labels < 1:
            raise ValueError(f"min_new_labels must be at least 1, not {min_new_labels}")
        super().__init__(**kwargs)
        self.project, self.min_new_labels, self.drift, self.conn_id = project, min_new_labels, drift, conn_id

    def poke(self, context: Any) -> PokeReturnValue:
        with LoopwrightHook(self.conn_id).get_conn() as lw:
            state = new_labels_and_drift(lw, self.project, self.min_new_labels)
        labels_due = self.min_new_labels is not None and state["new_labels"] >= self.min_new_labels
        drift_due = self.drift and state["drift"]
        trigger = "labels" if labels_due else "drift" if drift_due else None
        self.log.info("%s: %d new labels, drift %s", self.project, state["new_labels"], state["drift"])
        return PokeReturnValue(is_done=trigger is not None, xcom_value={"trigger": trigger, **state})


def new_labels_and_drift(lw: Client, project: str, enough: int | None) -> dict[str, Any]:
    """Labels resolved since the champion's dataset version (counted up to ``enough``) and
    whether the last drift check, after the champion's promotion, found drift."""
    champion = next((m for m in lw.models(project) if "champion" in m.aliases), None)
    after = 0
    if champion is not None and champion.dataset_version_id:
        entries = lw.dataset(project, champion.dataset_version_id).entries
        after = max((e.resolution_id or 0 for e in entries), default=0)
    count, cap = 0, enough or 1_000
    while count < cap:
        page = lw.resolutions(project, after=after, limit=min(500, cap - count))
        count += len(page.resolutions)
        if not page.resolutions or page.next_after <= after:
            break
        after = page.next_after
    status = lw.drift(project)
    since = None if champion is None else champion.promoted_at
    drift = bool(status.drift) and (
        since is None or (status.last_check is not None and status.last_check.at > since)
    )
    return {"new_labels": count, "drift": drift}


def read_predictions(path: Path) -> dict[str, dict[str, float]]:
    """JSONL lines ``{external_id, probabilities}`` as ``{external_id: {label: p}}``."""
    out: dict[str, dict[str, float]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise Invalid(f"cannot read predictions {path}: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[str(row["external_id"])] = dict(row["probabilities"])
        except (ValueError, KeyError, TypeError):
            raise Invalid(f"{path}:{n}: expected {{external_id, probabilities}}") from None
    return out


def _ref(m: Any) -> str:
    return f"{m.name}@{m.tag}" if m.name else f"v{m.version}"


def _write(path: str, blob: bytes) -> str:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(blob)
    return str(target)

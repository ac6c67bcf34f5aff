"""``loopwright.Client``: the REST API from Python, over httpx, with typed results.

>>> from loopwright import Client
>>> with Client("http://127.0.0.1:8000", token="...") as lw:   # doctest: +SKIP
...     lw.ingest("digits", [{"external_id": "1", "payload": {"pixels": [...]}}])
...     task = lw.next_task("digits")

Results are the models of :mod:`loopwright.wire`. Errors come back as the classes of
:mod:`loopwright.errors` (``NotFound``, ``Conflict``, ``Invalid`` with its field errors, …),
chosen by the ``code`` of the error body; 401, 403 and 500 raise :class:`ApiError`, and a
server that cannot be reached raises :class:`ServiceUnreachable` naming the URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from loopwright import wire
from loopwright.errors import Invalid, LoopwrightError, by_code

M = TypeVar("M", bound=BaseModel)

ERRORS_BY_CODE = {code: cls for code, cls in by_code().items() if cls is not LoopwrightError}


def _seg(value: object) -> str:
    """``value`` as one URL path segment."""
    return quote(str(value), safe="")


class ApiError(LoopwrightError):
    """An error response with no class of its own (401, 403, 500, …): its status and code."""

    code = "api_error"

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code


class ServiceUnreachable(LoopwrightError):
    """The loopwright server could not be reached (connection refused, DNS, timeout)."""

    code = "service_unreachable"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the loopwright service at {url}: {reason}")
        self.url = url


def error_from(response: httpx.Response) -> LoopwrightError:
    """The exception an error response stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        return ApiError(response.status_code, "http_error", response.text[:200] or response.reason_phrase)
    code, message = str(body["code"]), str(body.get("message", ""))
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        return ApiError(response.status_code, code, message)
    if issubclass(cls, Invalid):
        fields = [(str(e.get("field", "")), str(e.get("message", ""))) for e in body.get("errors") or []]
        return cls(message.split("\n  - ")[0] if fields else message, fields)
    return cls(message)


class Client:
    """A synchronous client of one loopwright server; use it as a context manager or ``close()``."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- plumbing ------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnreachable(self.base_url, str(exc) or type(exc).__name__) from exc
        if response.status_code >= 400:
            raise error_from(response)
        return response

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        query = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._request("GET", path, params=query).json())

    def _post(self, model: type[M], path: str, body: Any = None) -> M:
        return model.model_validate(self._request("POST", path, json=body).json())

    @staticmethod
    def _p(name: str) -> str:
        return f"/v1/projects/{_seg(name)}"

    # -- projects ------------------------------------------------------------------------

    def projects(self) -> list[wire.ProjectRef]:
        return self._get(wire.ProjectList, "/v1/projects").projects

    def create_project(self, config: Mapping[str, Any]) -> wire.Project:
        """Create a project from its configuration (admins only)."""
        return self._post(wire.Project, "/v1/projects", dict(config))

    def status(self, name: str) -> wire.ProjectStatus:
        return self._get(wire.ProjectStatus, self._p(name))

    def config(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self._request("GET", f"{self._p(name)}/config").json()
        return data

    def ingest(self, name: str, items: Iterable[Mapping[str, Any]]) -> wire.IngestReport:
        """Items ``{"external_id", "payload", "metadata"?, "prediction"?, "embedding"?}``:
        predicted (or carrying ``{"model": "<name>@<version>", "probabilities": {…}}``), routed,
        queued."""
        return self._post(wire.IngestReport, f"{self._p(name)}/items", {"items": [dict(i) for i in items]})

    def predict(self, name: str, payloads: Sequence[Mapping[str, Any]]) -> wire.PredictionBatch:
        body = {"payloads": [dict(p) for p in payloads]}
        return self._post(wire.PredictionBatch, f"{self._p(name)}/predict", body)

    def feedback(
        self,
        name: str,
        prediction_id: int,
        kind: Literal["thumbs_up", "thumbs_down", "report", "correction"],
        idempotency_key: str,
        correction: str | None = None,
        comment: str | None = None,
    ) -> wire.Feedback:
        body = {"prediction_id": prediction_id, "kind": kind, "idempotency_key": idempotency_key}
        body |= {k: v for k, v in (("correction", correction), ("comment", comment)) if v is not None}
        return self._post(wire.Feedback, f"{self._p(name)}/feedback", body)

    def events(self, name: str, after: int = 0, limit: int = 100) -> wire.EventPage:
        return self._get(wire.EventPage, f"{self._p(name)}/events", after=after, limit=limit)

    # -- review --------------------------------------------------------------------------

    def next_task(
        self, name: str, tiers: Sequence[int] | None = None, session_id: str | None = None
    ) -> wire.Assignment | None:
        """Lease the next task for the caller, or ``None`` when there is none right now."""
        body = {"tiers": None if tiers is None else list(tiers), "session_id": session_id}
        response = self._request("POST", f"{self._p(name)}/tasks/next", json=body)
        return None if response.status_code == 204 else wire.Assignment.model_validate(response.json())

    def submit(
        self, lease_id: int, label: str, unsure: bool = False, comment: str | None = None
    ) -> wire.SubmitResult:
        """Answer a leased task; ``comment`` (a reviewer's reason) goes to the audit log."""
        body = {"label": label, "unsure": unsure, "comment": comment}
        return self._post(wire.SubmitResult, f"/v1/leases/{lease_id}/submit", body)

    def extend(self, lease_id: int, seconds: int | None = None) -> wire.Lease:
        return self._post(wire.Lease, f"/v1/leases/{lease_id}/extend", {"seconds": seconds})

    def release(self, lease_id: int) -> wire.Lease:
        return self._post(wire.Lease, f"/v1/leases/{lease_id}/release")

    def skip(self, lease_id: int) -> wire.Lease:
        return self._post(wire.Lease, f"/v1/leases/{lease_id}/skip")

    def annotations(self, name: str, after: int = 0, limit: int = 100) -> wire.AnnotationPage:
        return self._get(wire.AnnotationPage, f"{self._p(name)}/annotations", after=after, limit=limit)

    def resolutions(self, name: str, after: int = 0, limit: int = 100) -> wire.ResolutionPage:
        return self._get(wire.ResolutionPage, f"{self._p(name)}/resolutions", after=after, limit=limit)

    def add_gold(
        self, name: str, items: Iterable[Mapping[str, Any]], tiers: Sequence[int] | None = None
    ) -> list[wire.Task]:
        """Gold items ``{"external_id", "payload", "label", "metadata"?}`` (leads and admins)."""
        body = {"items": [dict(i) for i in items], "tiers": None if tiers is None else list(tiers)}
        return self._post(wire.GoldAdded, f"{self._p(name)}/gold", body).tasks

    def annotator_stats(
        self, name: str, annotator: str, session_id: str | None = None
    ) -> wire.AnnotatorStats:
        path = f"{self._p(name)}/annotators/{_seg(annotator)}"
        return self._get(wire.AnnotatorStats, path, session_id=session_id)

    # -- datasets ------------------------------------------------------------------------

    def datasets(self, name: str) -> list[wire.DatasetVersion]:
        return self._get(wire.DatasetList, f"{self._p(name)}/datasets").datasets

    def dataset(self, name: str, ref: str = "latest") -> wire.DatasetDetail:
        return self._get(wire.DatasetDetail, f"{self._p(name)}/datasets/{_seg(ref)}")

    def snapshot(self, name: str) -> wire.DatasetVersion:
        return self._post(wire.DatasetVersion, f"{self._p(name)}/datasets")

    def diff(self, name: str, a: str, b: str) -> wire.DatasetDiff:
        return self._get(wire.DatasetDiff, f"{self._p(name)}/datasets/{_seg(a)}/diff/{_seg(b)}")

    def export(
        self, name: str, ref: str = "latest", format: Literal["jsonl", "csv", "parquet"] = "jsonl"
    ) -> bytes:
        """The version as a file's bytes (write them where you like)."""
        path = f"{self._p(name)}/datasets/{_seg(ref)}/export"
        return self._request("GET", path, params={"format": format}).content

    # -- models --------------------------------------------------------------------------

    def models(self, name: str) -> list[wire.ModelVersion]:
        return self._get(wire.ModelList, f"{self._p(name)}/models").models

    def model(self, name: str, ref: int | str = "champion") -> wire.ModelVersion:
        return self._get(wire.ModelVersion, f"{self._p(name)}/models/{_seg(ref)}")

    def promote(self, name: str, version: int) -> wire.ModelVersion:
        return self._post(wire.ModelVersion, f"{self._p(name)}/models/{version}/promote")

    def rollback(self, name: str) -> wire.Rollback:
        return self._post(wire.Rollback, f"{self._p(name)}/models/rollback")

    def retrain(self, name: str, wait: float | None = None) -> wire.Job:
        """Queue a retrain job (the server answers 202 at once); with ``wait`` seconds, poll
        until it is done (``TimeoutError`` after them). Its ``result`` holds ``model_version``,
        ``promoted``, ``gate`` and ``dataset_version``."""
        job = self._post(wire.Job, f"{self._p(name)}/retrain")
        return job if wait is None else self.wait_job(job.id, wait)

    # -- background jobs -----------------------------------------------------------------

    def job(self, job_id: int) -> wire.Job:
        return self._get(wire.Job, f"/v1/jobs/{int(job_id)}")

    def jobs(self, name: str, status: str | None = None, limit: int = 100) -> list[wire.Job]:
        return self._get(wire.JobList, f"{self._p(name)}/jobs", status=status, limit=limit).jobs

    def start_job(self, name: str, kind: str) -> wire.Job:
        return self._post(wire.Job, f"{self._p(name)}/jobs", {"kind": kind})

    def cancel_job(self, job_id: int) -> wire.Job:
        return self._post(wire.Job, f"/v1/jobs/{int(job_id)}/cancel")

    def wait_job(self, job_id: int, timeout: float = 60.0, poll: float = 0.1) -> wire.Job:
        """The job once it succeeded, failed or was cancelled; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id)).status not in ("succeeded", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(poll)
        return job

    def set_automation(self, name: str, paused: bool) -> wire.Automation:
        return self._post(wire.Automation, f"{self._p(name)}/automation", {"paused": paused})

    def register_model(
        self,
        name: str,
        model: str,
        version: str,
        artifact_uri: str | None = None,
        dataset_version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        endpoint: str | None = None,
    ) -> wire.ModelVersion:
        """Register ``model@version`` that your pipeline trained on ``dataset_version``."""
        body = {
            "name": model,
            "version": version,
            "artifact_uri": artifact_uri,
            "dataset_version": dataset_version,
            "metadata": None if metadata is None else dict(metadata),
            "endpoint": endpoint,
        }
        return self._post(wire.ModelVersion, f"{self._p(name)}/models", body)

    def upload_predictions(
        self, name: str, version: int | str, predictions: Mapping[str, Mapping[str, float]]
    ) -> wire.PredictionsUploaded:
        """``{external_id: {label: p}}`` of a registered version on the evaluation split."""
        body = {"predictions": {k: dict(v) for k, v in predictions.items()}}
        path = f"{self._p(name)}/models/{_seg(version)}/predictions"
        return self._post(wire.PredictionsUploaded, path, body)

    def gate(self, name: str, version: int | str) -> wire.GateOutcome:
        """Gate a registered version against the champion; promoted if it passes."""
        return self._post(wire.GateOutcome, f"{self._p(name)}/models/{_seg(version)}/gate")

    def eval_split(self, name: str, ref: str = "latest", labels: bool = False) -> wire.EvalSplit:
        """The frozen evaluation split of a dataset version: ids and payloads (labels if asked)."""
        path = f"{self._p(name)}/datasets/{_seg(ref)}/eval"
        return self._get(wire.EvalSplit, path, labels=str(labels).lower())

    # -- monitoring ----------------------------------------------------------------------

    def drift(self, name: str) -> wire.DriftStatus:
        return self._get(wire.DriftStatus, f"{self._p(name)}/drift")

    def check_drift(self, name: str) -> wire.DriftCheck:
        return self._post(wire.DriftCheck, f"{self._p(name)}/drift/check")

    def thresholds(self, name: str) -> wire.Thresholds:
        return self._get(wire.Thresholds, f"{self._p(name)}/thresholds")

    def certify(self, name: str) -> wire.Certification | None:
        data = self._request("POST", f"{self._p(name)}/certify").json()
        return None if data is None else wire.Certification.model_validate(data)

    def accept_backlog(self, name: str) -> wire.BacklogAccepted:
        """Auto-accept the untouched review backlog the champion's certified threshold covers."""
        return wire.BacklogAccepted.model_validate(
            self._request("POST", f"{self._p(name)}/backlog/accept").json()
        )

    def lineage_of_model(self, name: str, version: int) -> wire.ModelLineage:
        return self._get(wire.ModelLineage, f"{self._p(name)}/lineage/models/{version}")

    def lineage_of_item(self, name: str, external_id: str) -> wire.ItemLineage:
        return self._get(wire.ItemLineage, f"{self._p(name)}/lineage/items/{_seg(external_id)}")

    def dashboard(self, name: str) -> dict[str, Any]:
        """The lead dashboard's series (queues, throughput, automation, agreement, skills, ...)."""
        data: dict[str, Any] = self._request("GET", f"{self._p(name)}/dashboard").json()
        return data

    # -- erasure -------------------------------------------------------------------------

    def erase(self, project: str, external_id: str, reason: str | None = None) -> wire.Tombstone:
        """Erase an item (GDPR Art. 17; leads and admins): its tombstone. Irreversible."""
        path = f"{self._p(project)}/items/{_seg(external_id)}"
        body = None if reason is None else {"reason": reason}
        return wire.Tombstone.model_validate(self._request("DELETE", path, json=body).json())

    # -- webhooks ------------------------------------------------------------------------

    def add_webhook(self, name: str, url: str, events: Sequence[str] = ()) -> wire.WebhookCreated:
        """Subscribe ``url`` to the project's events (action prefixes; none: all). Keep the secret."""
        body = {"url": url, "events": list(events)}
        return self._post(wire.WebhookCreated, f"{self._p(name)}/webhooks", body)

    def webhooks(self, name: str) -> list[wire.WebhookOut]:
        return self._get(wire.WebhookList, f"{self._p(name)}/webhooks").webhooks

    def remove_webhook(self, name: str, webhook_id: int) -> None:
        self._request("DELETE", f"{self._p(name)}/webhooks/{webhook_id}")

    def deliveries(
        self, name: str, webhook_id: int, status: str | None = None, limit: int = 100
    ) -> wire.DeliveryList:
        path = f"{self._p(name)}/webhooks/{webhook_id}/deliveries"
        return self._get(wire.DeliveryList, path, status=status, limit=limit)

    def retry_delivery(self, name: str, webhook_id: int, delivery_id: int) -> wire.DeliveryOut:
        path = f"{self._p(name)}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"
        return self._post(wire.DeliveryOut, path)

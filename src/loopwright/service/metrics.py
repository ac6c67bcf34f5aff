"""Prometheus metrics: ``GET /metrics`` in the text exposition format.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (several apps can live in
one process). A pure ASGI middleware times every request by method, route template and status
class, and counts claims (``tasks/next`` that returned a task) and submissions. Project figures
are read from the store at scrape time: queue depth per tier, audits waiting for another answer,
automation rate, the certified threshold (with epsilon, delta), inter-annotator agreement
(Krippendorff's alpha and percent agreement over every vote, recomputed only when the number of
annotations changed) and the latest drift check.

A caller sees the figures of the projects they are a member of (admins: all), without those a
submit moves and a gold answer does not for the reviewers gold measures
(:attr:`loopwright.service.blind.View.hides_counts`); with ``public=True`` no token is needed and
every project is shown. Under ``serve --workers N`` each worker counts its own requests (scrape
each, or sum); the project figures come from the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loopwright.consensus import encode, krippendorff_alpha, percent_agreement, rating_counts
from loopwright.loop import Workspace
from loopwright.loop.audit import DRIFT_DETECTED
from loopwright.service.auth import Principal
from loopwright.service.blind import View
from loopwright.service.deps import principal
from loopwright.service.openapi import ERRORS

CLAIM_ROUTE = "/v1/projects/{name}/tasks/next"
SUBMIT_ROUTE = "/v1/leases/{lease_id}/submit"
DRIFT_CHECKED = "drift.checked"
MODEL_UNAVAILABLE = "model.unavailable"  # a served model could not score a batch (integrations.serving)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The app's registry and the request-side metrics the middleware updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "loopwright_http_request_duration_seconds",
            "Request latency by method, route template and status class.",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.claims = Counter(
            "loopwright_claims",
            "Review tasks handed out (tasks/next with a task).",
            ["project"],
            registry=self.registry,
        )
        self.submissions = Counter(
            "loopwright_submissions", "Labels submitted on a lease (accepted).", registry=self.registry
        )

    def observe(self, method: str, route: str, status: int, seconds: float, params: dict[str, Any]) -> None:
        self.latency.labels(method, route, f"{status // 100}xx").observe(seconds)
        if status == 200 and route == CLAIM_ROUTE:
            self.claims.labels(str(params.get("name", ""))).inc()
        elif status == 200 and route == SUBMIT_ROUTE:
            self.submissions.inc()


class MetricsMiddleware:
    """Pure ASGI: times each HTTP request and records it under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            params = scope.get("path_params") or {}
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start, params)


@dataclass(frozen=True, slots=True)
class _Agreement:
    annotations: int
    alpha: float | None
    percent: float | None


class ProjectCollector:
    """Project figures read from the store when scraped, for the projects in ``visible``."""

    def __init__(self, ws: Workspace, visible: Principal | None, cache: dict[str, _Agreement]) -> None:
        self.ws, self.visible, self.cache = ws, visible, cache

    def collect(self) -> Iterator[Metric]:
        g = {
            name: GaugeMetricFamily(f"loopwright_{name}", doc, labels=labels) for name, doc, labels in _GAUGES
        }
        unavailable = CounterMetricFamily(
            "loopwright_model_unavailable",
            "Items a served model could not score (down, too slow, garbage): routed to review.",
            labels=["project"],
        )
        for proj in self.ws.projects():
            if self.visible is not None and not self.visible.is_member(proj.name):
                continue
            p = proj.name
            status = self.ws.project(p).status()
            g["items"].add_metric([p], status.items)
            g["automation_rate"].add_metric([p], status.automation_rate)
            measured = self.visible is not None and View(self.visible, p).hides_counts
            if not measured:  # what moves on a submit but not on a gold answer: blind review
                for tier, n in sorted(status.open_tasks_by_tier.items()):
                    g["queue_depth"].add_metric([p, str(tier)], n)
                g["annotations"].add_metric([p], status.annotations)
                g["resolutions"].add_metric([p], status.resolutions)
                g["audits_waiting"].add_metric([p], status.audits_waiting)
                agreement = self._agreement(proj.id, p, status.annotations)
                if agreement.alpha is not None:
                    g["agreement_krippendorff_alpha"].add_metric([p], agreement.alpha)
                if agreement.percent is not None:
                    g["agreement_percent"].add_metric([p], agreement.percent)
            cert = status.certification
            if cert is not None:
                g["certified"].add_metric([p], float(cert.threshold is not None))
                if cert.threshold is not None:
                    g["certified_threshold"].add_metric([p], cert.threshold)
                g["certification_epsilon"].add_metric([p], cert.epsilon)
                g["certification_delta"].add_metric([p], cert.delta)
                g["certification_upper_bound"].add_metric([p], cert.upper_bound)
            self._drift(proj.id, p, g)
            unavailable.add_metric([p], self._unavailable(proj.id))
        yield from g.values()
        yield unavailable

    def _agreement(self, project_id: int, name: str, annotations: int) -> _Agreement:
        cached = self.cache.get(name)
        if cached is not None and cached.annotations == annotations:
            return cached
        with self.ws.store.unit_of_work() as uow:
            votes = uow.annotations.votes(project_id)
        alpha = percent = None
        if votes:
            counts = rating_counts(
                encode([str(i) for i, _, _ in votes], [a for _, a, _ in votes], [v[2] for v in votes])
            )
            alpha, percent = krippendorff_alpha(counts), percent_agreement(counts)
        found = _Agreement(annotations, alpha, percent)
        self.cache[name] = found
        return found

    def _unavailable(self, project_id: int) -> int:
        """Items of ``model.unavailable`` events (from the database, so every worker agrees)."""
        with self.ws.store.unit_of_work() as uow:
            found = uow.events.of_actions(project_id, [MODEL_UNAVAILABLE])
        return sum(int(e.data.get("items") or 0) for e in found)

    def _drift(self, project_id: int, name: str, g: dict[str, GaugeMetricFamily]) -> None:
        with self.ws.store.unit_of_work() as uow:
            found = [e for a in (DRIFT_DETECTED, DRIFT_CHECKED) if (e := uow.events.latest(project_id, a))]
        if not found:
            return
        last = max(found, key=lambda e: e.id)
        g["drift_detected"].add_metric([name], float(last.action == DRIFT_DETECTED))
        g["drift_drifted_features"].add_metric([name], len(last.data.get("drifted_features") or []))
        auc = last.data.get("domain_classifier_auc")
        if auc is not None:
            g["drift_domain_classifier_auc"].add_metric([name], float(auc))
        g["drift_last_check_timestamp_seconds"].add_metric([name], last.at.timestamp())


_P = ["project"]
_GAUGES: list[tuple[str, str, list[str]]] = [
    ("queue_depth", "Open review tasks per project and tier.", ["project", "tier"]),
    ("items", "Items ingested.", _P),
    ("annotations", "Human annotations submitted.", _P),
    ("resolutions", "Items resolved by review.", _P),
    ("audits_waiting", "Answered audits waiting for another answer (the first counts meanwhile).", _P),
    ("automation_rate", "Share of routed items auto-accepted (at ingest or from the certified backlog).", _P),
    ("certified", "1 if the latest certificate certifies a threshold, else 0.", _P),
    ("certified_threshold", "The certified auto-accept threshold.", _P),
    ("certification_epsilon", "Error rate the certificate bounds (epsilon).", _P),
    ("certification_delta", "Failure probability of the certificate (delta).", _P),
    ("certification_upper_bound", "Upper confidence bound on the auto-accept error rate.", _P),
    ("agreement_krippendorff_alpha", "Nominal Krippendorff's alpha over every vote.", _P),
    ("agreement_percent", "Mean share of agreeing annotator pairs per item.", _P),
    ("drift_detected", "1 if the latest drift check fired, else 0.", _P),
    ("drift_drifted_features", "Features the latest drift check flagged.", _P),
    ("drift_domain_classifier_auc", "Domain-classifier AUC of the latest drift check.", _P),
    ("drift_last_check_timestamp_seconds", "When the latest drift check ran (Unix time).", _P),
]


class _Visible:
    """The app registry's samples, leaving out those labelled with a project the caller cannot see."""

    def __init__(self, registry: CollectorRegistry, who: Principal | None) -> None:
        self.registry, self.who = registry, who

    def collect(self) -> Iterable[Metric]:
        for metric in self.registry.collect():
            if self.who is not None:
                metric.samples = [
                    s
                    for s in metric.samples
                    if "project" not in s.labels or self.who.is_member(s.labels["project"])
                ]
            yield metric


def install(app: FastAPI, public: bool = False) -> Metrics:
    """Add the middleware and ``GET /metrics`` to ``app`` (see the module docstring)."""
    metrics = Metrics()
    cache: dict[str, _Agreement] = {}
    lock = threading.Lock()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get(
        "/metrics",
        tags=["metrics"],
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text"},
            401: ERRORS[401],
        },
    )
    def scrape(request: Request) -> Response:
        """Prometheus metrics (text exposition format)."""
        who = None if public else principal(request)
        visible = None if who is None or who.admin else who
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Visible(metrics.registry, visible))
        with lock:
            registry.register(ProjectCollector(request.app.state.workspace, visible, cache))
            body = generate_latest(registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics

"""``GET /metrics``: request metrics from the middleware and project figures read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from loopwright.consensus import encode, krippendorff_alpha, percent_agreement, rating_counts
from loopwright.service import create_app
from service_world import World, build_world

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'world.db'}")
    yield w
    w.ws.close()


def client(world: World, public: bool = False) -> TestClient:
    app = create_app(world.ws, authenticator=world.auth, public_metrics=public)
    return TestClient(app, raise_server_exceptions=False)


def scrape(c: TestClient, headers: dict[str, str]) -> Samples:
    r = c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_project_figures_match_the_store(world: World) -> None:
    samples = scrape(client(world), world.headers("root"))
    for name in ("toy", "side"):
        loop = world.ws.project(name)
        status = loop.status()
        assert status.open_tasks_by_tier == {1: 20}
        assert value(samples, "loopwright_queue_depth", project=name, tier="1") == 20
        assert value(samples, "loopwright_items", project=name) == 65
        assert value(samples, "loopwright_automation_rate", project=name) == 0.0
        assert value(samples, "loopwright_annotations", project=name) == status.annotations
        cert = status.certification
        assert cert is not None and cert.threshold is None  # 13 audits: too few to certify
        assert value(samples, "loopwright_certified", project=name) == 0
        assert value(samples, "loopwright_certified_threshold", project=name) is None
        assert value(samples, "loopwright_certification_epsilon", project=name) == 0.1
        assert value(samples, "loopwright_certification_delta", project=name) == 0.1
        assert value(samples, "loopwright_certification_upper_bound", project=name) == cert.upper_bound
        with world.ws.store.unit_of_work() as uow:
            votes = uow.annotations.votes(loop.project.id)
            drift = uow.events.latest(loop.project.id, "drift.checked")
        items, workers, labels = ([str(v[k]) for v in votes] for k in range(3))
        counts = rating_counts(encode(items, workers, labels))
        alpha = value(samples, "loopwright_agreement_krippendorff_alpha", project=name)
        assert alpha == krippendorff_alpha(counts) and alpha is not None and 0.5 < alpha < 1.0
        assert value(samples, "loopwright_agreement_percent", project=name) == percent_agreement(counts)
        assert drift is not None
        assert value(samples, "loopwright_drift_detected", project=name) == 0
        assert value(samples, "loopwright_drift_drifted_features", project=name) == 0
        auc = value(samples, "loopwright_drift_domain_classifier_auc", project=name)
        assert auc == drift.data["domain_classifier_auc"]
        assert value(samples, "loopwright_drift_last_check_timestamp_seconds", project=name) == pytest.approx(
            drift.at.timestamp()
        )


def test_requests_claims_and_submissions_are_counted_per_app(world: World) -> None:
    c, other = client(world), client(world)
    h = world.headers("annotator")
    claimed = c.post("/v1/projects/toy/tasks/next", headers=h)
    assert claimed.status_code == 200, claimed.text
    lease = claimed.json()["lease"]["id"]
    label = world.ws.project("toy").config.labels[0]
    assert c.post(f"/v1/leases/{lease}/submit", json={"label": label}, headers=h).status_code == 200
    assert c.get("/v1/projects/side", headers=h).status_code == 404
    assert c.get("/no/such/path", headers=h).status_code == 404
    samples = scrape(c, world.headers("root"))
    assert value(samples, "loopwright_claims_total", project="toy") == 1
    assert value(samples, "loopwright_submissions_total") == 1
    count = "loopwright_http_request_duration_seconds_count"
    assert value(samples, count, method="POST", route="/v1/projects/{name}/tasks/next", status="2xx") == 1
    assert value(samples, count, method="POST", route="/v1/leases/{lease_id}/submit", status="2xx") == 1
    assert value(samples, count, method="GET", route="/v1/projects/{name}", status="4xx") == 1
    assert value(samples, count, method="GET", route="unmatched", status="4xx") == 1
    # the other app has its own registry: only its own scrape so far
    fresh = scrape(other, world.headers("root"))
    assert value(fresh, "loopwright_claims_total", project="toy") is None
    assert value(fresh, "loopwright_submissions_total") == 0
    # project figures are read from the store at each scrape
    assert (
        value(fresh, "loopwright_annotations", project="toy") == world.ws.project("toy").status().annotations
    )


def test_who_sees_what(world: World) -> None:
    c = client(world)
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert projects(scrape(c, world.headers("viewer"))) == {"toy"}  # a member of toy only
    assert projects(scrape(c, world.headers("nobody"))) == set()
    assert projects(scrape(c, world.headers("root"))) == {"toy", "side"}
    assert projects(scrape(client(world, public=True), {})) == {"toy", "side"}


SUBMIT_MOVES = {  # figures a submit moves and a gold answer does not
    "loopwright_queue_depth",
    "loopwright_annotations",
    "loopwright_resolutions",
    "loopwright_audits_waiting",
    "loopwright_agreement_krippendorff_alpha",
    "loopwright_agreement_percent",
}


def test_measured_reviewers_are_not_shown_what_would_tell_them_a_task_was_gold(world: World) -> None:
    """An annotator or expert comparing ``loopwright_annotations`` before and after a submit
    would learn whether the task was gold (a gold answer is not an annotation), as the blind
    status keeps from them; a lead and a viewer see every figure."""
    c = client(world)
    for user, sees in (("annotator", False), ("expert", False), ("lead", True), ("viewer", True)):
        names = {name for name, labels in scrape(c, world.headers(user)) if ("project", "toy") in labels}
        assert (names >= SUBMIT_MOVES) is sees and (names & SUBMIT_MOVES == set()) is not sees, user
        assert {"loopwright_items", "loopwright_automation_rate", "loopwright_certified"} <= names, user
    lead = scrape(c, world.headers("lead"))
    assert (
        value(lead, "loopwright_audits_waiting", project="toy")
        == world.ws.project("toy").status().audits_waiting
    )


def projects(samples: Samples) -> set[str]:
    return {v for _, labels in samples for k, v in labels if k == "project"}

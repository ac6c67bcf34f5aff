"""Every endpoint x every role x member / non-member, asserted against the ALLOWED table.

:data:`MATRIX` lists every route of ``create_app`` with who may call it: an :class:`Action`
(decided per project by ``ALLOWED``), or ``PUBLIC`` / ``AUTHENTICATED`` / ``ADMIN``. A route
that is not listed fails :func:`test_every_route_is_in_the_matrix`, so new endpoints get rows.

Expected, per call: no token or an unknown token → 401 (public routes: served); admins →
allowed everywhere; project routes → 404 for a non-member (``side`` and the member-less user
``nobody``), 403 for a member whose role may not, allowed otherwise. Allowed means the call
reached the use case on seeded resources: 2xx, or 409 when the resource's state says no (a lease
already submitted, nothing to roll back to).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from loopwright.domain import LeaseStatus
from loopwright.service import Role, create_app
from loopwright.service.auth import ALLOWED, Action
from loopwright.store.sql.jobs import SqlJobs
from service_world import (
    DEAD_URL,
    PROJECTS,
    ROLE_USERS,
    WEBHOOK_ALLOW,
    WORLD_CONFIG,
    Seeded,
    World,
    build_world,
    new_webhook,
)

PUBLIC, AUTHENTICATED, ADMIN = "public", "any-authenticated", "admin-only"
ALLOWED_STATUS = {200, 201, 202, 204, 409}  # 202: a job was queued
Value = str | int | Callable[[World, Seeded], Any]
_fresh = count(1)


def _job(w: World, s: Seeded) -> int:
    """A queued snapshot job of the seeded project (the one already queued, if any)."""
    return SqlJobs(w.ws.store.engine).enqueue(s.name, "snapshot").id


@dataclass(frozen=True)
class Row:
    access: Action | str
    params: dict[str, Value] = field(default_factory=dict)  # path parameters beyond `name`
    body: Callable[[World, Seeded], Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None  # a raw body (a file upload) instead of JSON


def _new_project(w: World, s: Seeded) -> dict[str, Any]:
    return {**WORLD_CONFIG, "name": f"made{next(_fresh)}"}


def _items(w: World, s: Seeded) -> dict[str, Any]:
    return {"items": [{"external_id": f"new{next(_fresh)}", "payload": {"x": 0.5, "y": 0.5}}]}


def _feedback(w: World, s: Seeded) -> dict[str, Any]:
    key = f"fb{next(_fresh)}"
    return {"prediction_id": s.prediction_id, "kind": "correction", "correction": "b", "idempotency_key": key}


def _gold(w: World, s: Seeded) -> dict[str, Any]:
    item = {"external_id": f"gold{next(_fresh)}", "payload": {"x": 12.0, "y": 0.0}, "label": "b"}
    return {"items": [item], "tiers": [1]}


def _live_lease(w: World, s: Seeded) -> int:
    """The seeded lease of ``annotator`` while it is active, else a newly claimed one."""
    with w.ws.store.unit_of_work() as uow:
        active = uow.leases.get(s.lease_id).status is LeaseStatus.ACTIVE
    if not active:
        assignment = w.ws.project(s.name).next_task("annotator", [1])
        assert assignment is not None
        s.lease_id = assignment.lease.id
    return s.lease_id


def _erasable(w: World, s: Seeded) -> str:
    """A fresh item to erase, so every allowed call erases one (and a refused one stays)."""
    external_id = f"erase{next(_fresh)}"
    w.ws.project(s.name).ingest([{"external_id": external_id, "payload": {"x": 0.5, "y": 0.5}}])
    return external_id


LS_CONFIG = '<View><Choices name="label" toName="row"><Choice value="a"/><Choice value="b"/></Choices></View>'


def _ls_annotation(w: World, s: Seeded) -> dict[str, Any]:
    """A Label Studio ANNOTATION_CREATED event on a task new each time."""
    result = [{"from_name": "label", "to_name": "row", "type": "choices", "value": {"choices": ["a"]}}]
    task = {"id": 100_000 + next(_fresh), "data": {"x": 0.5, "y": 0.5}}
    return {"action": "ANNOTATION_CREATED", "task": task, "annotation": {"completed_by": 9, "result": result}}


def _member(w: World, s: Seeded) -> str:
    """An annotator of the seeded project (``side`` has none of its own: one is added)."""
    if s.name == "toy":
        return "annotator"
    if id(w) not in _SIDE_MEMBER:
        w.auth.add_user("side-annotator")
        w.auth.add_membership("side-annotator", s.name, Role.ANNOTATOR, [1])
        _SIDE_MEMBER.add(id(w))
    return "side-annotator"


_SIDE_MEMBER: set[int] = set()


def _settings(w: World, s: Seeded) -> dict[str, Any]:
    """An edit of the guidelines from the stored config's current version."""
    from loopwright.loop.config_edit import config_version

    with w.ws.store.unit_of_work() as uow:
        version = config_version(uow.projects.get(s.name).config)
    return {"version": version, "guidelines": f"edit {next(_fresh)}"}


LEASE: dict[str, Value] = {"lease_id": _live_lease}
WEBHOOK: dict[str, Value] = {"webhook_id": lambda w, s: s.webhook_id}
DATASET: dict[str, Value] = {"ref": lambda w, s: s.dataset}

MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/metrics"): Row(AUTHENTICATED),
    ("GET", "/v1/me"): Row(AUTHENTICATED),
    ("GET", "/v1/projects"): Row(AUTHENTICATED),
    ("POST", "/v1/projects"): Row(ADMIN, body=_new_project),
    ("GET", "/v1/projects/{name}"): Row(Action.READ),
    ("GET", "/v1/projects/{name}/config"): Row(Action.READ),
    ("POST", "/v1/projects/{name}/items"): Row(Action.INGEST, body=_items),
    ("POST", "/v1/projects/{name}/predict"): Row(
        Action.INGEST, body=lambda w, s: {"payloads": [{"x": 1.0, "y": 1.0}]}
    ),
    ("POST", "/v1/projects/{name}/feedback"): Row(Action.FEEDBACK, body=_feedback),
    ("GET", "/v1/projects/{name}/events"): Row(Action.EVENTS, query={"limit": "5"}),
    ("POST", "/v1/projects/{name}/tasks/next"): Row(Action.REVIEW),
    ("POST", "/v1/leases/{lease_id}/submit"): Row(Action.REVIEW, LEASE, lambda w, s: {"label": "a"}),
    ("POST", "/v1/leases/{lease_id}/extend"): Row(Action.REVIEW, LEASE, lambda w, s: {"seconds": 60}),
    ("POST", "/v1/leases/{lease_id}/release"): Row(Action.REVIEW, LEASE),
    ("POST", "/v1/leases/{lease_id}/skip"): Row(Action.REVIEW, LEASE),
    ("GET", "/v1/projects/{name}/annotations"): Row(Action.MONITOR),
    ("GET", "/v1/projects/{name}/resolutions"): Row(Action.MONITOR),
    ("POST", "/v1/projects/{name}/gold"): Row(Action.MANAGE, body=_gold),
    ("POST", "/v1/projects/{name}/gold/from-audits"): Row(Action.MANAGE, body=lambda w, s: {"dry_run": True}),
    ("GET", "/v1/projects/{name}/datasets"): Row(Action.READ),
    ("POST", "/v1/projects/{name}/datasets"): Row(Action.MANAGE),
    ("GET", "/v1/projects/{name}/datasets/{ref}"): Row(Action.READ, DATASET),
    ("GET", "/v1/projects/{name}/datasets/{a}/diff/{b}"): Row(
        Action.READ, {"a": lambda w, s: s.dataset, "b": lambda w, s: s.dataset}
    ),
    ("GET", "/v1/projects/{name}/datasets/{ref}/export"): Row(Action.READ, DATASET, query={"format": "csv"}),
    ("GET", "/v1/projects/{name}/datasets/{ref}/eval"): Row(Action.READ, DATASET),
    ("DELETE", "/v1/projects/{name}/items/{external_id}"): Row(
        Action.ERASE, {"external_id": _erasable}, query={"reason": "matrix"}
    ),
    ("GET", "/v1/projects/{name}/models"): Row(Action.READ),
    ("GET", "/v1/projects/{name}/models/{ref}"): Row(Action.READ, {"ref": 1}),
    ("POST", "/v1/projects/{name}/models/{version}/promote"): Row(Action.MANAGE, {"version": 1}),
    ("POST", "/v1/projects/{name}/models/rollback"): Row(Action.MANAGE),
    ("POST", "/v1/projects/{name}/retrain"): Row(Action.MANAGE),
    ("POST", "/v1/projects/{name}/jobs"): Row(Action.MANAGE, body=lambda w, s: {"kind": "certify"}),
    ("GET", "/v1/projects/{name}/jobs"): Row(Action.READ),
    ("GET", "/v1/jobs/{job_id}"): Row(Action.READ, {"job_id": lambda w, s: _job(w, s)}),
    ("POST", "/v1/jobs/{job_id}/cancel"): Row(Action.MANAGE, {"job_id": lambda w, s: _job(w, s)}),
    ("GET", "/v1/projects/{name}/automation"): Row(Action.READ),
    ("POST", "/v1/projects/{name}/automation"): Row(Action.MANAGE, body=lambda w, s: {"paused": False}),
    ("POST", "/v1/projects/{name}/models"): Row(
        Action.PUBLISH_MODEL, body=lambda w, s: {"name": "ext", "version": f"r{next(_fresh)}"}
    ),
    ("POST", "/v1/projects/{name}/models/{version}/predictions"): Row(  # v1 was trained here: 409
        Action.PUBLISH_MODEL, {"version": 1}, lambda w, s: {"predictions": {"p0": {"a": 0.5, "b": 0.5}}}
    ),
    ("POST", "/v1/projects/{name}/models/{version}/gate"): Row(Action.PUBLISH_MODEL, {"version": 1}),
    ("GET", "/v1/projects/{name}/dashboard"): Row(Action.MONITOR),
    ("GET", "/v1/projects/{name}/drift"): Row(Action.MONITOR),
    ("POST", "/v1/projects/{name}/drift/check"): Row(Action.MANAGE),
    ("GET", "/v1/projects/{name}/thresholds"): Row(Action.MONITOR),
    ("POST", "/v1/projects/{name}/certify"): Row(Action.MANAGE),
    ("POST", "/v1/projects/{name}/backlog/accept"): Row(Action.MANAGE),
    ("GET", "/v1/projects/{name}/annotators/{annotator}"): Row(Action.MONITOR, {"annotator": "sim1"}),
    ("GET", "/v1/projects/{name}/lineage/models/{version}"): Row(Action.MONITOR, {"version": 1}),
    ("GET", "/v1/projects/{name}/lineage/items/{external_id}"): Row(Action.MONITOR, {"external_id": "p0"}),
    ("POST", "/v1/projects/{name}/webhooks"): Row(
        Action.MANAGE, body=lambda w, s: {"url": DEAD_URL, "events": ["dataset."]}
    ),
    ("GET", "/v1/projects/{name}/webhooks"): Row(Action.MANAGE),
    ("DELETE", "/v1/projects/{name}/webhooks/{webhook_id}"): Row(
        Action.MANAGE,
        {"webhook_id": lambda w, s: new_webhook(w.ws, s.name)},  # a fresh one each time
    ),
    ("GET", "/v1/projects/{name}/webhooks/{webhook_id}/deliveries"): Row(Action.MANAGE, WEBHOOK),
    ("POST", "/v1/projects/{name}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"): Row(
        Action.MANAGE, {**WEBHOOK, "delivery_id": lambda w, s: s.delivery_id}
    ),
    ("GET", "/v1/projects/{name}/items/{item_id}/explanation"): Row(
        Action.REVIEW, {"item_id": lambda w, s: s.item_id}
    ),
    ("GET", "/v1/projects/{name}/guidelines"): Row(Action.READ),
    ("GET", "/v1/projects/{name}/session"): Row(Action.REVIEW),
    ("GET", "/v1/projects/{name}/tasks/{task_id}/context"): Row(
        Action.REVIEW, {"task_id": lambda w, s: s.task_id}
    ),
    ("GET", "/label-studio/{name}/health"): Row(Action.READ),  # Label Studio's ML backend protocol
    ("GET", "/label-studio/{name}/"): Row(Action.READ),
    ("POST", "/label-studio/{name}/setup"): Row(
        Action.READ, body=lambda w, s: {"project": "1.1", "schema": LS_CONFIG}
    ),
    ("POST", "/label-studio/{name}/predict"): Row(
        Action.INGEST,
        body=lambda w, s: {"tasks": [{"id": 1, "data": {"x": 1.0, "y": 1.0}}], "label_config": LS_CONFIG},
    ),
    ("POST", "/label-studio/{name}/webhook"): Row(Action.INGEST, body=_ls_annotation),
    ("POST", "/v1/admin/projects"): Row(ADMIN, body=lambda w, s: {"config": _new_project(w, s)}),
    ("GET", "/v1/projects/{name}/members"): Row(Action.MANAGE),
    ("POST", "/v1/projects/{name}/members"): Row(
        Action.MANAGE, body=lambda w, s: {"user": f"new{next(_fresh)}", "role": "annotator", "tiers": [1]}
    ),
    ("POST", "/v1/projects/{name}/members/{user}/tokens"): Row(Action.MANAGE, {"user": _member}),
    ("POST", "/v1/projects/{name}/uploads"): Row(
        Action.MANAGE, query={"format": "csv"}, content=b"external_id,x,y\nupload1,0.5,0.5\n"
    ),
    ("GET", "/v1/projects/{name}/settings"): Row(Action.MANAGE),
    ("PUT", "/v1/projects/{name}/settings"): Row(Action.MANAGE, body=_settings),
    ("GET", "/v1/projects/{name}/leaderboard"): Row(Action.MONITOR),  # annotators: if the project says
    ("GET", "/"): Row(PUBLIC),
    ("GET", "/ui/"): Row(PUBLIC),
    ("GET", "/ui/vendor/plotly.min.js"): Row(PUBLIC),
    ("GET", "/ui/{page}"): Row(PUBLIC, {"page": "index"}),
    ("POST", "/ui/session"): Row(PUBLIC, body=lambda w, s: {"token": w.tokens["viewer"]}),  # UI login
    ("DELETE", "/ui/session"): Row(PUBLIC),  # UI logout
}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Routes whose allowed call needs a world this one does not seed, each with its own test of who
# may call it: an image item and media roots; pool roots and a pool file; a token id to revoke.
ELSEWHERE = {
    (
        "GET",
        "/v1/projects/{name}/items/{item_id}/image",
    ): "test_images.py::test_members_get_the_image_with_etag_and_304",
    ("POST", "/v1/projects/{name}/select"): "test_jobs.py (the select route: roles, roots, paths)",
    (
        "POST",
        "/v1/projects/{name}/members/{user}/tokens/{token_id}/revoke",
    ): "test_ui_admin.py (admin routes)",
}


def api_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path template) of every API route, whichever router it came from."""
    found = set()
    for ctx in iter_route_contexts(app.routes):
        if isinstance(ctx.original_route, APIRoute) and ctx.path not in DOCS:
            found |= {(m, str(ctx.path)) for m in ctx.methods or ()}
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(f"sqlite:///{tmp_path_factory.mktemp('matrix') / 'world.db'}")
    yield w
    w.ws.close()


@pytest.fixture(scope="module")
def client(world: World) -> TestClient:
    app = create_app(world.ws, authenticator=world.auth, webhook_allow=WEBHOOK_ALLOW)
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def test_every_route_is_in_the_matrix(client: TestClient) -> None:
    routes = api_routes(client.app)
    assert routes - set(MATRIX) - set(ELSEWHERE) == set(), "routes missing from MATRIX: add a row for each"
    assert set(MATRIX) - routes == set(), "MATRIX rows for routes that do not exist"
    assert set(ELSEWHERE) - routes == set(), "ELSEWHERE rows for routes that do not exist"


def expected(access: Action | str, user: str | None, project: str) -> str:
    assert user is None or isinstance(user, str)
    """ "allowed", or the status the call must get."""
    if access == PUBLIC:
        return "allowed"
    if user not in ("root", "nobody", *ROLE_USERS):
        return "401"
    if access == AUTHENTICATED or user == "root":
        return "allowed"
    if access == ADMIN:
        return "403"
    if user == "nobody" or project != "toy":  # members of toy only
        return "404"
    assert isinstance(access, Action)
    return "allowed" if ROLE_USERS[user][0] in ALLOWED[access] else "403"


def calls() -> list[tuple[str | None, str]]:
    """(user, project) in an order where denied calls come before the ones that change state."""
    denied = [(None, "toy"), ("bad", "toy"), ("nobody", "toy")]
    outsiders = [(u, "side") for u in ROLE_USERS]
    return [*denied, *outsiders, *((u, "toy") for u in ROLE_USERS), ("root", "side"), ("root", "toy")]


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_matrix(route: tuple[str, str], client: TestClient, world: World) -> None:
    method, template = route
    row = MATRIX[route]
    seen = []
    for user, project in calls():
        seeded = world.projects[project]
        values = {"name": project, **row.params}
        path = template.format(**{k: v(world, seeded) if callable(v) else v for k, v in values.items()})
        headers = {} if user is None else {"Authorization": f"Bearer {world.tokens.get(user, 'not-a-token')}"}
        body = None if row.body is None else row.body(world, seeded)
        if row.content is not None:
            r = client.request(method, path, headers=headers, content=row.content, params=row.query)
        else:
            r = client.request(method, path, headers=headers, json=body, params=row.query)
        client.cookies.clear()  # each call stands alone: no UI session cookie carries over
        want = expected(row.access, user, project)
        ok = r.status_code < 400 if row.access == PUBLIC else r.status_code in ALLOWED_STATUS
        got = "allowed" if want == "allowed" and ok else str(r.status_code)
        seen.append((user, project, want, got, r.text[:200] if got != want else ""))
    wrong = [s for s in seen if s[2] != s[3]]
    assert not wrong, f"{method} {template}: (user, project, expected, got, body) {wrong}"
    assert len(seen) == 3 + 2 * len(ROLE_USERS) + 2 and set(PROJECTS) == {"toy", "side"}


def test_annotators_only_reach_their_tiers(client: TestClient, world: World) -> None:
    """The annotator works tier 1: asking for tier 2 is refused; the expert (every tier) may."""
    ann, exp = world.headers("annotator"), world.headers("expert")
    r = client.post("/v1/projects/toy/tasks/next", json={"tiers": [2]}, headers=ann)
    assert (r.status_code, r.json()["code"]) == (403, "forbidden")
    assert "tiers [2] are not yours" in r.json()["message"]
    assert client.post("/v1/projects/toy/tasks/next", json={"tiers": [2]}, headers=exp).status_code == 204
    mine = client.post("/v1/projects/toy/tasks/next", headers=ann)
    assert mine.status_code == 200 and mine.json()["task"]["tier"] == 1

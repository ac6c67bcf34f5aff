"""A seeded SQLite world for whole-service tests (auth matrix, schemathesis, metrics).

Two projects, ``toy`` and ``side``, each with 45 items labelled by two simulated annotators
(who disagree on a few), a dataset version, a trained champion (v1), 20 more items waiting in
review, a drift check, a live lease held by ``annotator``, and a webhook (to a closed port)
with one dead delivery. Users: the admin ``root`` and one
member of ``toy`` per role (``annotator`` works tier 1 only); nobody but ``root`` is in ``side``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loopwright import Loop, Workspace
from loopwright.service import Role, SqlAuthenticator
from loopwright.service.webhooks import Dispatcher, Webhooks
from loopwright.store.sql import SqlStore
from test_loop import CONFIG, points

PROJECTS = ("toy", "side")
ROLE_USERS: dict[str, tuple[Role, list[int] | None]] = {
    "lead": (Role.LEAD, None),
    "service": (Role.SERVICE, None),
    "annotator": (Role.ANNOTATOR, [1]),
    "expert": (Role.EXPERT, None),
    "viewer": (Role.VIEWER, None),
}
DEAD_URL = "http://127.0.0.1:9/hook"  # the discard port: nothing listens
WEBHOOK_ALLOW = ("127.0.0.1",)  # loopback is refused unless the operator allows it
WORLD_CONFIG: dict[str, Any] = {
    **CONFIG,
    "routing": {"audit_rate": 0.3, "certify": {"epsilon": 0.1, "delta": 0.1}},
    "drift": {"window": 30},
}
DISAGREE = {"p1", "p4", "p7", "p10"}  # only sim1 answers these right


@dataclass
class Seeded:
    """What exists in one project, for filling path parameters and bodies."""

    name: str
    lease_id: int
    prediction_id: int
    dataset: str
    models: list[int] = field(default_factory=list)
    webhook_id: int = 0
    delivery_id: int = 0
    item_id: int = 0  # has a prediction by the champion
    task_id: int = 0  # the leased one (tier 1)


@dataclass
class World:
    ws: Workspace
    auth: SqlAuthenticator
    tokens: dict[str, str]  # user -> bearer token
    projects: dict[str, Seeded]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


def _label(loop: Loop) -> None:
    """Three simulated annotators take turns until the queues are empty; see DISAGREE."""
    truth = {r["external_id"]: lab for r, lab in points(45)}
    busy = True
    while busy:
        busy = False
        for who in ("sim1", "sim2", "sim3"):
            a = loop.next_task(who)
            if a is not None:
                right = truth[a.item.external_id]
                wrong = "abc"[("abc".index(right) + 1) % 3]
                loop.submit(
                    a.lease.id, who, wrong if who != "sim1" and a.item.external_id in DISAGREE else right
                )
                busy = True


def seed_project(ws: Workspace, name: str) -> Seeded:
    loop = ws.create_project({**WORLD_CONFIG, "name": name})
    loop.ingest([r for r, _ in points(45)])
    _label(loop)
    dataset = loop.snapshot()
    loop.retrain(dataset_id=dataset.id)
    webhook_id = new_webhook(ws, name, ["items."])  # gets the next ingest
    report = loop.ingest([r for r, _ in points(20, seed=1, start=45)])
    loop.check_drift()
    with ws.store.unit_of_work() as uow:
        prediction = uow.predictions.for_item(report.outcomes[0].item_id)[-1].id
    assignment = loop.next_task("annotator", [1])
    assert assignment is not None
    seeded = Seeded(name, assignment.lease.id, prediction, dataset.id, [m.version for m in loop.models()])
    seeded.webhook_id = webhook_id
    seeded.item_id, seeded.task_id = report.outcomes[0].item_id, assignment.task.id
    # one try: dead at once
    dispatcher = Dispatcher(ws.store, schedule=(), min_gap_age=0.0, timeout=1.0, allow=WEBHOOK_ALLOW)
    dead: list[Any] = []
    for _ in range(5):  # the first rounds may only settle the event log
        dispatcher.run_once()
        dead = Webhooks(ws.store).deliveries(loop.project, seeded.webhook_id, "dead")
        if dead:
            break
    assert len(dead) == 1, dead
    seeded.delivery_id = dead[0].id
    return seeded


def new_webhook(ws: Workspace, project: str, prefixes: Sequence[str] = ("dataset.",)) -> int:
    """A subscription posting to a closed port on loopback."""
    hooks = Webhooks(ws.store, allow=WEBHOOK_ALLOW)
    sub = hooks.subscribe(ws.project(project).project, DEAD_URL, prefixes, "root")
    return sub.id


def build_world(url: str) -> World:
    """Seed a fresh database at ``url`` (see the module docstring)."""
    ws = Workspace(SqlStore(url))
    seeded = {name: seed_project(ws, name) for name in PROJECTS}
    assert isinstance(ws.store, SqlStore)
    auth = SqlAuthenticator(ws.store)
    auth.add_user("root", admin=True)
    auth.add_user("nobody")  # a valid token, no membership anywhere
    for user, (role, tiers) in ROLE_USERS.items():
        auth.add_user(user)
        auth.add_membership(user, "toy", role, tiers)
    tokens = {user: auth.issue_token(user) for user in ("root", "nobody", *ROLE_USERS)}
    return World(ws, auth, tokens, seeded)

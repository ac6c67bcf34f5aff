"""The annotator and reviewer pages in a real browser (Debian's Chromium via Playwright).

One seeded SQLite digits project with a trained champion serves every test: an annotator
labels 20 items with the keyboard only; a reviewer resolves a dispute with one key press and a
reason; an annotator cannot open the dashboard or another project. Screenshots of each page go
to ``test-artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_digits
from sqlalchemy import text

from browser import chromium, live_server, require_browser, screenshot, sign_in, stored_secrets
from loopwright import Loop, Workspace
from loopwright.cli.demo import demo_config
from loopwright.domain import Route
from loopwright.learning import default_estimator
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

N_ITEMS = 40
SESSION_CAP = 20  # the keyboard test works up to it: the page then says to take a break


@dataclass
class World:
    base: str
    ws: Workspace
    loop: Loop
    tokens: dict[str, str]
    store: SqlStore
    disputed_task: int
    disputed_item: str  # as the expert sees it: blind review shows "#<item id>"
    gold_task: int  # the gold task of the "quiz" project, which "newbie" answers first


def digits_config() -> dict[str, Any]:
    """The shipped digits project, made predictable for a browser test: everything goes to
    tier 1 (two annotations each), majority consensus, no gold, a session cap to show."""
    config = demo_config().model_dump(mode="json")
    config["routing"] = {
        "accept_threshold": 1.0,
        "audit_rate": 0.0,
        "bands": [{"min_confidence": 0.0, "tier": 1}],
    }
    config["tiers"] = [
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "disputed", "required_annotations": 1, "lease_seconds": 6},
        {"tier": 3, "name": "expert", "required_annotations": 1, "lease_seconds": 6},
    ]
    config["consensus"] = {"method": "majority"}
    config["gold"] = {}
    config["drift"] = {"check_on_ingest": False}
    config["fatigue"] = {"max_per_session": SESSION_CAP}
    return config


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_browser()
    db = tmp_path_factory.mktemp("ui") / "loopwright.db"
    store = SqlStore(f"sqlite:///{db}")
    ws = Workspace(store)
    loop = ws.create_project(digits_config())
    ws.create_project({"name": "secret", "labels": ["a", "b"], "features": ["x"]})
    digits = load_digits()
    X, y = digits.data, digits.target.astype(str)
    loop.use_model(default_estimator(loop.config, 0).fit(X[200:], y[200:]), force=True)
    report = loop.ingest(
        {"external_id": f"digit-{i}", "payload": {"pixels": X[i].tolist()}} for i in range(N_ITEMS)
    )
    assert all(o.route is Route.REVIEW and o.tier == 1 for o in report.outcomes)
    # a dispute: two annotators disagree on the first item, which goes up to tier 2
    first = loop.next_task("ann-a", [1])
    assert first is not None
    loop.submit(first.lease.id, "ann-a", "3")
    second = loop.next_task("ann-b", [1])
    assert second is not None and second.task.id == first.task.id
    escalated = loop.submit(second.lease.id, "ann-b", "5").escalated_to
    assert escalated is not None and escalated.tier == 2
    _seed_text_and_tabular(ws)
    gold_task = _seed_quiz(ws)
    auth = SqlAuthenticator(store)
    tokens = {}
    members = [
        ("ann", "digits", Role.ANNOTATOR, [1]),
        ("rev", "digits", Role.EXPERT, [2, 3]),
        ("multi", "sms", Role.ANNOTATOR, [1]),
        ("multi", "flowers", Role.ANNOTATOR, [1]),
        ("newbie", "quiz", Role.ANNOTATOR, [1]),
    ]
    for user, project, role, tiers in members:
        if user not in tokens:
            auth.add_user(user)
            tokens[user] = auth.issue_token(user)
        auth.add_membership(user, project, role, tiers)
    with live_server(create_app(ws, authenticator=auth)) as base:
        yield World(base, ws, loop, tokens, store, escalated.id, f"#{first.item.id}", gold_task)
    store.close()


SMS = [
    ("WIN a FREE prize now, call 0800 to claim", "spam"),
    ("Free entry to win cash, text WIN now", "spam"),
    ("Are we still on for lunch at noon?", "ham"),
    ("See you at the station after work", "ham"),
]


def _seed_text_and_tabular(ws: Workspace) -> None:
    """A text project and a tabular one, each with a champion and one item to review."""
    review = {"accept_threshold": 1.0, "audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}
    sms = ws.create_project({"name": "sms", "labels": ["ham", "spam"], "modality": "text", "routing": review})
    sms.use_model(default_estimator(sms.config, 0).fit([t for t, _ in SMS], [y for _, y in SMS]), force=True)
    sms.ingest([{"external_id": "msg-1", "payload": {"text": "You WIN a free prize! Call now"}}])
    fields = ["petal_length", "petal_width", "sepal_length"]
    flowers = ws.create_project(
        {
            "name": "flowers",
            "labels": ["setosa", "versicolor", "virginica"],
            "features": fields,
            "routing": review,
        }
    )
    X = [[1.4, 0.2, 5.1], [1.3, 0.2, 4.9], [4.7, 1.4, 7.0], [4.5, 1.5, 6.4], [6.0, 2.5, 6.3], [5.1, 1.9, 5.8]]
    y = ["setosa", "setosa", "versicolor", "versicolor", "virginica", "virginica"]
    flowers.use_model(default_estimator(flowers.config, 0).fit(X, y), force=True)
    flowers.ingest([{"external_id": "f-1", "payload": dict(zip(fields, [4.6, 1.5, 6.6], strict=True))}])


def _seed_quiz(ws: Workspace) -> int:
    """A tabular project whose annotators answer one gold item first (onboarding); its task id."""
    fields = ["petal_length", "petal_width", "sepal_length"]
    review = {"accept_threshold": 1.0, "audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}
    quiz = ws.create_project(
        {
            "name": "quiz",
            "labels": ["setosa", "versicolor", "virginica"],
            "features": fields,
            "routing": review,
            "gold": {"onboarding": 1},
        }
    )
    X = [[1.4, 0.2, 5.1], [1.3, 0.2, 4.9], [4.7, 1.4, 7.0], [4.5, 1.5, 6.4], [6.0, 2.5, 6.3], [5.1, 1.9, 5.8]]
    y = ["setosa", "setosa", "versicolor", "versicolor", "virginica", "virginica"]
    quiz.use_model(default_estimator(quiz.config, 0).fit(X, y), force=True)
    (task,) = quiz.add_gold(
        [
            {
                "external_id": "gold-setosa",
                "payload": dict(zip(fields, [1.5, 0.3, 5.0], strict=True)),
                "label": "setosa",
                "metadata": {"set": "gold"},
            }
        ],
        tiers=[1],
    )
    quiz.ingest(
        {"external_id": f"q-{i}", "payload": dict(zip(fields, [4.0 + i, 1.3, 6.0], strict=True))}
        for i in range(2)
    )
    return task.id


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    with chromium() as b:
        yield b


def login(browser: Any, world: World, user: str, lands_on: str = "annotate") -> Any:
    """A fresh browser context, logged in by typing the token and pressing Enter."""
    page = sign_in(browser, world.base, world.tokens[user], lands_on)
    # the token went to an httpOnly session cookie: no script can read it or the session
    assert stored_secrets(page, world.tokens[user]) == []
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["loopwright_session"]
    assert (session["httpOnly"], session["sameSite"], session["secure"]) == (True, "Strict", False)
    assert world.tokens[user] not in session["value"]
    return page


def test_login_page(browser: Any, world: World) -> None:
    page = browser.new_context(viewport={"width": 1280, "height": 700}).new_page()
    page.goto(f"{world.base}/ui/")
    page.wait_for_selector("#token:focus")
    page.keyboard.type("not-a-token")
    page.keyboard.press("Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "That token is not valid."
    screenshot(page, "ui-login")


def test_annotator_labels_20_items_with_the_keyboard_only(browser: Any, world: World) -> None:
    page = login(browser, world, "ann")
    shown: list[tuple[int, str, bool]] = []
    previous = ""

    def next_task() -> str:
        # selectors, not wait_for_function: the page's CSP forbids the eval that needs
        page.wait_for_selector(f"#task-card:not([hidden])[data-task-id]:not([data-task-id='{previous}'])")
        return str(page.get_attribute("#task-card", "data-task-id"))

    for i in range(20):
        previous = next_task()
        if i == 5:  # skip one: no annotation for it
            page.keyboard.press("s")
            previous = next_task()
        if i == 0:
            page.wait_for_selector(".why-list li")
            assert page.inner_text(".suggested").startswith("Model suggests")
            page.keyboard.press("?")
            assert page.is_visible("#help")
            screenshot(page, "ui-annotate-help")
            page.keyboard.press("Escape")
            page.keyboard.press("7")
            screenshot(page, "ui-annotate")
        if i == 3:  # Space answers with the model's suggestion: one key
            assert page.is_visible("#space-hint")
            suggested = page.inner_text(".suggested strong")
            page.keyboard.press(" ")
            shown.append((int(previous), suggested, False))
            continue
        label = str(i % 10)
        page.keyboard.press(label)
        assert page.inner_text("#labels button.selected") == label
        unsure = i == 8  # "u" submits the chosen label flagged unsure
        page.keyboard.press("u" if unsure else "Enter")
        shown.append((int(previous), label, unsure))
    from playwright.sync_api import expect

    expect(page.locator("#done-count")).to_have_text(re.compile(r"^20\b"))
    page.wait_for_selector("#notice.warn:not([hidden])")
    assert f"cap of {SESSION_CAP} items this session" in page.inner_text("#notice")
    assert page.is_hidden("#task-card")
    screenshot(page, "ui-annotate-cap")
    assert page.errors == []
    with world.store.engine.connect() as conn:  # the task claimed in advance was given back
        held = conn.execute(text("SELECT count(*) FROM leases WHERE annotator = 'ann' AND status = 'active'"))
        assert held.scalar_one() == 0
    mine = [(a.task_id, a.label, a.unsure) for a in world.loop.annotations(0, 1000) if a.annotator == "ann"]
    assert mine == shown
    assert len({t for t, _, _ in shown}) == 20
    skipped = [e for e in world.loop.events(0, 10_000) if e.action == "task.skipped" and e.actor == "ann"]
    assert len(skipped) == 1


def test_reviewer_resolves_a_dispute_with_one_key_and_a_reason(browser: Any, world: World) -> None:
    page = login(browser, world, "rev", lands_on="review")  # experts start on the review page
    page.wait_for_selector(f"#task-card[data-task-id='{world.disputed_task}']")
    page.wait_for_selector("#votes td")
    lease_id = int(str(page.get_attribute("#task-card", "data-lease-id")))
    with world.store.unit_of_work() as uow:
        claimed = uow.leases.get(lease_id)
    assert (claimed.expires_at - claimed.created_at).total_seconds() == pytest.approx(6, abs=0.5)
    page.wait_for_timeout(4500)  # tiers 2-3 lease 6 s: the page extends it while the reviewer is active
    with world.store.unit_of_work() as uow:
        lease = uow.leases.get(lease_id)
    assert lease.status.value == "active" and lease.expires_at > claimed.expires_at
    votes = page.inner_text("#votes")
    assert "ann-a" in votes and "ann-b" in votes
    assert "disputed" in page.inner_text("#task-why")
    page.keyboard.press("r")
    page.keyboard.type("the loop closes on the left: a 3 with a short top stroke")
    page.keyboard.press("Escape")
    screenshot(page, "ui-review")
    page.keyboard.press("3")
    page.wait_for_selector(".notice.ok")
    assert f"Resolved item {world.disputed_item} as 3." in page.inner_text("#notice")
    screenshot(page, "ui-review-done")
    assert page.errors == []
    resolution = next(r for r in world.loop.resolutions(0, 1000) if r.task_id == world.disputed_task)
    assert (resolution.label, resolution.method, resolution.n_annotations) == ("3", "majority", 1)
    submitted = [e for e in world.loop.events(0, 10_000) if e.action == "annotation.submitted"]
    assert submitted[-1].actor == "rev" and submitted[-1].data["comment"].startswith("the loop closes")


def test_annotator_cannot_open_the_dashboard_or_another_project(browser: Any, world: World) -> None:
    page = login(browser, world, "ann")
    page.wait_for_selector("#project option", state="attached")  # the nav is drawn
    options = page.eval_on_selector_all("#project option", "os => os.map(o => o.value)")
    assert options == ["digits"]
    nav = page.eval_on_selector_all("#nav a[data-page]", "as => as.map(a => a.dataset.page)")
    assert nav == ["annotate"]
    page.goto(f"{world.base}/ui/dashboard")
    page.wait_for_selector("#error:not([hidden])")
    assert "cannot open this page" in page.inner_text("#error")
    assert page.locator(".plot-container, .js-plotly-plot").count() == 0  # no data drawn
    screenshot(page, "ui-dashboard-refused")
    headers = {"Authorization": f"Bearer {world.tokens['ann']}"}
    with httpx.Client(base_url=world.base, headers=headers) as client:
        assert client.get("/v1/projects/secret").status_code == 404
        assert client.post("/v1/projects/secret/tasks/next").status_code == 404
        assert client.get("/v1/projects/secret/guidelines").status_code == 404
        assert client.get("/v1/projects/digits/events").status_code == 403


def test_text_and_tabular_items_render_with_their_explanations(browser: Any, world: World) -> None:
    page = login(browser, world, "multi")
    page.wait_for_selector("#task-card:not([hidden])")
    page.wait_for_load_state("networkidle")  # settled: leaving gives its leases back
    for project in ("flowers", "sms"):
        page.evaluate(f"localStorage.setItem('loopwright.project', '{project}')")
        page.reload()
        page.wait_for_selector("#task-card:not([hidden]) .why-list li")
        if project == "sms":
            marks = page.eval_on_selector_all(
                ".text-item mark", "ms => ms.map(m => m.textContent.toLowerCase())"
            )
            assert "win" in marks and "free" in marks
            assert page.inner_text(".text-item") == "You WIN a free prize! Call now"
        else:
            rows = page.eval_on_selector_all("table.kv tr.pushed th", "ths => ths.map(t => t.textContent)")
            assert set(rows) <= {"petal_length", "petal_width", "sepal_length"} and rows
        page.wait_for_load_state("networkidle")
        labels = page.eval_on_selector_all("#labels button", "bs => bs.map(b => b.textContent)")
        assert labels[0] == ("1 setosa" if project == "flowers" else "1 ham")
        screenshot(page, f"ui-annotate-{project}")
    assert page.errors == []


def test_a_gold_task_looks_like_any_other_on_the_annotate_page(browser: Any, world: World) -> None:
    """The annotator's first task is the gold one: nothing on the page says so, before or after."""
    page = login(browser, world, "newbie")
    page.wait_for_selector(f"#task-card:not([hidden])[data-task-id='{world.gold_task}'] .why-list li")
    page.wait_for_load_state("networkidle")
    seen = [page.inner_text("body")]
    assert page.inner_text("#task-title").startswith("Item #")  # not the id its lead chose
    assert page.inner_text("#task-why") == "tier 1 queue"
    assert page.inner_text(".suggested").startswith("Model suggests")
    screenshot(page, "ui-annotate-gold")
    page.keyboard.press("3")  # wrong: the gold answer is setosa
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#task-card:not([hidden]):not([data-task-id='{world.gold_task}']) .why-list li")
    page.wait_for_load_state("networkidle")
    seen.append(page.inner_text("body"))
    screenshot(page, "ui-annotate-after-gold")
    for text_seen in seen:
        assert "gold" not in text_seen.lower()
    assert "gold" not in page.content().lower()
    assert page.errors == []
    stats = world.ws.project("quiz").annotator_stats("newbie")
    assert (stats.gold_answers, stats.gold_accuracy) == (1, 0.0)  # scored, and nobody said so


def test_log_out_ends_the_session(browser: Any, world: World) -> None:
    page = login(browser, world, "multi")
    page.wait_for_selector("#project option", state="attached")  # the nav is drawn
    page.wait_for_load_state("networkidle")
    session = {c["name"]: c["value"] for c in page.context.cookies()}["loopwright_session"]
    page.click("nav button.link")  # log out
    page.wait_for_url(f"{world.base}/ui/")
    page.wait_for_selector("#token")
    assert "loopwright_session" not in {c["name"] for c in page.context.cookies()}
    with httpx.Client(base_url=world.base, cookies={"loopwright_session": session}) as client:
        assert client.get("/v1/me").status_code == 401  # the old session id is dead too
    page.goto(f"{world.base}/ui/annotate")
    page.wait_for_url(f"{world.base}/ui/")  # back to the login page
    assert page.errors == []

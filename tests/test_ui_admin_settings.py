"""Editing guidelines, tiers and the leaderboard flag from the admin page (issue 20, item a):
an edit is validated, cannot overwrite a newer one, and reaches every API process within the
config cache's TTL (two apps on one database stand in for two server processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from loopwright import Workspace
from loopwright.service import SqlAuthenticator, create_app, deps
from loopwright.store.sql import SqlStore


@pytest.fixture
def two_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    url = f"sqlite:///{tmp_path / 'edit.db'}"
    store = SqlStore(url)
    auth = SqlAuthenticator(store, cache_seconds=0)
    Workspace(store).create_project({"name": "p", "labels": ["a", "b"], "features": ["x"]})
    auth.add_user("root", admin=True)
    auth.add_user("lee")
    auth.add_user("ann")
    auth.add_membership("lee", "p", "lead")
    auth.add_membership("ann", "p", "annotator", [1])
    clock = [1000.0]
    monkeypatch.setattr(deps, "_now", lambda: clock[0])
    apps = []
    for _ in range(2):
        other = SqlStore(url)
        apps.append(
            TestClient(create_app(Workspace(other), authenticator=SqlAuthenticator(other), webhooks=False))
        )
    heads = {u: {"Authorization": f"Bearer {auth.issue_token(u)}"} for u in ("root", "lee", "ann")}
    return apps, heads, clock


def test_an_edit_reaches_the_other_process_within_the_ttl(two_processes: Any) -> None:
    (a, b), h, clock = two_processes
    assert b.get("/v1/projects/p/config", headers=h["lee"]).json()["guidelines"] == ""  # b caches it
    got = a.get("/v1/projects/p/settings", headers=h["lee"]).json()
    assert got["guidelines"] == "" and got["leaderboard"] == {"visible_to_annotators": False}
    assert [t["required_annotations"] for t in got["tiers"]] == [1, 1, 1]
    tiers = [*got["tiers"][:1], {**got["tiers"][1], "required_annotations": 2}, got["tiers"][2]]
    tiers.append({"tier": 4, "name": "panel", "required_annotations": 3, "lease_seconds": 600})
    saved = a.put(
        "/v1/projects/p/settings",
        headers=h["lee"],
        json={"version": got["version"], "guidelines": "# Spam\n- links", "tiers": tiers},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["version"] != got["version"]
    assert a.get("/v1/projects/p/config", headers=h["lee"]).json()["guidelines"] == "# Spam\n- links"
    clock[0] += deps.CONFIG_TTL_SECONDS - 0.5  # within the TTL the other process may serve the old one
    assert b.get("/v1/projects/p/config", headers=h["lee"]).json()["guidelines"] == ""
    clock[0] += 1.0  # past it: re-read, and the use cases rebuilt with the new tiers
    config = b.get("/v1/projects/p/config", headers=h["lee"]).json()
    assert config["guidelines"] == "# Spam\n- links"
    assert [(t["tier"], t["required_annotations"]) for t in config["tiers"]] == [
        (1, 1),
        (2, 2),
        (3, 1),
        (4, 3),
    ]
    wrong = b.post("/v1/projects/p/tasks/next", headers=h["lee"], json={"tiers": [5]})
    assert wrong.status_code == 422 and "[1, 2, 3, 4]" in wrong.text  # the rebuilt loop knows tier 4
    events = a.get("/v1/projects/p/events", headers=h["lee"]).json()["events"]
    assert [(e["action"], e["actor"]) for e in events if e["action"] == "project.edited"] == [
        ("project.edited", "lee")
    ]


def test_a_stale_or_bad_edit_writes_nothing(two_processes: Any) -> None:
    (a, _), h, _ = two_processes
    first = a.get("/v1/projects/p/settings", headers=h["root"]).json()
    ok = a.put(
        "/v1/projects/p/settings", headers=h["root"], json={"version": first["version"], "guidelines": "v2"}
    )
    assert ok.status_code == 200
    stale = a.put(
        "/v1/projects/p/settings", headers=h["lee"], json={"version": first["version"], "guidelines": "v3"}
    )
    assert stale.status_code == 409 and "reload" in stale.json()["message"]
    version = ok.json()["version"]
    fewer = a.put(
        "/v1/projects/p/settings", headers=h["lee"], json={"version": version, "tiers": first["tiers"][:2]}
    )
    assert fewer.status_code == 422
    assert fewer.json()["message"].startswith("tiers cannot be removed (tasks and people refer to them): [3]")
    assert fewer.json()["errors"] == [
        {"field": "tiers", "message": "keep tiers [1, 2, 3]; add new ones at the end"}
    ]
    gap = [*first["tiers"], {"tier": 5, "name": "x"}]
    bad = a.put("/v1/projects/p/settings", headers=h["lee"], json={"version": version, "tiers": gap})
    assert bad.status_code == 422 and "without gaps" in bad.text
    zero = [{**first["tiers"][0], "required_annotations": 0}, *first["tiers"][1:]]
    bad = a.put("/v1/projects/p/settings", headers=h["lee"], json={"version": version, "tiers": zero})
    assert [e["field"] for e in bad.json()["errors"]] == ["tiers.0.required_annotations"]
    labels = a.put(
        "/v1/projects/p/settings", headers=h["lee"], json={"version": version, "labels": ["c", "d"]}
    )
    assert labels.status_code == 422  # not an editable setting
    assert a.put("/v1/projects/p/settings", headers=h["lee"], json={"version": version}).status_code == 422
    assert (
        a.put(
            "/v1/projects/p/settings", headers=h["ann"], json={"version": version, "guidelines": "x"}
        ).status_code
        == 403
    )
    assert a.get("/v1/projects/p/settings", headers=h["ann"]).status_code == 403
    now = a.get("/v1/projects/p/settings", headers=h["lee"]).json()
    assert (now["version"], now["guidelines"], len(now["tiers"])) == (version, "v2", 3)


@pytest.mark.slow
def test_a_lead_edits_settings_and_annotators_see_the_board_in_the_browser(tmp_path: Path) -> None:
    """The lead rewrites the guidelines, re-weights tier 2 and turns the leaderboard on from the
    admin page (keyboard); the annotator's page shows both, the dashboard shows the board."""
    from browser import chromium, live_server, require_browser, screenshot, sign_in

    require_browser()
    store = SqlStore(f"sqlite:///{tmp_path / 'board.db'}")
    auth = SqlAuthenticator(store, cache_seconds=0)
    ws = Workspace(store)
    loop = ws.create_project({"name": "p", "labels": ["a", "b"], "features": ["x"]})
    loop.ingest([{"external_id": f"i{k}", "payload": {"x": k / 10}} for k in range(8)])
    for _ in range(3):
        a = loop.next_task("ann", [1])
        assert a is not None
        loop.submit(a.lease.id, "ann", "a")
    auth.add_user("lee")
    auth.add_membership("lee", "p", "lead")
    auth.add_user("ann")
    auth.add_membership("ann", "p", "annotator", [1])
    lee, ann = auth.issue_token("lee"), auth.issue_token("ann")
    app = create_app(ws, authenticator=auth, webhooks=False)
    with live_server(app) as base, chromium() as browser:

        def login(token: str, lands_on: str) -> Any:
            return sign_in(browser, base, token, lands_on, wait_until="domcontentloaded")

        board = login(ann, "annotate")
        board.wait_for_selector("#task-card:not([hidden])")
        assert board.locator("#board-card").count() == 0  # off by default
        board.close()

        admin = login(lee, "dashboard")
        admin.wait_for_selector("#leaderboard table.board")
        assert "hidden from annotators" in admin.inner_text("#leaderboard-shown")
        assert "ann\t3\t—" in admin.inner_text("#leaderboard")  # 3 answers, no gold yet
        admin.goto(f"{base}/ui/admin")
        admin.wait_for_selector("#sec-settings:not([hidden]) #s-tiers tr[data-tier='3']")
        admin.keyboard.press("Alt+6")
        assert admin.evaluate("document.activeElement.id") == "s-guidelines"
        admin.keyboard.press("Control+A")
        admin.keyboard.type("# Be careful\n- b means broken")
        admin.fill("tr[data-tier='2'] .t-required", "2")
        admin.check("#s-leaderboard")
        admin.focus("tr[data-tier='2'] .t-name")
        admin.keyboard.press("Enter")
        admin.wait_for_selector("#s-status:text('Saved.')")
        screenshot(admin, "ui-admin-settings")
        # someone else saves meanwhile: this page's next save is refused, nothing overwritten
        heads = {"Authorization": f"Bearer {lee}"}
        version = httpx.get(f"{base}/v1/projects/p/settings", headers=heads).json()["version"]
        other = {"version": version, "guidelines": "from elsewhere"}
        assert httpx.put(f"{base}/v1/projects/p/settings", headers=heads, json=other).status_code == 200
        admin.fill("tr[data-tier='3'] .t-name", "senior")
        admin.click("#settings-form button[type=submit]")
        admin.wait_for_selector("#settings-errors:not([hidden])")
        assert "was edited since you loaded it" in admin.inner_text("#settings-errors")
        admin.reload()
        admin.wait_for_selector("#s-tiers tr[data-tier='3']")
        admin.fill("#s-guidelines", "# Be careful\n- b means broken")
        admin.click("#settings-form button[type=submit]")
        admin.wait_for_selector("#s-status:text('Saved.')")
        assert admin.errors == []

        page = login(ann, "annotate")
        page.wait_for_selector("#board-card table.board tr.me")
        assert "b means broken" in page.inner_text("#guidelines")
        assert "ann\t3" in page.inner_text("#board-card")
        screenshot(page, "ui-annotate-leaderboard")
        assert page.errors == []
    config = ws.project("p").config
    assert (config.guidelines, config.tier(2).required_annotations) == ("# Be careful\n- b means broken", 2)
    assert config.leaderboard.visible_to_annotators is True

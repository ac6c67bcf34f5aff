"""Leases the pages take (issue 20, item 7's rest, and the reload race), in a real browser:
merely opening Review holds a task one minute, not the tier's 15; the first key takes it whole;
reloading the annotate page gets the same task back even when the old page's release is late."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser import chromium, live_server, require_browser, sign_in
from loopwright import Workspace
from loopwright.service import SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

CONFIG = {
    "name": "p",
    "labels": ["a", "b"],
    "features": ["x"],
    "tiers": [
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "expert", "lease_seconds": 900},
    ],
    "consensus": {"min_agreement": 0.6},  # a 1-1 split at tier 1 goes up to tier 2
}


def _lease_seconds(store: SqlStore, lease_id: int) -> float:
    with store.unit_of_work() as uow:
        lease = uow.leases.get(lease_id)
    from datetime import UTC, datetime

    return (lease.expires_at - datetime.now(UTC)).total_seconds()


def _login(browser: Any, base: str, token: str, lands_on: str) -> Any:
    return sign_in(browser, base, token, lands_on, wait_until="domcontentloaded")


@pytest.mark.slow
def test_opening_review_previews_and_the_first_key_takes_the_task(tmp_path: Path) -> None:
    require_browser()
    store = SqlStore(f"sqlite:///{tmp_path / 'review.db'}")
    loop = Workspace(store).create_project(CONFIG)
    loop.ingest([{"external_id": "i0", "payload": {"x": 0.5}}])
    for who, label in (("ann", "a"), ("bo", "b")):
        a = loop.next_task(who, [1])
        assert a is not None
        loop.submit(a.lease.id, who, label)
    auth = SqlAuthenticator(store, cache_seconds=0)
    auth.add_user("exp")
    auth.add_membership("exp", "p", "expert", [2])
    app = create_app(Workspace(store), authenticator=auth, webhooks=False)
    with live_server(app) as base, chromium() as browser:
        page = _login(browser, base, auth.issue_token("exp"), "review")
        page.wait_for_selector("#task-card:not([hidden])[data-lease-id]")
        page.wait_for_function("() => /Lease: [01]:/.test(document.getElementById('lease').textContent)")
        lease_id = int(str(page.get_attribute("#task-card", "data-lease-id")))
        assert 50 < _lease_seconds(store, lease_id) <= 60  # only looking: one minute
        page.keyboard.press("r")  # the first key (here: write a reason) takes the task
        page.wait_for_function("() => /Lease: 1[45]:/.test(document.getElementById('lease').textContent)")
        assert 890 < _lease_seconds(store, lease_id) <= 900
        assert page.errors == []


@pytest.mark.slow
def test_reloading_the_annotate_page_gets_the_same_task_back(tmp_path: Path) -> None:
    require_browser()
    store = SqlStore(f"sqlite:///{tmp_path / 'reload.db'}")
    loop = Workspace(store).create_project({"name": "p", "labels": ["a", "b"], "features": ["x"]})
    loop.ingest([{"external_id": "only", "payload": {"x": 0.5}}])
    auth = SqlAuthenticator(store, cache_seconds=0)
    auth.add_user("ann")
    auth.add_membership("ann", "p", "annotator", [1])
    app = create_app(Workspace(store), authenticator=auth, webhooks=False)
    with live_server(app) as base, chromium() as browser:
        page = _login(browser, base, auth.issue_token("ann"), "annotate")
        page.wait_for_selector("#task-card:not([hidden])[data-task-id]")
        task = page.get_attribute("#task-card", "data-task-id")
        page.wait_for_load_state("networkidle")
        late: list[str] = []

        def lose_the_first(route: Any) -> None:  # the old page's keepalive release: late, here lost
            if not late:
                late.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        page.context.route("**/v1/leases/*/release", lose_the_first)
        page.reload()
        page.wait_for_selector(f"#task-card:not([hidden])[data-task-id='{task}']")
        assert len(late) == 1
        assert page.errors == []

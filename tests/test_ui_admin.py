"""The newcomer's hour in a real browser (issue 20, done-when): a fresh server with one admin;
the admin creates a text project from the admin page, uploads a CSV (one bad row rejected),
adds an annotator and a lead (tokens shown once, one revoked); the annotator labels 20 items
with the keyboard; the lead sees the resolutions and a retrain on the dashboard, and the job and
model version on the admin page. Screenshots of every state go to ``test-artifacts/``."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import expect

from browser import chromium, live_server, release_all, require_browser, screenshot, sign_in
from loopwright import Workspace
from loopwright.service import SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

HAM = [
    "see you at lunch tomorrow",
    "can you call mum tonight",
    "the meeting moved to ten",
    "thanks for the notes",
]
SPAM = [
    "WIN a free prize call now",
    "URGENT claim your cash reward",
    "free entry txt WIN to 80082",
    "cheap loans call now",
]
N_ROWS = 40


def sms_csv(path: Path) -> Path:
    """40 short messages (alternating ham and spam, numbered so no two are the same), one bad row."""
    rows = ["external_id,text"]
    for i in range(N_ROWS):
        words = (HAM if i % 2 == 0 else SPAM)[i // 2 % 4]
        rows.append(f"m{i},{words} {i}")
    rows.append("m-empty,")  # no text: rejected with its reason, the rest goes in
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def login(browser: Any, base: str, token: str, lands_on: str) -> Any:
    return sign_in(browser, base, token, lands_on, wait_until="domcontentloaded")  # Plotly may load slowly


def add_person(page: Any, user: str, role: str, tiers: str = "") -> str:
    """Fill the people form with the keyboard; returns the token shown once."""
    page.focus("#m-user")
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.select_option("#m-role", role)
    page.focus("#m-tiers")
    page.keyboard.type(tiers)
    page.keyboard.press("Enter")
    page.wait_for_selector("#token-box:not([hidden])")
    assert page.inner_text("#token-user") == user
    token = str(page.inner_text("#token-value")).strip()
    page.click("#token-hide")
    assert page.inner_text("#token-value") == ""  # gone from the page once dismissed
    return token


@pytest.mark.slow
def test_a_newcomers_hour_from_the_browser(tmp_path: Path) -> None:
    require_browser()
    store = SqlStore(f"sqlite:///{tmp_path / 'fresh.db'}")
    auth = SqlAuthenticator(store, cache_seconds=0)
    auth.add_user("root", admin=True)
    root = auth.issue_token("root")
    ws = Workspace(store)
    app = create_app(ws, authenticator=auth, webhooks=False, job_threads=1, automation_every=1.0)
    with live_server(app) as base, chromium() as browser:
        admin = login(browser, base, root, "admin")  # no project yet: the admin page
        assert admin.is_hidden("#sec-upload")  # nothing to upload into yet
        screenshot(admin, "ui-admin-fresh")

        # a pasted YAML with a misspelt key: the field errors, with a suggestion
        admin.click("#tab-yaml")
        admin.fill("#p-yaml", "name: sms\nlabels: [ham, spam]\nmodality: txt\nretrian: {}\n")
        admin.click("#create-yaml button[type=submit]")
        admin.wait_for_selector("#create-errors:not([hidden]) li")
        errors = admin.inner_text("#create-errors")
        assert "'txt' is not one of ['tabular', 'image', 'text']; did you mean 'text'?" in errors
        assert "unknown key 'retrian'; did you mean 'retrain'?" in errors
        screenshot(admin, "ui-admin-yaml-errors")

        # the form, by keyboard
        admin.click("#tab-form")
        admin.keyboard.type("sms")  # the name field has the focus
        admin.keyboard.press("Tab")
        admin.keyboard.type("ham, spam")
        admin.select_option("#p-modality", "text")
        admin.fill("#p-every", "20")
        admin.fill("#p-min", "10")  # training labels: the eval split keeps a fifth of the 20 aside
        admin.fill("#p-guidelines", "# Spam\n- offers, prizes, urgent money")
        admin.focus("#p-name")
        admin.keyboard.press("Enter")
        admin.wait_for_selector("#sec-upload:not([hidden])")
        assert admin.inner_text("#admin-project") == "· sms"
        config = httpx.get(
            f"{base}/v1/projects/sms/config", headers={"Authorization": f"Bearer {root}"}
        ).json()
        assert (config["modality"], config["labels"], config["retrain"]["every_n_labels"]) == (
            "text",
            ["ham", "spam"],
            20,
        )
        assert config["tiers"][0]["required_annotations"] == 1

        # upload: progress, then the summary and the rejected row
        admin.set_input_files("#u-file", str(sms_csv(tmp_path / "sms.csv")))
        admin.click("#upload-form button[type=submit]")
        admin.wait_for_selector("#u-status:text-matches('ingested')")
        assert (
            admin.inner_text("#u-status")
            == "41 rows read: 40 ingested, 0 already in, 1 rejected, 40 to review"
        )
        assert "field 'text' is empty" in admin.inner_text("#u-rejects-table")
        screenshot(admin, "ui-admin-upload")

        # people: an annotator on tier 1 and a lead; a second token for the annotator, the first revoked
        first = add_person(admin, "ann", "annotator", "1")
        lead_token = add_person(admin, "boss", "lead")
        admin.click("button[data-issue='ann']")
        admin.wait_for_selector("#token-box:not([hidden])")
        ann_token = str(admin.inner_text("#token-value")).strip()
        admin.click("#token-hide")
        assert ann_token != first
        admin.wait_for_selector("button[data-revoke^='ann:']")
        revoke = admin.locator("button[data-revoke^='ann:']").first
        revoke.click()
        expect(admin.locator("button[data-revoke^='ann:']")).to_have_count(1)
        people = admin.inner_text("#people-table")
        assert "ann\tannotator\t1" in people and "boss\tlead\tall" in people
        assert httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {first}"}).status_code == 401
        screenshot(admin, "ui-admin-people")
        assert admin.errors == []

        # the annotator labels 20 items with the keyboard (1: ham, 2: spam)
        ann = login(browser, base, ann_token, "annotate")
        previous = ""
        for _ in range(20):
            ann.wait_for_selector(f"#task-card:not([hidden])[data-task-id]:not([data-task-id='{previous}'])")
            previous = str(ann.get_attribute("#task-card", "data-task-id"))
            text = ann.inner_text("#task-card")
            spam = any(s.split()[0] in text for s in SPAM)
            ann.keyboard.press("2" if spam else "1")
            ann.keyboard.press("Enter")
        expect(ann.locator("#done-count")).to_have_text(re.compile(r"^20\b"))
        screenshot(ann, "ui-admin-annotator-done")
        assert ann.errors == []

        # the lead lands on the dashboard: 20 resolutions, and the retrain the automation started
        boss = login(browser, base, lead_token, "dashboard")
        deadline = time.monotonic() + 120
        while True:
            boss.wait_for_selector("#kpis .kpi")
            kpis = boss.inner_text("#kpis")
            if "v1" in boss.inner_text("#models-table") or time.monotonic() > deadline:
                break
            time.sleep(2)
            boss.reload()
        assert "20 items resolved" in kpis
        assert "v1" in boss.inner_text("#models-table")
        screenshot(boss, "ui-admin-lead-dashboard")

        # the admin page for the lead: the retrain job, the model version with its gate evidence
        boss.goto(f"{base}/ui/admin")
        boss.wait_for_selector("#jobs-table td")
        assert re.search(r"retrain\s+succeeded", boss.inner_text("#jobs-table"))
        boss.wait_for_selector("#models-table td")
        assert "v1" in boss.inner_text("#models-table")
        assert boss.is_hidden("#sec-create")  # leads do not create projects
        boss.click("#compare-form button[type=submit]")
        boss.wait_for_selector("#compare-table:not([hidden])")
        screenshot(boss, "ui-admin-lead")
        assert boss.errors == []


def test_the_review_page_says_what_a_key_does_and_hides_jargon(tmp_path: Path) -> None:
    """Issue 20, item 8: at a tier needing two votes a key records one vote (not "resolves"),
    the counter counts votes, an item without votes shows no 0 % posterior, and no priority or
    internal reason code reaches the screen."""
    require_browser()
    store = SqlStore(f"sqlite:///{tmp_path / 'review.db'}")
    auth = SqlAuthenticator(store, cache_seconds=0)
    ws = Workspace(store)
    loop = ws.create_project(
        {
            "name": "pairs",
            "labels": ["a", "b"],
            "features": ["x"],
            "routing": {"fallback_tier": 2, "audit_rate": 0.0},
            "tiers": [
                {"tier": 1, "name": "bulk"},
                {"tier": 2, "name": "second look", "required_annotations": 2},
            ],
        }
    )
    loop.ingest([{"external_id": "p1", "payload": {"x": 1.0}}, {"external_id": "p2", "payload": {"x": 2.0}}])
    auth.add_user("lee")
    auth.add_membership("lee", "pairs", "lead")
    token = auth.issue_token("lee")
    with live_server(create_app(ws, authenticator=auth, webhooks=False)) as base, chromium() as browser:
        page = login(browser, base, token, "dashboard")  # leads start on the dashboard
        page.goto(f"{base}/ui/review")
        page.wait_for_selector("#task-card:not([hidden])")
        why = page.inner_text("#task-why")
        assert why == "tier 2 · no model suggestion"
        assert "priority" not in why and "no_model" not in why
        assert page.inner_text("#key-hint") == "label key records your vote"
        assert page.inner_text("#posterior") == "No votes yet: yours is the first."
        assert "votes recorded on this page" in page.inner_text("#progress")
        screenshot(page, "ui-review-first-vote")
        page.keyboard.press("a")  # one-letter labels are their own keys
        expect(page.locator("#done-count")).to_have_text("1")
        page.wait_for_selector("#notice:text-matches('waits for more reviewers')")
        assert page.errors == []


def test_a_second_answer_on_an_audit_is_blind_even_for_experts(tmp_path: Path) -> None:
    """An audit answered before any model, contradicted by the champion, is asked again
    (``audit_recheck``). The expert who answers it sees neither the first answer nor its
    posterior, although experts see earlier votes on other tier-2 tasks, nor the model's
    suggestion: the audit certifies the model, so its answers must be independent of both. Nor
    does an annotator on the annotate page. A lead sees the votes, the stored prediction (none:
    the item came before any model) and "a quality check"."""
    require_browser()
    store = SqlStore(f"sqlite:///{tmp_path / 'recheck.db'}")
    auth = SqlAuthenticator(store, cache_seconds=0)
    ws = Workspace(store)
    loop = ws.create_project(
        {
            "name": "checked",
            "labels": ["a", "b"],
            "features": ["x"],
            "routing": {
                "audit_rate": 1.0,
                "audit_tier": 2,
                "audit_answers": 3,
                "certify": {"epsilon": 0.5, "delta": 0.5, "min_evidence": 1},
            },
            "tiers": [{"tier": 1, "name": "bulk"}, {"tier": 2, "name": "audit"}],
        }
    )
    loop.ingest([{"external_id": "c1", "payload": {"x": -5.0}}])
    first = loop.next_task("expert-1")
    assert first is not None and loop.submit(first.lease.id, "expert-1", "b").resolution is not None
    loop.use_model(lambda X: np.tile([0.75, 0.25], (len(X), 1)), force=True, persist=False)  # says "a"
    loop.certify()
    for user, role in (("ed", "expert"), ("lee", "lead"), ("ann", "annotator")):
        auth.add_user(user)
        auth.add_membership(user, "checked", role, None if role == "lead" else [2])
    tokens = {user: auth.issue_token(user) for user in ("ed", "lee", "ann")}
    hidden = "The model's suggestion is hidden on this task: answer on your own."
    with live_server(create_app(ws, authenticator=auth, webhooks=False)) as base, chromium() as browser:
        page = login(browser, base, tokens["ed"], "review")  # experts start on review
        page.wait_for_selector("#task-card:not([hidden])")
        assert page.inner_text("#task-why") == "tier 2"
        assert page.inner_text("#posterior") == "No votes yet: yours is the first."
        assert page.inner_text("#suggestion") == hidden
        screenshot(page, "ui-review-audit-recheck-expert")
        assert page.errors == []
        page.close()
        release_all(ws)  # the expert's page holds the task
        page = login(browser, base, tokens["lee"], "dashboard")
        page.goto(f"{base}/ui/review")
        page.wait_for_selector("#task-card:not([hidden])")
        assert page.inner_text("#task-why") == "tier 2 · a quality check"
        assert page.inner_text("#posterior").split() == ["b", "100%", "a", "0%"]
        assert page.inner_text("#suggestion") == "No model suggestion for this item."  # none at ingest
        screenshot(page, "ui-review-audit-recheck-lead")
        assert page.errors == []
        page.close()
        release_all(ws)
        page = login(browser, base, tokens["ann"], "annotate")
        page.wait_for_selector("#task-card:not([hidden])")
        assert page.inner_text("#suggestion") == hidden
        page.keyboard.press(" ")  # elsewhere Space answers with the suggestion; here there is none
        page.wait_for_selector("#notice.warn:not([hidden])")
        assert (
            page.inner_text("#notice")
            == "There is no suggested label to accept here: choose a label with its key."
        )
        screenshot(page, "ui-annotate-audit-recheck")
        assert page.errors == []
    assert [a.annotator for a in loop.annotations(0, 100)] == ["expert-1"]  # nothing was submitted


def test_admin_routes_refuse_what_they_should(tmp_path: Path) -> None:
    """The admin page's routes over HTTP: who may do what, and bad input answered per field."""
    from fastapi.testclient import TestClient

    store = SqlStore(f"sqlite:///{tmp_path / 'routes.db'}")
    auth = SqlAuthenticator(store, cache_seconds=0)
    ws = Workspace(store)
    ws.create_project({"name": "other", "labels": ["a", "b"], "features": ["x"]})
    auth.add_user("root", admin=True)
    auth.add_user("lee")
    client = TestClient(create_app(ws, authenticator=auth, webhooks=False))
    root = {"Authorization": f"Bearer {auth.issue_token('root')}"}
    lee = {"Authorization": f"Bearer {auth.issue_token('lee')}"}

    made = client.post(
        "/v1/admin/projects", headers=root, json={"yaml": "name: p\nlabels: [a, b]\nfeatures: [x]\n"}
    )
    assert made.status_code == 201 and made.json()["config"]["tiers"][0]["required_annotations"] == 1
    bad = client.post(
        "/v1/admin/projects", headers=root, json={"yaml": "name: q\nlabels: [a, b]\nmodel: {kind: tfidf}\n"}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "model.kind", "message": "'tfidf' is not one of ['default', 'external', 'http']"}
    ]
    assert client.post("/v1/admin/projects", headers=root, json={"yaml": "- a list"}).status_code == 422
    assert client.post("/v1/admin/projects", headers=root, json={"yaml": "a: [b"}).json()["code"] == "invalid"
    assert (
        client.post("/v1/admin/projects", headers=root, json={}).status_code == 422
    )  # neither yaml nor config
    assert client.post("/v1/admin/projects", headers=lee, json={"config": {"name": "z"}}).status_code == 403

    auth.add_membership("lee", "p", "lead")
    added = client.post(
        "/v1/projects/p/members", headers=lee, json={"user": "ann", "role": "annotator", "tiers": [1]}
    )
    assert added.status_code == 201 and added.json()["new_user"] is True
    assert (
        client.post(
            "/v1/projects/p/members", headers=lee, json={"user": "ann", "role": "annotator"}
        ).status_code
        == 409
    )
    wrong_tier = client.post(
        "/v1/projects/p/members", headers=lee, json={"user": "bo", "role": "annotator", "tiers": [7]}
    )
    assert wrong_tier.status_code == 422 and "tiers are [1, 2, 3]" in wrong_tier.json()["message"]
    assert (
        client.post(
            "/v1/projects/p/members", headers=lee, json={"user": "root", "role": "viewer"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/v1/projects/other/members", headers=lee, json={"user": "x", "role": "viewer"}
        ).status_code
        == 404
    )

    issued = client.post("/v1/projects/p/members/ann/tokens", headers=lee).json()
    ann = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/v1/me", headers=ann).status_code == 200
    members = client.get("/v1/projects/p/members", headers=lee).json()["members"]
    assert members == [
        {"user": "ann", "role": "annotator", "tiers": [1], "tokens": [issued["id"]]},
        {"user": "lee", "role": "lead", "tiers": None, "tokens": [2]},
    ]
    assert issued["token"] not in str(members)
    assert client.get("/v1/projects/p/members", headers=ann).status_code == 403  # annotators do not manage
    assert client.post("/v1/projects/p/members/nobody/tokens", headers=lee).status_code == 404
    assert (
        client.post(f"/v1/projects/p/members/ann/tokens/{issued['id'] + 99}/revoke", headers=lee).status_code
        == 404
    )
    revoked = client.post(f"/v1/projects/p/members/ann/tokens/{issued['id']}/revoke", headers=lee)
    assert revoked.status_code == 200 and client.get("/v1/me", headers=ann).status_code == 401

    upload = "/v1/projects/p/uploads?format=csv"
    assert client.post(upload, headers=lee, content=b"  ").status_code == 422
    assert client.post("/v1/projects/p/uploads?format=xml", headers=lee, content=b"x").status_code == 422
    done = client.post(upload, headers=lee, content=b"external_id,x\nr1,1.5\nr2,oops\n").json()
    assert (done["read"], done["ingested"], done["rejected"]) == (2, 1, 1)
    assert done["rejected_rows"][0]["external_id"] == "r2"

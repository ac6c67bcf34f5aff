"""The web UI's login session and security headers, over HTTP on SQLite and PostgreSQL.

The login page trades the API token for an httpOnly, SameSite=Strict session cookie; only the
session id's hash is stored. Cookie-authenticated changes need ``X-Requested-With`` (CSRF);
revoking the token or logging out ends the session; bearer tokens work as before. Every UI
response carries the CSP and the other security headers.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from loopwright import Workspace
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.service.ui import CSP, PLOTLY_CSP
from loopwright.store.sql import SqlStore
from loopwright.store.sql.tables import leases, ui_sessions
from loopwright.store.sql.users import hash_token
from test_loop import CONFIG, points

UI_PATHS = [
    "/",
    "/ui/",
    "/ui/index",
    "/ui/annotate",
    "/ui/review",
    "/ui/static/lw.js",
    "/ui/static/login.js",
    "/ui/static/style.css",
    "/ui/vendor/plotly.min.js",
    "/ui/nope",
]


def _world(store: SqlStore) -> tuple[TestClient, SqlAuthenticator, dict[str, str]]:
    ws = Workspace(store)
    loop = ws.create_project(CONFIG)  # "toy"
    loop.ingest([r for r, _ in points(3)])
    auth = SqlAuthenticator(store)
    tokens = {}
    for name, role in [("ann", Role.ANNOTATOR), ("lea", Role.LEAD)]:
        auth.add_user(name)
        auth.add_membership(name, "toy", role, None)
        tokens[name] = auth.issue_token(name)
    return TestClient(create_app(ws, authenticator=auth), follow_redirects=False), auth, tokens


def _headers(response: Any) -> dict[str, str]:
    names = ["content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"]
    return {n: response.headers.get(n) for n in names}


def test_every_ui_response_has_the_security_headers(store: SqlStore) -> None:
    client, _, _ = _world(store)
    strict = {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }
    for path in UI_PATHS:
        r = client.get(path)
        assert r.status_code in (200, 307, 404), path
        assert _headers(r) == strict, path
    assert client.get("/ui/nope").status_code == 404
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ):
        assert directive in CSP
    assert "unsafe" not in CSP and "base-uri 'none'" in CSP
    r = client.get("/ui/dashboard")  # Plotly's hover labels need inline styles; scripts stay strict
    assert _headers(r) == {**strict, "content-security-policy": PLOTLY_CSP}
    assert "script-src 'self';" in PLOTLY_CSP and "style-src 'self' 'unsafe-inline'" in PLOTLY_CSP
    for name in ("index", "annotate", "review", "dashboard"):  # no inline script left to allow
        assert "<script>" not in client.get(f"/ui/{name}").text


def test_login_cookie_csrf_logout_and_revoke(store: SqlStore) -> None:
    client, auth, tokens = _world(store)
    r = client.post("/ui/session", json={"token": "not-a-token"})
    assert (r.status_code, r.json()["code"]) == (401, "unauthenticated") and "set-cookie" not in r.headers
    assert client.post("/ui/session", data={"token": tokens["ann"]}).status_code == 422  # a form: refused
    r = client.post("/ui/session", json={"token": tokens["ann"]})
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    session = client.cookies["loopwright_session"]
    assert session != tokens["ann"] and tokens["ann"] not in cookie
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes and "secure" not in attributes
    assert "samesite=strict" in cookie.lower()
    with store.engine.connect() as conn:  # only the hash of the session id is stored
        stored = conn.execute(select(ui_sessions.c.session_hash)).scalars().all()
    assert stored == [hash_token(session)]
    # the cookie authenticates reads; a change also needs the CSRF header
    assert client.get("/v1/me").json()["name"] == "ann"
    r = client.post("/v1/projects/toy/tasks/next")
    assert (r.status_code, r.json()["code"]) == (403, "forbidden") and "X-Requested-With" in r.json()[
        "message"
    ]
    with store.engine.connect() as conn:  # refused before anything was claimed
        assert conn.execute(select(func.count()).where(leases.c.annotator == "ann")).scalar_one() == 0
    r = client.post("/v1/projects/toy/tasks/next", headers={"X-Requested-With": "loopwright"})
    assert r.status_code == 200 and r.json()["lease"]["annotator"] == "ann"
    # bearer tokens keep working, with no header; a bearer wins over a cookie
    bearer = {"Authorization": f"Bearer {tokens['lea']}"}
    assert client.post("/v1/projects/toy/tasks/next", headers=bearer).status_code == 200
    assert client.get("/v1/me", headers=bearer).json()["name"] == "lea"
    # logging out ends the session on the server and clears the cookie
    r = client.delete("/ui/session")
    assert r.status_code == 204 and 'loopwright_session=""' in r.headers["set-cookie"]
    assert "loopwright_session" not in client.cookies
    assert client.get("/v1/me", cookies={"loopwright_session": session}).status_code == 401
    # a new session ends when its token is revoked
    client.post("/ui/session", json={"token": tokens["ann"]})
    assert client.get("/v1/me").status_code == 200
    assert auth.revoke_token(tokens["ann"])
    assert client.get("/v1/me").status_code == 401
    assert client.post("/ui/session", json={"token": tokens["ann"]}).status_code == 401


def test_secure_cookie_over_https(store: SqlStore) -> None:
    client, _, tokens = _world(store)
    https = TestClient(client.app, base_url="https://testserver")
    r = https.post("/ui/session", json={"token": tokens["ann"]})
    assert r.status_code == 204 and "secure" in r.headers["set-cookie"].lower()


def test_open_mode_needs_no_login(tmp_path: Any) -> None:
    ws = Workspace(SqlStore(f"sqlite:///{tmp_path / 'open.db'}"))
    client = TestClient(create_app(ws, open_access=True))
    r = client.post("/ui/session", json={"token": "anything"})
    assert r.status_code == 204 and "set-cookie" not in r.headers
    assert client.get("/v1/me").json()["name"] == "local"
    ws.close()


@pytest.mark.parametrize("session", ["", "forged"])
def test_a_bad_cookie_is_a_401(store: SqlStore, session: str) -> None:
    client, _, _ = _world(store)
    assert client.get("/v1/me", cookies={"loopwright_session": session}).status_code == 401

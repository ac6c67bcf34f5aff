"""Real-browser support for UI tests: a live uvicorn server and Debian's Chromium via Playwright.

Chromium comes from Debian (``apt-get install chromium``), never from Playwright's download.
Without it (or without Playwright) browser tests skip with the reason — unless
``LOOPWRIGHT_REQUIRE_BROWSER=1`` (as in CI), where they fail instead. Screenshots go to
``LOOPWRIGHT_ARTIFACTS`` (default ``test-artifacts/``) so a person can look at every page.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import live
from loopwright.errors import Conflict

CHROMIUM = os.environ.get("LOOPWRIGHT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("LOOPWRIGHT_ARTIFACTS", "test-artifacts"))
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    """Why a real browser cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def require_browser() -> None:
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("LOOPWRIGHT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests must run here: {reason}")
    pytest.skip(reason)


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with its lifespan (sweeper, webhooks, job worker) on 127.0.0.1; yields the URL."""
    with live.live_server(app, lifespan="auto", start_s=15) as url:
        yield url


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium driven by Playwright (one browser; make a context per test)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watch(page: Any) -> list[str]:
    """Collect the page's uncaught errors and Content Security Policy refusals (console errors):
    a test asserts the list stays empty, so a page that breaks under the CSP fails."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            errors.append(message.text)

    page.on("console", console)
    return errors


def stored_secrets(page: Any, token: str) -> list[str]:
    """Where script-readable storage holds ``token`` or anything named like a token or session."""
    storage = page.evaluate(
        "JSON.stringify({local: localStorage, session: sessionStorage, cookie: document.cookie})"
    )
    lowered = storage.lower()
    return [word for word in (token, "token", "session=") if word.lower() in lowered]


def sign_in(
    browser: Any, base: str, token: str, lands_on: str, wait_until: str = "load", height: int = 900
) -> Any:
    """A fresh 1280 x ``height`` browser context logged in by typing ``token`` and pressing Enter (the
    token field has the focus: no click needed), on ``/ui/<lands_on>``; uncaught errors and
    Content Security Policy refusals collect in ``page.errors``."""
    page = browser.new_context(viewport={"width": 1280, "height": height}).new_page()
    page.errors = watch(page)
    page.goto(f"{base}/ui/")
    page.wait_for_selector("#token:focus")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/ui/{lands_on}", wait_until=wait_until)
    return page


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact; returns its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def release_all(ws: Any) -> None:
    """Release every active lease of the workspace through the use case (a page claims an item
    of whichever project it lands on, and its own release on leaving may come late)."""
    with ws.store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT l.id, l.annotator, p.name FROM leases l JOIN tasks t ON t.id = l.task_id "
            "JOIN projects p ON p.id = t.project_id WHERE l.status = 'active'"
        ).all()
    for lease_id, annotator, project in rows:
        with contextlib.suppress(Conflict):  # the page's own release landed first
            ws.project(project).release(lease_id, annotator)


def switch_project(
    page: Any, base: str, ws: Any, project: str, to: str = "annotate", ready: str = "#task-card:not([hidden])"
) -> None:
    """Open ``/ui/<to>`` on ``project`` and wait for ``ready``. The page's own claims must have
    landed first: a claim still in flight when it leaves commits after the release and holds the
    item, which a new claim by the same annotator does not get. Then leave, release every lease."""
    page.wait_for_load_state("networkidle")
    page.evaluate(f"localStorage.setItem('loopwright.project', '{project}')")
    page.goto("about:blank")
    release_all(ws)
    page.goto(f"{base}/ui/{to}")
    try:
        page.wait_for_selector(ready)
    except Exception:
        screenshot(page, f"ui-debug-{project}")
        raise AssertionError(f"{page.errors} {page.inner_text('body')[:600]}") from None

"""The lead dashboard in a real browser (Debian Chromium via Playwright) over a live server.

A lead logs in with a token and opens the dashboard: every chart is drawn by Plotly from the
seeded run's data (trace and point counts match the API's JSON), the tables list every
annotator and model version. A viewer may open it too. Screenshots go to the test artifacts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from browser import chromium, live_server, screenshot, watch
from loopwright.service import Role, SqlAuthenticator, create_app
from test_dashboard import seeded_copy

CHARTS = [
    "chart-queue",
    "chart-throughput",
    "chart-automation",
    "chart-drift",
    "chart-agreement-label",
    "chart-agreement-pairs",
    "chart-skill",
    "chart-models",
]
# Per chart: the SVG groups its traces are drawn as.
DRAWN = {"chart-agreement-pairs": ".heatmaplayer .hm"}


def log_in(browser: Any, base: str, token: str) -> Any:
    """A fresh browser context that logged in through the form; returns the page."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors = watch(page)  # uncaught errors and Content Security Policy refusals
    page.goto(f"{base}/ui/")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    page.wait_for_selector("nav a[data-page=dashboard]")
    page.click("nav a[data-page=dashboard]")
    page.wait_for_selector("body[data-rendered]")
    page.errors = errors
    return page


@contextmanager
def lead_on_dashboard(url: str, project: str) -> Iterator[Any]:
    """The dashboard served from the database at ``url``, as "lea", a lead of ``project``."""
    app = create_app(url)
    auth = app.state.authenticator
    auth.add_user("lea")
    auth.add_membership("lea", project, Role.LEAD)
    with live_server(app) as base, chromium() as browser:
        yield log_in(browser, base, auth.issue_token("lea"))


def chart_facts(page: Any, chart: str) -> dict[str, Any]:
    """What Plotly drew into ``chart``: traces and points per trace, and SVG trace groups."""
    return page.evaluate(
        """([id, drawn]) => {
            const div = document.getElementById(id);
            const svg = div.querySelector(".main-svg");
            return {
              svg: svg !== null,
              traces: div.data.map((t) => ({type: t.type, points: (t.z ? t.z.flat() : t.y).length})),
              drawn: div.querySelectorAll(drawn).length,
              xtitle: div.querySelector(".xtitle")?.textContent,
              ytitle: div.querySelector(".ytitle")?.textContent,
            };
        }""",
        [chart, DRAWN.get(chart, ".cartesianlayer .trace")],
    )


def test_lead_sees_dashboard_charts_with_real_data(tmp_path: Path) -> None:
    url = seeded_copy(tmp_path)
    app = create_app(url)
    auth = app.state.authenticator
    assert isinstance(auth, SqlAuthenticator)
    tokens = {}
    for name, role in [("lea", Role.LEAD), ("vic", Role.VIEWER)]:
        auth.add_user(name)
        auth.add_membership(name, "digits", role)
        tokens[name] = auth.issue_token(name)
    with create_engine(url).connect() as conn:
        people = "SELECT annotator FROM annotations UNION SELECT annotator FROM gold_answers"
        annotators = conn.execute(text(f"SELECT count(*) FROM ({people})")).scalar_one()
        versions = conn.execute(text("SELECT count(*) FROM model_versions")).scalar_one()
    with live_server(app) as base, chromium() as browser:
        page = log_in(browser, base, tokens["lea"])
        d = page.evaluate("lw.api('GET', '/v1/projects/digits/dashboard')")
        n, tiers = len(d["buckets"]["starts"]), len(d["queue_depth"])
        facts = {chart: chart_facts(page, chart) for chart in CHARTS}
        assert all(f["svg"] and f["xtitle"] and f["ytitle"] for f in facts.values()), facts
        assert page.locator(".empty").count() == 0
        detected = sum(p["detected"] for p in d["drift"])
        retracted = sum(p["settled"] == "retracted" for p in d["drift"])
        uncertified = sum(c["threshold"] is None for c in d["certifications"])
        assert uncertified and detected  # the seeded run voids its certificate on drift
        pair_names = {x for p in d["agreement"]["pairs"]["cohen_kappa"] for x in (p["a"], p["b"])}
        expected = {  # points per trace, from the API's JSON and the DB
            "chart-queue": [n] * tiers,
            "chart-throughput": [n] * len(d["throughput_by_annotator"]),
            # a certified threshold is a segment until the next certificate, and a gap
            "chart-automation": [n, n, 3 * (len(d["certifications"]) - uncertified), uncertified],
            "chart-drift": [len(d["drift"]) - detected, detected - retracted] + [retracted] * (retracted > 0),
            "chart-agreement-label": [len(d["agreement"]["per_label"])] * 2,
            "chart-agreement-pairs": [len(pair_names) ** 2],
            "chart-skill": [annotators] * 2,
            "chart-models": [versions] * 2,
        }
        assert {c: [t["points"] for t in f["traces"]] for c, f in facts.items()} == expected
        assert {f["traces"][0]["type"] for f in facts.values()} == {"scatter", "bar", "heatmap"}
        for chart, f in facts.items():
            assert f["drawn"] == len(f["traces"]), chart
        assert page.locator("#skill-table tbody tr").count() == annotators == len(d["annotators"])
        assert page.locator("#models-table tbody tr").count() == versions
        assert page.locator("#skill-table .badge.paused").count() == 1  # t1-sloppy
        assert page.locator("#models-table .badge.rejected").count() >= 1
        assert page.locator("#kpis .kpi").count() == 7
        page.evaluate("dashboard.refresh()")  # what the 30-second timer does: redraw in place
        assert page.get_attribute("body", "data-rendered") == "2"
        assert {chart: chart_facts(page, chart) for chart in CHARTS} == facts
        point = page.locator("#chart-models .scatterlayer .trace").first.locator(".point").last
        point.scroll_into_view_if_needed()
        box = point.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # the rejected version
        page.wait_for_selector("#chart-models .hoverlayer .hovertext")
        assert "McNemar p" in (page.locator("#chart-models .hoverlayer").text_content() or "")
        shot = screenshot(page, "dashboard")
        assert shot.stat().st_size > 50_000 and page.errors == []

        viewer = log_in(browser, base, tokens["vic"])
        assert viewer.locator("#chart-queue .main-svg").count() >= 1
        assert viewer.locator("#skill-table tbody tr").count() == annotators
        assert "viewer" in viewer.locator("nav .who").inner_text() and viewer.errors == []


def test_empty_project_says_what_is_missing(tmp_path: Path) -> None:
    from loopwright.api import connect
    from loopwright.cli.demo import demo_config

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    connect(url).create_project(demo_config())
    with lead_on_dashboard(url, "digits") as page:
        assert page.locator(".empty").count() == len(CHARTS)
        assert "drift/check" in page.locator("[data-empty=chart-drift]").inner_text()
        assert "/v1/projects/digits/items" in page.locator("[data-empty=chart-queue]").inner_text()
        screenshot(page, "dashboard-empty")
        assert page.errors == []


def test_a_reviewer_who_only_accepts_suggestions_is_marked(tmp_path: Path) -> None:
    from loopwright.store.sql import SqlStore
    from test_deference import stamped_world

    url = f"sqlite:///{tmp_path / 'stamped.db'}"
    store = SqlStore(url)
    stamped_world(store)
    store.close()
    with lead_on_dashboard(url, "toy") as page:
        note = page.locator("#gold-note").inner_text()
        assert note.startswith("The champion gets 1 of the newest 3 gold items wrong: on those, gold catches")
        rows = page.locator("#skill-table tbody tr")
        assert rows.count() == 2
        stamp = rows.filter(has_text="stamp")
        assert "100.0 % of 80" in stamp.inner_text()
        badge = stamp.locator(".badge.paused")
        assert badge.inner_text() == "only accepts suggestions?"
        why = badge.get_attribute("title") or ""
        assert why.endswith("far more often than the others (p = 6.1e-8): check their work")
        assert rows.filter(has_text="care").locator(".badge.ok").inner_text() == "active"
        shot = screenshot(page, "dashboard-deference")
        assert shot.stat().st_size > 20_000 and page.errors == []


def test_the_gold_note_points_to_gold_from_the_audits_and_counts_it(tmp_path: Path) -> None:
    """No gold: the note names both ways to add some; once the audits the champion gets wrong
    are gold, it counts them."""
    from loopwright.store.sql import SqlStore
    from test_audit_gold import audited_world

    url = f"sqlite:///{tmp_path / 'audits.db'}"
    store = SqlStore(url)
    loop, _ = audited_world(store)
    with lead_on_dashboard(url, "audits") as page:
        note = page.locator("#gold-note").inner_text()
        assert note.startswith(
            "No gold items yet: add items with known answers (loopwright gold FILE), or loopwright "
            "gold --from-audits (POST /v1/projects/audits/gold/from-audits) makes gold of the audits "
            "the champion gets wrong. "
        )
        made = len(loop.gold_from_audits().candidates)
        page.reload()
        page.wait_for_selector("#skill-table")
        note = page.locator("#gold-note").inner_text()
        assert note.startswith(f"The champion gets {made} of the newest {made} gold items wrong: on those")
        screenshot(page, "dashboard-gold-from-audits")
        assert page.errors == []
    store.close()


def test_with_gold_from_audits_the_note_says_the_loop_makes_it(tmp_path: Path) -> None:
    from loopwright.store.sql import SqlStore
    from test_audit_gold import audited_world

    url = f"sqlite:///{tmp_path / 'audits.db'}"
    store = SqlStore(url)
    audited_world(store, gold={"from_audits": True})
    store.close()
    with lead_on_dashboard(url, "audits") as page:
        assert (
            page.locator("#gold-note")
            .inner_text()
            .startswith(
                "No gold items yet: add items with known answers (loopwright gold FILE), or the loop makes "
                "gold by itself (gold.from_audits) of the audits the champion gets wrong. "
            )
        )
        screenshot(page, "dashboard-gold-from-audits-auto")
        assert page.errors == []


def test_the_open_tasks_kpi_counts_the_audits_waiting_for_another_answer(tmp_path: Path) -> None:
    """An expert contradicts the model on an audit: until another expert answers it, the lead's
    open-tasks figure says that an audit waits (it counts as the model's error meanwhile)."""
    from loopwright.api import connect

    url = seeded_copy(tmp_path)
    ws = connect(url)
    loop = ws.project("digits")
    before = loop.status().audits_waiting
    audit_tier = loop.config.routing.audit_tier

    def answered(task_id: int) -> bool:
        with ws.store.unit_of_work() as uow:
            return bool(uow.annotations.for_task(task_id))

    while (a := loop.next_task("new-expert", [audit_tier])) is not None and (
        a.task.reason != "audit" or answered(a.task.id)
    ):  # an audit nobody has answered yet
        loop.skip(a.lease.id, "new-expert")  # not offered again
    assert a is not None and a.suggestion is not None, "the seeded run has an open audit"
    other = next(label for label in loop.config.labels if label != a.suggestion.label)
    assert loop.submit(a.lease.id, "new-expert", other).resolution is None  # asks a second opinion
    waiting = loop.status().audits_waiting
    assert waiting == before + 1
    ws.close()
    with lead_on_dashboard(url, "digits") as page:
        kpi = page.locator("#kpis .kpi").first.inner_text()
        assert f"{waiting} audits wait for another answer" in kpi, kpi
        screenshot(page, "dashboard-audits-waiting")
        assert page.errors == []

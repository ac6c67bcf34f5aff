"""Task types on the annotate and review pages in a real browser (Debian's Chromium via
Playwright), keyboard only: a label set ticked with checkbox keys, a 30-turn conversation rated
against a rubric with a correction, a pairwise preference, and a disputed label set resolved on
the review page. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from browser import chromium, live_server, require_browser, screenshot, sign_in, switch_project
from loopwright import Workspace
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

REVIEW = {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}
TIER = [{"tier": 1, "name": "bulk", "required_annotations": 1}]
TURNS = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: " + ("where is my parcel? " * 3)}
    for i in range(30)
]


@dataclass
class World:
    base: str
    ws: Workspace
    token: str
    lead_token: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_browser()
    store = SqlStore(f"sqlite:///{tmp_path_factory.mktemp('ui-tasks') / 'loopwright.db'}")
    ws = Workspace(store)
    base = {"model": {"kind": "external"}, "routing": REVIEW, "tiers": TIER}
    tickets = ws.create_project(
        {
            "name": "tickets",
            "labels": ["billing", "bug", "urgent"],
            "task": "multilabel",
            "features": ["x"],
            **base,
        }
    )
    tickets.ingest([{"external_id": "t-1", "payload": {"x": 1.0}}])
    two = [
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "lead", "required_annotations": 1},
    ]
    disputed = ws.create_project(
        {
            "name": "disputed",
            "labels": ["billing", "bug", "urgent"],
            "task": "multilabel",
            "features": ["x"],
            **base,
            "tiers": two,
        }
    )
    disputed.ingest([{"external_id": "d-1", "payload": {"x": 1.0}}])
    for who, said in (("a1", '["bug"]'), ("a2", '["bug","urgent"]')):  # split on urgent: up to tier 2
        claimed = disputed.next_task(who)
        assert claimed is not None
        disputed.submit(claimed.lease.id, who, said)
    text = {"modality": "text", "input_field": "text", **base}
    chat = ws.create_project(
        {
            "name": "chat",
            "labels": ["correct", "partially_correct", "wrong", "unsafe"],
            "task": "rubric",
            **text,
        }
    )
    chat.ingest(
        [
            {
                "external_id": "c-1",
                "payload": {"turns": TURNS, "answer": "It left the depot today.", "text": "parcel"},
            }
        ]
    )
    pairs = ws.create_project({"name": "pairs", "labels": ["A", "B", "tie"], "task": "preference", **text})
    pairs.ingest(
        [
            {
                "external_id": "p-1",
                "payload": {"turns": TURNS[:3], "answer_a": "Tomorrow.", "answer_b": "No idea.", "text": "p"},
            }
        ]
    )
    sets = ws.create_project(  # a built-in model: it suggests a label set
        {
            "name": "sets",
            "labels": ["billing", "bug", "urgent"],
            "task": "multilabel",
            "features": ["x0", "x1"],
            "routing": {**REVIEW, "accept_threshold": 1.0},  # everything to review
            "tiers": TIER,
            "retrain": {"min_labels": 20},
        }
    )
    points = np.random.default_rng(0).normal(size=(120, 2))
    sets.ingest(
        {"external_id": f"s{i}", "payload": {"x0": a, "x1": b}} for i, (a, b) in enumerate(points.tolist())
    )
    while (claimed := sets.next_task("seed")) is not None:
        x0, x1 = claimed.item.payload["x0"], claimed.item.payload["x1"]
        held = [
            n for n, on in zip(("billing", "bug", "urgent"), (x0 > 0, x1 > 0, x0 + x1 > 1), strict=True) if on
        ]
        sets.submit(claimed.lease.id, "seed", json.dumps(held))
    assert sets.retrain().promoted
    sets.ingest([{"external_id": "s-new", "payload": {"x0": 2.0, "x1": 1.5}}])
    auth = SqlAuthenticator(store)
    auth.add_user("ann")
    for project in ("tickets", "chat", "pairs", "sets"):
        auth.add_membership("ann", project, Role.ANNOTATOR, [1])
    auth.add_user("lead")
    auth.add_membership("lead", "disputed", Role.EXPERT, [2])
    token = auth.issue_token("ann")
    with live_server(create_app(ws, authenticator=auth)) as url:
        yield World(url, ws, token, auth.issue_token("lead"))
    store.close()


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    with chromium() as b:
        yield b


def _login(browser: Any, world: World, token: str, lands_on: str) -> Any:
    return sign_in(browser, world.base, token, lands_on, height=720)


@pytest.fixture(scope="module")
def page(browser: Any, world: World) -> Any:
    return _login(browser, world, world.token, "annotate")


def test_a_label_set_with_checkbox_keys(page: Any, world: World) -> None:
    switch_project(page, world.base, world.ws, "tickets")
    assert (
        page.eval_on_selector_all("#labels button", "bs => bs.map(b => b.getAttribute('role'))")
        == ["checkbox"] * 3
    )
    for key in ("3", "1", "2", "2"):  # tick urgent, billing, bug; untick bug
        page.keyboard.press(key)
    assert page.inner_text("#chosen-set") == "billing, urgent"
    checked = page.eval_on_selector_all("#labels button", "bs => bs.map(b => b.getAttribute('aria-checked'))")
    assert checked == ["true", "false", "true"]
    screenshot(page, "ui-annotate-multilabel")
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-card", state="hidden")
    (annotation,) = world.ws.project("tickets").annotations()
    assert annotation.label == json.dumps(["billing", "urgent"], separators=(",", ":"))
    assert page.errors == []


def test_the_suggested_label_set_reads_as_labels_and_stays_with_the_answer(page: Any, world: World) -> None:
    switch_project(page, world.base, world.ws, "sets")
    assert page.inner_text("#suggested-label") == "billing, bug, urgent"
    assert not page.is_visible("#space-hint")  # a set has no one label to accept with Space
    loop = world.ws.project("sets")
    with loop._ctx.store.unit_of_work() as uow:
        (item,) = uow.items.by_external_ids(loop.project.id, ["s-new"]).values()
    most = loop.explain(item.id).label  # the most probable label of the set, by name
    assert most in ("billing", "bug", "urgent")
    page.wait_for_selector(".why-list li")
    assert page.inner_text(".suggestion h4").startswith(f"What pushed the model to {most} (")
    screenshot(page, "ui-annotate-multilabel-suggested")
    for key in ("1", "2"):
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-card", state="hidden")
    with loop._ctx.store.unit_of_work() as uow:
        (kept,) = uow.annotations.for_item(item.id)
    assert (kept.annotator, kept.label, kept.suggested) == (
        "ann",
        '["billing","bug"]',
        '["billing","bug","urgent"]',
    )
    assert page.errors == []


def test_a_30_turn_conversation_rated_with_a_correction(page: Any, world: World) -> None:
    switch_project(page, world.base, world.ws, "chat")
    assert page.locator(".chat-turns .turn").count() == 30
    pane = page.eval_on_selector(
        "#chat-turns",
        "p => ({scroll: p.scrollHeight > p.clientHeight,"
        " bottom: p.scrollTop + p.clientHeight >= p.scrollHeight - 2})",
    )
    assert pane == {"scroll": True, "bottom": True}  # it scrolls, and starts at the latest turn
    assert page.inner_text("#answer .content") == "It left the depot today."
    page.keyboard.press("3")  # wrong
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "correction"
    page.keyboard.type("It is held at customs.")
    page.keyboard.press("Escape")
    screenshot(page, "ui-annotate-rubric")
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-card", state="hidden")
    loop = world.ws.project("chat")
    (annotation,) = loop.annotations()
    assert annotation.label == "wrong"
    submitted = [e for e in loop.events() if e.action == "annotation.submitted"]
    assert submitted[-1].data["comment"] == "It is held at customs."
    assert page.errors == []


def test_a_pairwise_preference(page: Any, world: World) -> None:
    switch_project(page, world.base, world.ws, "pairs")
    assert (
        page.inner_text("#answer-a .content") == "Tomorrow."
        and page.inner_text("#answer-b .content") == "No idea."
    )
    screenshot(page, "ui-annotate-preference")
    page.keyboard.press("1")  # A
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-card", state="hidden")
    (annotation,) = world.ws.project("pairs").annotations()
    assert annotation.label == "A"
    assert page.errors == []


def test_a_disputed_label_set_resolved_on_the_review_page(browser: Any, world: World) -> None:
    page = _login(browser, world, world.lead_token, "review")
    page.wait_for_selector("#task-card:not([hidden]) #labels button[role=checkbox]")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("#chosen-set") == "none"  # two sets with one vote each: nothing preselected
    for key in ("2", "3", "1", "1"):  # bug, urgent; billing on and off again
        page.keyboard.press(key)
    assert page.inner_text("#chosen-set") == "bug, urgent"
    screenshot(page, "ui-review-multilabel")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('notice').textContent.includes('Resolved')")
    (resolution,) = world.ws.project("disputed").resolutions()
    assert resolution.label == '["bug","urgent"]' and resolution.n_annotations == 1
    assert page.errors == []

"""Spans and boxes on the annotate and review pages in a real browser (Debian's Chromium via
Playwright): the model's proposals pre-filled, a span made with shift+arrows and one with the
mouse, adjusted and deleted with keys; a box drawn with the mouse before and after zooming,
moved, resized, relabelled and deleted with keys, the model's boxes hidden with h; the stored
geometry read back exactly. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from browser import chromium, live_server, require_browser, screenshot, sign_in, switch_project
from loopwright import Workspace
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

ROUTING = {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}
TIER = [{"tier": 1, "name": "bulk", "required_annotations": 1}]
TEXT = "Alice Smith flew from Paris to Berlin on Monday."
SIZE = (1440, 900)  # fitted at exactly 50 % in the 720 x 520 px box of a 1280 x 800 viewport


@dataclass
class World:
    base: str
    ws: Workspace
    token: str
    lead_token: str


def street(path: Path) -> str:
    """A picture with a grid every 100 px, so a screenshot shows where the boxes lie."""
    w, h = SIZE
    xs, ys = np.meshgrid(np.linspace(60, 200, w), np.linspace(90, 220, h))
    a = np.stack([xs, ys, 255 - xs / 2], axis=2).astype(np.uint8)
    a[::100, :, :] = 40
    a[:, ::100, :] = 40
    Image.fromarray(a).save(path, format="PNG")
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_browser()
    tmp = tmp_path_factory.mktemp("ui-structured")
    root = tmp / "images"
    root.mkdir()
    store = SqlStore(f"sqlite:///{tmp / 'loopwright.db'}")
    ws = Workspace(store)
    base = {"model": {"kind": "external"}, "routing": ROUTING, "tiers": TIER}
    names = ws.create_project(
        {
            "name": "names",
            "labels": ["PER", "LOC", "DATE"],
            "task": "spans",
            "modality": "text",
            "input_field": "text",
            **base,
        }
    )
    proposals = [
        {"start": 0, "end": 5, "label": "PER", "score": 0.55},
        {"start": TEXT.index("Paris"), "end": TEXT.index("Paris") + 5, "label": "LOC", "score": 0.9},
    ]
    names.ingest([{"external_id": "s-1", "payload": {"text": TEXT, "proposals": proposals}}])
    image = {"modality": "image", "input_field": "image", "media": {"roots": [str(root)]}}
    scenes = ws.create_project(
        {"name": "scenes", "labels": ["car", "person", "sign"], "task": "boxes", **image, **base}
    )
    boxes = [
        {"x": 100, "y": 100, "w": 200, "h": 150, "label": "car", "score": 0.62},
        {"x": 900, "y": 500, "w": 120, "h": 80, "label": "person", "score": 0.91},
    ]
    scenes.ingest(
        [{"external_id": "b-1", "payload": {"image": street(root / "street.png"), "proposals": boxes}}]
    )
    two = [
        {"tier": 1, "name": "bulk", "required_annotations": 2},
        {"tier": 2, "name": "lead", "required_annotations": 1},
    ]
    disputed = ws.create_project(
        {
            "name": "disputed",
            "labels": ["car", "person", "sign"],
            "task": "boxes",
            **image,
            **base,
            "tiers": two,
        }
    )
    disputed.ingest([{"external_id": "d-1", "payload": {"image": str(root / "street.png")}}])
    said = {
        "a1": [{"x": 200, "y": 200, "w": 300, "h": 200, "label": "car"}],
        "a2": [{"x": 800, "y": 100, "w": 100, "h": 300, "label": "person"}],
    }
    for who, answer in said.items():  # no box overlaps: a dispute, up to tier 2
        claimed = disputed.next_task(who)
        assert claimed is not None
        disputed.submit(claimed.lease.id, who, json.dumps(answer))
    quarrel = ws.create_project(
        {
            "name": "quarrel",
            "labels": ["PER", "LOC", "DATE"],
            "task": "spans",
            "modality": "text",
            "input_field": "text",
            **base,
            "tiers": two,
        }
    )
    quarrel.ingest([{"external_id": "q-1", "payload": {"text": TEXT}}])
    marked = {
        "a1": [{"start": 0, "end": 11, "label": "PER"}],
        "a2": [{"start": 0, "end": 5, "label": "PER"}, {"start": 22, "end": 27, "label": "LOC"}],
    }
    for who, answer in marked.items():
        claimed = quarrel.next_task(who)
        assert claimed is not None
        quarrel.submit(claimed.lease.id, who, json.dumps(answer))
    auth = SqlAuthenticator(store)
    auth.add_user("ann")
    for project in ("names", "scenes"):
        auth.add_membership("ann", project, Role.ANNOTATOR, [1])
    auth.add_user("lead")
    auth.add_membership("lead", "disputed", Role.EXPERT, [2])
    auth.add_membership("lead", "quarrel", Role.EXPERT, [2])
    with live_server(create_app(ws, authenticator=auth)) as url:
        yield World(url, ws, auth.issue_token("ann"), auth.issue_token("lead"))
    store.close()


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    with chromium() as b:
        yield b


def _login(browser: Any, world: World, token: str, lands_on: str) -> Any:
    return sign_in(browser, world.base, token, lands_on, height=800)


@pytest.fixture(scope="module")
def page(browser: Any, world: World) -> Any:
    return _login(browser, world, world.token, "annotate")


def _state(page: Any, kind: str) -> list[dict[str, Any]]:
    """What the editor holds now (the answer Enter would send)."""
    return list(json.loads(page.get_attribute(f"[data-{kind}]", f"data-{kind}")))


def _stored(world: World, project: str) -> list[dict[str, Any]]:
    (annotation,) = world.ws.project(project).annotations()
    return list(json.loads(annotation.label))


def _char_point(page: Any, offset: int, side: str) -> tuple[float, float]:
    """The screen point at the left (or right) edge of character ``offset`` of the span text."""
    point = page.evaluate(
        """([offset, side]) => {
          for (const part of document.querySelectorAll('#span-text [data-start]:not(.tag)')) {
            const start = Number(part.dataset.start), node = part.firstChild;
            if (offset < start || offset >= start + node.length) continue;
            const range = document.createRange();
            range.setStart(node, offset - start);
            range.setEnd(node, offset - start + 1);
            const r = range.getBoundingClientRect();
            return [side === 'left' ? r.left + 1 : r.right - 1, r.top + r.height / 2];
          }
        }""",
        [offset, side],
    )
    return float(point[0]), float(point[1])


def test_spans_made_adjusted_and_deleted_with_keys_and_mouse(page: Any, world: World) -> None:
    switch_project(page, world.base, world.ws, "names")
    page.wait_for_selector("#span-text")
    paris, berlin, monday = TEXT.index("Paris"), TEXT.index("Berlin"), TEXT.index("Monday")
    assert _state(page, "spans") == [
        {"start": 0, "end": 5, "label": "PER"},
        {"start": paris, "end": paris + 5, "label": "LOC"},
    ]
    assert page.locator("#span-text .sp.model").count() == 2  # proposals are dashed until touched
    assert "least sure at 55%" in page.inner_text("#proposal-summary")
    page.keyboard.press("Tab")  # the first span: "Alice"
    for _ in range(6):
        page.keyboard.press("}")  # its end one character right, six times: "Alice Smith"
    page.keyboard.press("Tab")  # "Paris"
    page.keyboard.press("Delete")
    page.keyboard.press("Home")
    for _ in range(berlin):
        page.keyboard.press("ArrowRight")
    for _ in range(len("Berlin")):
        page.keyboard.press("Shift+ArrowRight")
    assert "Selected “Berlin”" in page.inner_text("#shape-status")
    page.keyboard.press("2")  # LOC
    # the mouse: drag from the blank before "Monday" to the full stop; blanks are trimmed
    page.mouse.move(*_char_point(page, monday - 1, "left"))
    page.mouse.down()
    page.mouse.move(*_char_point(page, len(TEXT) - 1, "right"), steps=5)
    page.mouse.up()
    assert "Selected “ Monday.”" in page.inner_text("#shape-status")
    page.keyboard.press("3")  # DATE on "Monday." ...
    page.keyboard.press("{")  # ... its end one character left: "Monday"
    page.keyboard.press("[")  # start one left, then back: "[" and "]" move the start
    page.keyboard.press("]")
    expected = [
        {"start": 0, "end": 11, "label": "PER"},
        {"start": berlin, "end": berlin + 6, "label": "LOC"},
        {"start": monday, "end": monday + 6, "label": "DATE"},
    ]
    assert _state(page, "spans") == expected
    assert page.locator("#span-text .sp.model").count() == 0
    screenshot(page, "ui-annotate-spans")
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-card", state="hidden")
    assert _stored(world, "names") == expected
    assert page.errors == []


def _image_point(page: Any, x: float, y: float) -> tuple[float, float]:
    """The screen point of image pixel (x, y) at the current zoom."""
    point = page.evaluate(
        """([x, y]) => { const i = document.querySelector('#box-frame img'), r = i.getBoundingClientRect();
          return [r.left + x * r.width / i.naturalWidth, r.top + y * r.height / i.naturalHeight]; }""",
        [x, y],
    )
    return float(point[0]), float(point[1])


def _drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*_image_point(page, *start))
    page.mouse.down()
    page.mouse.move(*_image_point(page, *end), steps=6)
    page.mouse.up()


def test_boxes_drawn_moved_resized_relabelled_and_deleted(page: Any, world: World) -> None:
    switch_project(page, world.base, world.ws, "scenes")
    page.wait_for_function("() => document.querySelector('.box-editor')?.dataset.size === '1440x900'")
    assert float(page.get_attribute(".box-editor", "data-scale")) == 0.5  # fitted: far larger than its box
    assert page.locator("#box-layer g.model").count() == 2
    screenshot(page, "ui-annotate-boxes-proposed")
    page.keyboard.press("h")  # hide the model's boxes (they stay in the answer)
    assert page.locator("#box-layer g.model").count() == 0
    assert "2 model boxes hidden" in page.inner_text("#shape-status")
    page.keyboard.press("h")
    assert page.locator("#box-layer g.model").count() == 2
    page.keyboard.press("Tab")  # the model's car
    for _ in range(3):
        page.keyboard.press("Shift+ArrowRight")  # 10 px each
    page.keyboard.press("ArrowDown")  # 1 px
    page.keyboard.press("Alt+ArrowRight")  # the right edge 1 px right, twice
    page.keyboard.press("Alt+ArrowRight")
    page.keyboard.press("Control+ArrowDown")  # the top edge 1 px down
    page.keyboard.press("Alt+Shift+ArrowLeft")  # the right edge 10 px left
    page.keyboard.press("2")  # relabel: person
    page.keyboard.press("Tab")  # the model's person
    page.keyboard.press("Delete")
    page.keyboard.press("3")  # nothing selected: new boxes get sign
    _drag(page, (400, 300), (700, 500))
    page.keyboard.press("Escape")
    page.keyboard.press("1")  # new boxes get car
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert float(page.get_attribute(".box-editor", "data-scale")) == pytest.approx(0.78125)
    _drag(page, (820, 400), (760, 350))  # drawn up and to the left: the same box
    _drag(page, (790, 375), (810, 385))  # a drag inside a box moves it: 20 px right, 10 down
    _drag(page, (300, 600), (340, 640))  # one more, then removed with Backspace
    page.keyboard.press("Backspace")
    expected = [
        {"x": 130, "y": 102, "w": 192, "h": 149, "label": "person"},
        {"x": 400, "y": 300, "w": 300, "h": 200, "label": "sign"},
        {"x": 780, "y": 360, "w": 60, "h": 50, "label": "car"},
    ]
    assert _state(page, "boxes") == expected
    screenshot(page, "ui-annotate-boxes")
    page.keyboard.press("Enter")
    page.wait_for_selector("#task-card", state="hidden")
    assert _stored(world, "scenes") == expected
    assert page.errors == []


def test_disputed_boxes_corrected_on_the_review_page(browser: Any, world: World) -> None:
    page = _login(browser, world, world.lead_token, "review")
    page.wait_for_function("() => document.querySelector('.box-editor')?.dataset.size === '1440x900'")
    page.wait_for_load_state("networkidle")
    assert _state(page, "boxes") == []  # two different answers, no plurality, no proposals
    assert page.locator("#box-layer g.other").count() == 2  # the earlier answers, drawn dotted
    assert page.inner_text("#shape-others").splitlines() == [
        "Earlier answers",
        "start from a1's a1: car (200, 200) 300\u00d7200",
        "start from a2's a2: person (800, 100) 100\u00d7300",
    ]
    page.click("#shape-others button[data-who=a2]")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowLeft")  # the box 1 px left
    page.keyboard.press("Control+ArrowLeft")  # its left edge 1 px further
    page.keyboard.press("Escape")
    page.keyboard.press("3")  # draw signs: four more, so the answer is longer than any label
    for k in range(4):
        _drag(page, (100 + 150 * k, 600), (200 + 150 * k, 700))
    expected = [{"x": 798, "y": 100, "w": 101, "h": 300, "label": "person"}] + [
        {"x": 100 + 150 * k, "y": 600, "w": 100, "h": 100, "label": "sign"} for k in range(4)
    ]
    assert _state(page, "boxes") == expected
    screenshot(page, "ui-review-boxes")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('notice').textContent.includes('Resolved')")
    (resolution,) = world.ws.project("disputed").resolutions()
    assert json.loads(resolution.label) == expected  # sorted by y, then x: the order drawn
    assert len(resolution.label) > 200
    assert page.errors == []


def test_disputed_spans_corrected_on_the_review_page(browser: Any, world: World) -> None:
    page = _login(browser, world, world.lead_token, "review")
    switch_project(page, world.base, world.ws, "quarrel", to="review", ready="#span-text")
    page.wait_for_load_state("networkidle")
    assert _state(page, "spans") == []
    assert page.inner_text("#shape-others").splitlines() == [
        "Earlier answers",
        "start from a1's a1: PER \u201cAlice Smith\u201d",
        "start from a2's a2: PER \u201cAlice\u201d \u00b7 LOC \u201cParis\u201d",
    ]
    page.click("#shape-others button[data-who=a2]")
    page.click("#span-text .sp[data-i='0']")  # "Alice": the end to "Alice Smith" with }
    for _ in range(6):
        page.keyboard.press("}")
    page.keyboard.press("Tab")  # "Paris": its label to DATE, then back to LOC with a key
    page.keyboard.press("3")
    page.keyboard.press("2")
    page.keyboard.press("Escape")
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")  # before the full stop; Monday is the word before it
    page.keyboard.press("Control+Shift+ArrowLeft")
    page.keyboard.press("3")
    paris, monday = TEXT.index("Paris"), TEXT.index("Monday")
    expected = [
        {"start": 0, "end": 11, "label": "PER"},
        {"start": paris, "end": paris + 5, "label": "LOC"},
        {"start": monday, "end": monday + 6, "label": "DATE"},
    ]
    assert _state(page, "spans") == expected
    screenshot(page, "ui-review-spans")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('notice').textContent.includes('Resolved')")
    (resolution,) = world.ws.project("quarrel").resolutions()
    assert json.loads(resolution.label) == expected
    assert page.errors == []


def test_submit_takes_spans_and_boxes_as_lists_of_objects(tmp_path: Path) -> None:
    """The pages send an answer as its list of objects, so it may be longer than any label;
    more than MAX_SHAPES of them is refused at ``body.label`` and nothing is written."""
    from fastapi.testclient import TestClient

    from loopwright.service.routes.review import MAX_SHAPES

    store = SqlStore(f"sqlite:///{tmp_path / 'loopwright.db'}")
    ws = Workspace(store)
    loop = ws.create_project(
        {
            "name": "long",
            "labels": ["PER", "LOC"],
            "task": "spans",
            "modality": "text",
            "input_field": "text",
            "model": {"kind": "external"},
            "routing": ROUTING,
            "tiers": TIER,
        }
    )
    text = "Ann and Bob. " * 30
    loop.ingest([{"external_id": "l-1", "payload": {"text": text}}])
    auth = SqlAuthenticator(store)
    auth.add_user("ann")
    auth.add_membership("ann", "long", Role.ANNOTATOR, [1])
    client = TestClient(create_app(ws, authenticator=auth))
    headers = {"Authorization": f"Bearer {auth.issue_token('ann')}"}
    lease = client.post("/v1/projects/long/tasks/next", json={}, headers=headers).json()["lease"]["id"]
    names = [{"start": 13 * k, "end": 13 * k + 3, "label": "PER"} for k in range(30)]
    too_many = client.post(
        f"/v1/leases/{lease}/submit", json={"label": names * (MAX_SHAPES // 30 + 1)}, headers=headers
    )
    assert too_many.status_code == 422 and "spans or boxes" in too_many.text
    assert loop.annotations() == []
    done = client.post(f"/v1/leases/{lease}/submit", json={"label": names}, headers=headers)
    assert done.status_code == 200, done.text
    (annotation,) = loop.annotations()
    assert json.loads(annotation.label) == names and len(annotation.label) > 1000
    store.close()

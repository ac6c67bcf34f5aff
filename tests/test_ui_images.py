"""Images by reference on the annotate page, in a real browser (Debian's Chromium via Playwright):
an image far larger than the viewport is fitted into its box (and a small one, referenced
relative to the media root, enlarged to it), zoomed with + / - and the wheel,
the explanation's heat laid over it with h (an explanation that arrives late keeps the zoom), and
labelled with the keyboard. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from browser import chromium, live_server, require_browser, screenshot, sign_in, switch_project
from loopwright import Workspace
from loopwright.learning import default_estimator, featurize
from loopwright.scenarios.images import render
from loopwright.service import Role, SqlAuthenticator, create_app
from loopwright.store.sql import SqlStore

BIG = (4000, 2600)  # width, height: larger than any viewport
PREVIEW = [1024, 666]  # what the page loads first: the server's 1024 px thumbnail of it


@dataclass
class World:
    base: str
    ws: Workspace
    token: str
    big_item: int


def big_image(path: Path) -> str:
    """A large RGB picture: a gradient with a grid, so a screenshot shows what is drawn."""
    w, h = BIG
    xs, ys = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    a = np.stack([xs, ys, 255 - xs], axis=2).astype(np.uint8)
    a[::200, :, :] = 0
    a[:, ::200, :] = 0
    Image.fromarray(a).save(path, format="PNG")
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_browser()
    tmp = tmp_path_factory.mktemp("ui-images")
    root = tmp / "images"
    root.mkdir()
    store = SqlStore(f"sqlite:///{tmp / 'loopwright.db'}")
    ws = Workspace(store)
    config = {
        "labels": [str(d) for d in range(10)],
        "modality": "image",
        "input_field": "image",
        "media": {"roots": [str(root)]},
        "routing": {
            "accept_threshold": 1.0,
            "audit_rate": 0.0,
            "bands": [{"min_confidence": 0.0, "tier": 1}],
        },
        "tiers": [{"tier": 1, "name": "bulk", "required_annotations": 1}],
        "drift": {"check_on_ingest": False},
    }
    loop, late = (ws.create_project({"name": name, **config}) for name in ("scans", "late"))
    digits = load_digits()
    train = []
    for i in range(300):
        render(digits.data[i], root / f"train-{i}.png", "RGB" if i % 2 else "L")
        train.append({"image": str(root / f"train-{i}.png")})
    model = default_estimator(loop.config, 0).fit(
        featurize(loop.config, train), digits.target[:300].astype(str)
    )
    loop.use_model(model, force=True)
    late.use_model(model, force=True)
    render(digits.data[1000], root / "digit.png", "L")
    late.ingest([{"external_id": "slow", "payload": {"image": str(root / "digit.png")}}])
    report = loop.ingest(
        [
            {"external_id": "poster", "payload": {"image": big_image(root / "poster.png")}},
            {"external_id": "digit", "payload": {"image": "digit.png"}},  # relative to the media root
        ]
    )
    auth = SqlAuthenticator(store)
    auth.add_user("ann")
    auth.add_membership("ann", "scans", Role.ANNOTATOR, [1])
    auth.add_membership("ann", "late", Role.ANNOTATOR, [1])
    token = auth.issue_token("ann")
    with live_server(create_app(ws, authenticator=auth)) as base:
        yield World(base, ws, token, report.outcomes[0].item_id)
    store.close()


@pytest.fixture(scope="module")
def browser(world: World) -> Iterator[Any]:
    with chromium() as b:
        yield b


def _scale(page: Any) -> float:
    """The zoom of the image on show, read in one step once it is set (a re-render in between
    would leave a fresh ``.zoomable`` without it for a moment)."""
    found = page.wait_for_function(
        "() => { const z = document.querySelector('.zoomable');"
        " return z && z.dataset.scale ? Number(z.dataset.scale) : null; }"
    )
    return float(found.json_value())


def _loaded(page: Any) -> dict[str, Any]:
    """The geometry of the image on show, read in the same step that sees it loaded and fitted
    (the item is drawn again when its explanation arrives: a fresh, unfitted view may replace
    the one a separate wait had seen)."""
    found = page.wait_for_function(
        """() => {
          const view = document.querySelector('.zoomable');
          const i = view && view.querySelector('img');
          if (!i || !i.complete || !i.naturalWidth || !view.dataset.scale) return null;
          const img = i.getBoundingClientRect();
          const box = view.querySelector('.zoom-box').getBoundingClientRect();
          return {natural: [i.naturalWidth, i.naturalHeight], img: [img.left, img.top, img.right, img.bottom],
                  box: [box.left, box.top, box.right, box.bottom], vw: innerWidth, vh: innerHeight};
        }"""
    )
    return dict(found.json_value())


def test_large_image_fits_zooms_and_shows_the_explanation(browser: Any, world: World) -> None:
    page = sign_in(browser, world.base, world.token, "annotate")
    errors = page.errors
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(2):  # both items, in whatever order the queue offers them
        geometry = _loaded(page)
        name = "poster" if geometry["natural"] == PREVIEW else "digit"
        seen[name] = geometry
        left, top, right, bottom = geometry["img"]
        box = geometry["box"]
        # fitted: the whole image lies inside its box, which lies inside the viewport's width
        assert box[0] - 1 <= left and right <= box[2] + 1 and box[1] - 1 <= top and bottom <= box[3] + 1
        assert box[2] <= geometry["vw"]
        fitted = _scale(page)
        if name == "poster":
            assert fitted < 1  # the 1024 px preview, shrunk into the box
            assert page.get_attribute(".zoomable", "data-source") == "preview"
            width = right - left
            screenshot(page, "annotate-image-large-fitted")
            page.keyboard.press("+")
            page.keyboard.press("-")
            assert _scale(page) == pytest.approx(fitted, rel=1e-3)
            page.keyboard.press("+")
            assert _scale(page) == pytest.approx(fitted * 1.25, rel=1e-3)
            page.hover(".zoom-box")
            for _ in range(3):
                page.mouse.wheel(0, -100)  # wheel up zooms in at the pointer: past the preview's pixels
            page.wait_for_function("() => document.querySelector('.zoomable').dataset.source === 'full'")
            zoomed = _loaded(page)
            assert zoomed["natural"] == list(BIG)  # the original replaced the preview
            assert zoomed["img"][2] - zoomed["img"][0] > 1.5 * width
            screenshot(page, "annotate-image-large-zoomed")
            page.dblclick(".zoom-box")
            refit = _loaded(page)
            assert refit["img"][2] - refit["img"][0] == pytest.approx(width, abs=2)
        else:
            assert fitted > 5  # a 32 px scan is enlarged to fill the box
            page.wait_for_selector(".heat-row canvas")  # the champion's explanation arrived
            page.wait_for_function("() => document.querySelector('.zoomable img').complete")
            _loaded(page)
            assert page.is_hidden(".heat-overlay")
            page.keyboard.press("h")
            assert page.is_visible(".heat-overlay")
            screenshot(page, "annotate-image-digit-heat")
            page.keyboard.press("h")
            assert page.is_hidden(".heat-overlay")
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        page.wait_for_function(  # the next item, or the empty queue
            "(prev) => document.querySelector('#task-card').hidden"
            " || document.querySelector('#task-card').dataset.taskId !== prev",
            arg=page.get_attribute("#task-card", "data-task-id"),
        )
    assert set(seen) == {"poster", "digit"}
    assert errors == []


def test_an_explanation_that_arrives_late_keeps_the_zoom(browser: Any, world: World) -> None:
    page = sign_in(browser, world.base, world.token, "annotate")
    held: list[Any] = []  # the explanation's response, held back until the image is zoomed
    page.route("**/projects/late/items/*/explanation*", lambda route: held.append(route))
    switch_project(page, world.base, world.ws, "late")
    _loaded(page)
    fitted = _scale(page)
    page.keyboard.press("+")
    assert _scale(page) == pytest.approx(fitted * 1.25, rel=1e-3)
    page.wait_for_function("() => document.querySelector('.zoom-bar')")  # pumps the route handler
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector(".heat-row canvas")  # the explanation arrived and is shown
    assert _scale(page) == pytest.approx(fitted * 1.25, rel=1e-3)  # on the same view, still zoomed
    page.keyboard.press("h")
    assert page.is_visible(".heat-overlay")
    assert page.errors == []

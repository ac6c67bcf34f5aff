"""Spans and boxes through the loop: checked at submit against the item, resolved by the
structured vote, exported as offsets JSONL, CoNLL, COCO and YOLO; routing rules and the gates."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from loopwright import Workspace
from loopwright.errors import Invalid
from loopwright.shapes import Box, Span, least_confident
from loopwright.store.sql import SqlStore
from loopwright.tasks import boxes, spans
from people import bearer, members

TIERS = [
    {"tier": 1, "name": "bulk", "required_annotations": 2},
    {"tier": 2, "name": "lead", "required_annotations": 1},
]
ROUTING = {"audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]}
SPANS = {
    "name": "pii",
    "labels": ["EMAIL", "PHONE"],
    "task": "spans",
    "modality": "text",
    "model": {"kind": "external"},
    "routing": ROUTING,
    "tiers": TIERS,
}
T1 = "mail jo@example.com now"  # 23 characters; the address is [5, 19)
T2 = "call 555-0101 or 555-0199"  # [5, 13) and [17, 25)


def _answer(loop, who: str, label: str):  # type: ignore[no-untyped-def]
    a = loop.next_task(who)
    assert a is not None
    return loop.submit(a.lease.id, who, label)


def _spans(*rows: tuple[int, int, str]) -> str:
    return json.dumps([{"start": s, "end": e, "label": k} for s, e, k in rows])


def test_spans_are_checked_against_the_text_resolved_and_exported(store: SqlStore, tmp_path: Path) -> None:
    ws = Workspace(store)
    loop = ws.create_project(SPANS)
    proposal = [{"start": 5, "end": 19, "label": "EMAIL", "score": 0.91}]
    loop.ingest(
        [
            {"external_id": "m1", "payload": {"text": T1, "proposals": proposal}},
            {"external_id": "m2", "payload": {"text": T2}},
        ]
    )
    a = loop.next_task("ann1")
    assert a is not None and a.item.external_id == "m1"
    assert a.item.payload == {"text": T1, "proposals": proposal}  # what the reviewer is shown
    for bad, words in (
        (_spans((5, 24, "EMAIL")), "label[0]: [5, 24) lies outside the text (0..23)"),
        (
            _spans((0, 10, "EMAIL"), (5, 19, "EMAIL")),
            "label: [0, 10) and [5, 19) overlap; this task forbids it",
        ),
        (_spans((5, 19, "NAME")), "label[0].label: 'NAME' is not one of the project's labels"),
        (_spans((7, 7, "EMAIL")), "label[0]: [7, 7) is empty"),
    ):
        with pytest.raises(Invalid) as caught:
            loop.submit(a.lease.id, "ann1", bad)
        assert words in str(caught.value)
    assert loop.annotations() == [] and loop.events()[-1].action == "task.claimed"  # nothing written
    loop.submit(a.lease.id, "ann1", _spans((5, 19, "EMAIL")))
    agreed = _answer(loop, "ann2", _spans((5, 19, "EMAIL")))
    assert (
        agreed.resolution is not None and agreed.resolution.label == '[{"start":5,"end":19,"label":"EMAIL"}]'
    )
    assert agreed.resolution.agreement == 1.0
    # m2: ann2 misses the second number → a tie on it → the lead's answer is final
    _answer(loop, "ann1", _spans((17, 25, "PHONE"), (5, 13, "PHONE")))
    split = _answer(loop, "ann2", _spans((5, 13, "PHONE")))
    assert split.resolution is None and split.escalated_to is not None and split.escalated_to.tier == 2
    final = _answer(loop, "lead", _spans((5, 13, "PHONE"), (17, 25, "PHONE")))
    assert final.resolution is not None and final.resolution.agreement == 1.0
    version = loop.snapshot()
    offsets = loop.export_dataset(version.id, "offsets", tmp_path / "d.jsonl").read_text(encoding="utf-8")
    assert offsets == (  # in the version's order
        '{"id": "m2", "text": "call 555-0101 or 555-0199", "spans": '
        '[{"start": 5, "end": 13, "label": "PHONE", "text": "555-0101"}, '
        '{"start": 17, "end": 25, "label": "PHONE", "text": "555-0199"}]}\n'
        '{"id": "m1", "text": "mail jo@example.com now", "spans": '
        '[{"start": 5, "end": 19, "label": "EMAIL", "text": "jo@example.com"}]}\n'
    )
    conll = loop.export_dataset(version.id, "conll", tmp_path / "d.conll").read_text(encoding="utf-8")
    assert conll == (
        "# id = m2\ncall\tO\n555\tB-PHONE\n-\tI-PHONE\n0101\tI-PHONE\nor\tO\n555\tB-PHONE\n-\tI-PHONE\n"
        "0199\tI-PHONE\n\n"
        "# id = m1\nmail\tO\njo\tB-EMAIL\n@\tI-EMAIL\nexample\tI-EMAIL\n.\tI-EMAIL\ncom\tI-EMAIL\nnow\tO\n\n"
    )
    with pytest.raises(Invalid, match="export format coco is for task boxes projects; this one is spans"):
        loop.export_dataset(version.id, "coco", tmp_path)
    # the REST face serves the same bytes, and refuses a boxes format with the same words
    from fastapi.testclient import TestClient

    from loopwright.service import Role, create_app

    auth, tokens = members(SPANS["name"], {"viewer": Role.VIEWER})
    headers = bearer(tokens)["viewer"]
    with TestClient(create_app(ws, authenticator=auth), raise_server_exceptions=False) as client:
        url = f"/v1/projects/{SPANS['name']}/datasets/{version.id}/export"
        served = client.get(url, params={"format": "offsets"}, headers=headers)
        assert (served.status_code, served.text) == (200, offsets)
        assert client.get(url, params={"format": "conll"}, headers=headers).text == conll
        refused = client.get(url, params={"format": "coco"}, headers=headers)
        assert refused.status_code == 422 and "is for task boxes projects" in refused.text


def _png(path: Path, width: int, height: int) -> str:
    from PIL import Image

    Image.fromarray(np.full((height, width), 200, dtype=np.uint8), mode="L").save(path, format="PNG")
    return str(path)


def _boxes(*rows: tuple[float, float, float, float, str]) -> str:
    return json.dumps([{"x": x, "y": y, "w": w, "h": h, "label": k} for x, y, w, h, k in rows])


def test_boxes_are_checked_against_the_image_fused_and_exported(store: SqlStore, tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    config = {
        **SPANS,
        "name": "scans",
        "labels": ["cat", "dog"],
        "task": "boxes",
        "modality": "image",
        "input_field": "image",
        "media": {"roots": [str(media)], "features": "thumbnail", "size": 16},
    }
    loop = Workspace(store).create_project(config)
    loop.ingest(
        [
            {"external_id": "a", "payload": {"image": _png(media / "a.png", 40, 30)}},
            {"external_id": "b", "payload": {"image": _png(media / "b.png", 20, 20)}},
        ]
    )
    a = loop.next_task("ann1")
    assert a is not None and a.item.external_id == "a"
    for bad, words in (
        (_boxes((30, 10, 12, 5, "cat")), "label[0]: (30, 10, 12, 5) lies outside the 40x30 image"),
        (_boxes((1, 1, 0, 5, "cat")), "label[0]: zero or negative area (w=0, h=5)"),
        (_boxes((-1, 1, 5, 5, "cat")), "label[0]: (-1, 1) lies left of or above the image"),
        (_boxes((1, 1, 5, 5, "cow")), "label[0].label: 'cow' is not one of the project's labels"),
    ):
        with pytest.raises(Invalid) as caught:
            loop.submit(a.lease.id, "ann1", bad)
        assert words in str(caught.value)
    assert loop.annotations() == []
    loop.submit(a.lease.id, "ann1", _boxes((10, 10, 20, 10, "cat")))
    fused = _answer(loop, "ann2", _boxes((12, 10, 20, 10, "cat")))
    assert fused.resolution is not None  # the two boxes (IoU 0.82) fused: corners averaged
    assert fused.resolution.label == '[{"x":11.0,"y":10.0,"w":20.0,"h":10.0,"label":"cat"}]'
    assert fused.resolution.agreement == 1.0
    _answer(loop, "ann1", _boxes((0, 0, 10, 10, "dog")))
    split = _answer(loop, "ann2", _boxes((0, 0, 10, 10, "cat")))  # same box, labels split: a tie
    assert split.resolution is None and split.escalated_to is not None
    assert _answer(loop, "lead", _boxes((0, 0, 10, 10, "dog"), (12, 12, 8, 8, "cat"))).resolution is not None
    version = loop.snapshot()
    coco = json.loads((loop.export_dataset(version.id, "coco", tmp_path) / "annotations.json").read_text())
    order = [image["file_name"] for image in coco["images"]]  # the version's order (by content hash)
    assert sorted(order) == ["a.png", "b.png"]
    size = {"a.png": (40, 30), "b.png": (20, 20)}
    drawn = {
        "a.png": [(1, [11.0, 10.0, 20.0, 10.0], 200.0)],
        "b.png": [(2, [0.0, 0.0, 10.0, 10.0], 100.0), (1, [12.0, 12.0, 8.0, 8.0], 64.0)],
    }
    rows = [(i, c, bbox, area) for i, name in enumerate(order, start=1) for c, bbox, area in drawn[name]]
    assert coco == {
        "images": [
            {"id": i, "file_name": name, "width": size[name][0], "height": size[name][1]}
            for i, name in enumerate(order, start=1)
        ],
        "annotations": [
            {"id": k, "image_id": i, "category_id": c, "bbox": bbox, "area": area, "iscrowd": 0}
            for k, (i, c, bbox, area) in enumerate(rows, start=1)
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    }
    yolo = loop.export_dataset(version.id, "yolo", tmp_path)
    assert yolo.name == f"{version.id[:12]}-yolo"
    assert {p.name: p.read_text() for p in yolo.iterdir()} == {
        "classes.txt": "cat\ndog\n",
        "a.txt": "0 0.525000 0.500000 0.500000 0.333333\n",
        "b.txt": "1 0.250000 0.250000 0.500000 0.500000\n0 0.800000 0.800000 0.400000 0.400000\n",
    }


def test_the_rest_face_answers_422_naming_the_span_or_box(store: SqlStore) -> None:
    from fastapi.testclient import TestClient

    from loopwright.service import Role, create_app

    ws = Workspace(store)
    loop = ws.create_project(SPANS)
    loop.ingest([{"external_id": "m1", "payload": {"text": T1}}])
    auth, tokens = members("pii", {"ann": (Role.ANNOTATOR, [1])})
    h = bearer(tokens)["ann"]
    client = TestClient(create_app(ws, authenticator=auth), raise_server_exceptions=False)
    served = client.post("/v1/projects/pii/tasks/next", headers=h).json()
    assert served["item"]["payload"] == {"text": T1}
    lease = served["lease"]["id"]
    r = client.post(
        f"/v1/leases/{lease}/submit", json={"label": [{"start": 5, "end": 30, "label": "EMAIL"}]}, headers=h
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid", r.text
    assert r.json()["message"] == "label[0]: [5, 30) lies outside the text (0..23)"
    assert loop.annotations() == []
    r = client.post(
        f"/v1/leases/{lease}/submit", json={"label": [{"start": 5, "end": 19, "label": "EMAIL"}]}, headers=h
    )
    assert r.status_code == 200, r.text
    assert [a.label for a in loop.annotations()] == ['[{"start":5,"end":19,"label":"EMAIL"}]']


def test_proposals_confidence_and_the_error_rules() -> None:
    payload = {"text": T2, "proposals": [{"start": 5, "end": 13, "label": "PHONE", "score": 0.8}]}
    assert spans.proposals(payload, "text", ["PHONE"]) == [Span(5, 13, "PHONE", 0.8)]
    with pytest.raises(Invalid, match=r"proposals\[0\]: \[5, 40\) lies outside the text"):
        spans.proposals(
            {"text": T2, "proposals": [{"start": 5, "end": 40, "label": "PHONE"}]}, "text", ["PHONE"]
        )
    assert least_confident([0.8, 0.97, 0.3]) == pytest.approx(0.7)  # the 0.3 left out is 70 % sure
    assert least_confident([]) == 1.0
    assert spans.correct([Span(5, 13, "PHONE", 0.9)], [Span(5, 13, "PHONE")])
    assert not spans.correct([Span(5, 12, "PHONE")], [Span(5, 13, "PHONE")])  # one character off
    assert not spans.correct([], [Span(5, 13, "PHONE")])
    meta = {"image": {"width": 40, "height": 30}}
    found = boxes.proposals(
        {"proposals": [{"x": 1, "y": 2, "w": 3, "h": 4, "label": "cat", "score": 0.6}]},
        meta,
        "image",
        ["cat"],
    )
    assert found == [Box(1.0, 2.0, 3.0, 4.0, "cat", 0.6)]
    with pytest.raises(Invalid, match=r"proposals\[0\]: \(39, 2, 3, 4\) lies outside the 40x30 image"):
        boxes.proposals(
            {"proposals": [{"x": 39, "y": 2, "w": 3, "h": 4, "label": "cat"}]}, meta, "image", ["cat"]
        )
    truth = [Box(10, 10, 20, 20, "cat"), Box(50, 10, 10, 10, "dog")]
    assert boxes.correct([Box(12, 10, 20, 20, "cat"), Box(50, 11, 10, 10, "dog")], truth)
    assert not boxes.correct([Box(12, 10, 20, 20, "dog"), Box(50, 11, 10, 10, "dog")], truth)  # label
    assert not boxes.correct([Box(20, 20, 20, 20, "cat"), Box(50, 11, 10, 10, "dog")], truth)  # IoU 1/7
    assert not boxes.correct(truth[:1], truth)  # a missed box


def _noisy_spans(truth: list[list[Span]], keep: float, seed: int) -> list[list[Span]]:
    rng = random.Random(seed)
    return [[s for s in doc if rng.random() < keep] for doc in truth]


def test_the_span_gate_compares_entity_f1_with_a_paired_bootstrap() -> None:
    truth = [[Span(0, 4, "A"), Span(6, 9, "B")] for _ in range(40)]
    good, bad = _noisy_spans(truth, 0.95, 1), _noisy_spans(truth, 0.6, 2)
    first = spans.gate(truth, good, None)
    assert (first.passed, first.reason, first.n_eval) == (True, "first model: no champion", 40)
    worse = spans.gate(truth, bad, good, n_resamples=500, random_state=0)
    assert not worse.passed and worse.p_worse is not None and worse.p_worse < 0.05
    assert worse.metric == "entity_f1" and worse.delta == pytest.approx(worse.challenger - worse.champion)
    assert spans.gate(truth, good, bad, n_resamples=500).passed
    few = spans.gate(truth[:5], good[:5], None)
    assert (few.passed, few.reason) == (False, "5 evaluation items, need 10")
    with pytest.raises(Invalid, match="one prediction per evaluation item"):
        spans.gate(truth, good[:3], None)


def test_the_box_gate_compares_map_at_iou_with_a_paired_bootstrap() -> None:
    truth = [[Box(10, 10, 20, 20, "cat"), Box(40, 40, 10, 10, "dog")] for _ in range(30)]
    good = [[Box(11, 10, 20, 20, "cat", 0.9), Box(40, 41, 10, 10, "dog", 0.8)] for _ in range(30)]
    shifted = [[Box(20, 20, 20, 20, "cat", 0.9), Box(40, 41, 10, 10, "dog", 0.8)] for _ in range(30)]
    result = boxes.gate(truth, shifted, good, ["cat", "dog"], n_resamples=200)
    assert (result.metric, result.champion, result.challenger) == ("map@0.5", 1.0, 0.5)  # cat AP 0
    assert not result.passed and result.p_worse is not None and result.p_worse < 0.05
    loose = boxes.gate(truth, shifted, good, ["cat", "dog"], iou_threshold=0.1, n_resamples=200)
    assert (loose.metric, loose.challenger, loose.passed) == ("map@0.1", 1.0, True)  # IoU 1/7 ≥ 0.1


def test_the_spans_scenario_inserts_values_whose_offsets_are_the_truth() -> None:
    from loopwright.scenarios.spans import LABELS, insert_pii
    from loopwright.shapes import tokens

    rng = random.Random(7)
    text, found = insert_pii("see you at the station tonight", rng)
    assert text == "see you card 4111 1111 1111 1111 expires soon at the station tonight"
    assert [(text[s.start : s.end], s.label) for s in found] == [("4111 1111 1111 1111", "CARD")]
    for _ in range(200):  # every value sits on token boundaries, in the labels, never overlapping
        text, found = insert_pii("ok lar joking wif u oni", rng)
        edges = {b for t in tokens(text) for b in t}
        assert all(s.start in edges and s.end in edges and s.label in LABELS for s in found)
        assert all(a.end < b.start for a, b in pairwise(found))


def test_the_boxes_scenario_pastes_digits_where_its_boxes_say() -> None:
    from sklearn.datasets import load_digits

    from loopwright.scenarios.boxes import INK, PAPER, SIDE, canvas

    digits = load_digits()
    image, found = canvas(digits.data[:3], digits.target[:3], np.random.default_rng(0))
    assert image.shape == (SIDE, SIDE) and image.dtype == np.uint8
    assert [b.label for b in sorted(found, key=lambda b: b.label)] == ["0", "1", "2"]
    ink = image < (PAPER + INK) / 2
    inside = np.zeros_like(ink)
    for b in found:
        assert (b.w, b.h) == (16.0, 16.0) and b.x % 2 == 0 and b.y % 2 == 0
        inside[int(b.y) : int(b.y + b.h), int(b.x) : int(b.x + b.w)] = True
    assert ink.any() and not (ink & ~inside).any()  # every dark pixel is inside a box


@pytest.mark.slow
def test_spans_and_boxes_scenarios_small_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loopwright.scenarios import boxes as box_demo
    from loopwright.scenarios import runner
    from loopwright.scenarios import spans as span_demo

    data = Path("../shared/data")
    head = {"scenario", "items_seen", "human_labels", "auto_accepted", "auto_accept_error", "final_metric"}
    if (data / "text" / "sms_spam.csv").is_file():
        monkeypatch.setattr(span_demo, "ROUND_SIZE", 40)
        monkeypatch.setattr(span_demo, "QUICK_ROUNDS", 2)
        monkeypatch.setattr(span_demo, "HELD_OUT", 50)
        summary = runner("spans")(tmp_path / "spans", seed=0, quick=True, data_dir=data)
        assert set(summary) >= head and summary["items_seen"] == 80 == summary["resolved_items"]
        assert (
            summary["final_metric"]["name"] == "held_out_entity_f1" and summary["final_metric"]["value"] > 0.5
        )
        lines = Path(summary["exports"][0]).read_text(encoding="utf-8").splitlines()
        assert len(lines) == 80 and all(set(json.loads(x)) == {"id", "text", "spans"} for x in lines)
        assert (tmp_path / "spans" / "report.html").is_file()
    monkeypatch.setattr(box_demo, "ROUND_SIZE", 30)
    monkeypatch.setattr(box_demo, "QUICK_ROUNDS", 2)
    monkeypatch.setattr(box_demo, "HELD_OUT", 20)
    summary = runner("boxes")(tmp_path / "boxes", seed=0, quick=True)
    assert set(summary) >= head and summary["items_seen"] == 60 == summary["resolved_items"]
    assert summary["final_metric"]["name"] == "held_out_map@0.5" and summary["final_metric"]["value"] > 0.2
    coco = json.loads((Path(summary["exports"][0]) / "annotations.json").read_text())
    assert len(coco["images"]) == 60 and len(coco["categories"]) == 10


def test_a_structured_task_refuses_dawid_skene_on_whole_answers() -> None:
    from loopwright.config import ProjectConfig

    with pytest.raises(ValueError, match="task spans consolidates answers with its own structured vote"):
        ProjectConfig.model_validate({**SPANS, "consensus": {"method": "dawid_skene"}})


def test_proposals_outside_the_text_are_refused_at_ingest(store: SqlStore) -> None:
    loop = Workspace(store).create_project(SPANS)
    bad = [{"start": 5, "end": 40, "label": "EMAIL", "score": 0.9}]
    with pytest.raises(Invalid) as caught:
        loop.ingest([{"external_id": "m1", "payload": {"text": T1, "proposals": bad}}])
    assert caught.value.errors == [("[0].payload", "proposals[0]: [5, 40) lies outside the text (0..23)")]
    assert loop.status().items == 0  # nothing written

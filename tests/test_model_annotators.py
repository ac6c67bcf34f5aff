"""Model annotators: an LLM judge over the chat-completions wire format, and a model version.

No LLM can run here, so the judge is a small HTTP server started in the test on 127.0.0.1 that
speaks OpenAI's chat-completions format (``POST …/chat/completions`` → ``choices[0].message.
content``) and answers from the point in the prompt. Everything else is real: the stdlib HTTP
client, the store (SQLite and PostgreSQL), consensus and lineage.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import test_loop
from loopwright import Invalid, Loop, Workspace
from loopwright.config import ProjectConfig
from loopwright.domain import Route
from loopwright.integrations.chat import HttpChat
from loopwright.loop.model_annotators import parse_label
from loopwright.loop.resolve import fit_dawid_skene
from loopwright.store.sql import SqlStore

PROMPT = "Point ({x}, {y}). Which one of {labels} is it? Answer with the label only."
KEY = "sk-test-0123456789abcdef"
POINT = re.compile(r"Point \(([-0-9.e]+), ([-0-9.e]+)\)")


def nearest(x: float, y: float) -> str:
    return min(
        test_loop.CENTRES,
        key=lambda c: (x - test_loop.CENTRES[c][0]) ** 2 + (y - test_loop.CENTRES[c][1]) ** 2,
    )


class Judge(BaseHTTPRequestHandler):
    """``/{mode}/chat/completions``: good (right, sloppily formatted), bad (always wrong),
    unsure (prose), garbage (not JSON), slow (answers after 2 s), error (HTTP 500)."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode, _, rest = self.path.lstrip("/").partition("/")
        Judge.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if rest != "chat/completions":
            return self._send(404, b"{}")
        label = nearest(*map(float, POINT.search(body["messages"][-1]["content"]).groups()))  # type: ignore[union-attr]
        answers = {
            "good": f'  "{label.upper()}".\n',
            "bad": "abc"[("abc".index(label) + 1) % 3],
            "unsure": "b or c?",
        }
        if mode == "garbage":
            return self._send(200, b"<html>busy</html>")
        if mode == "error":
            return self._send(500, b'{"error": {"message": "overloaded"}}')
        if mode == "slow":
            time.sleep(2.0)
        if mode == "pause":
            time.sleep(0.2)
        content = answers.get(mode, label)
        completion = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        }
        self._send(200, json.dumps(completion).encode())

    def _send(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def judge(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "chat", "url": url, "model": "judge-1", "prompt": PROMPT, **extra}


def project(store: SqlStore, annotators: list[dict[str, Any]], **extra: Any) -> Loop:
    config = {**test_loop.CONFIG, "model_annotators": annotators, **extra}
    return Workspace(store, chat=HttpChat()).create_project(config)


def machine_rows(loop: Loop) -> list[tuple[str, str, str | None, str]]:
    """(external id, annotator, label, status) of every machine label, by item."""
    out = []
    for r, _ in test_loop.points(200):
        try:
            lineage = loop.lineage_of_item(r["external_id"])
        except Exception:
            break
        out += [
            (r["external_id"], a["annotator"], a["label"], a["status"])
            for a in lineage["annotations"]
            if a["machine"]
        ]
    return out


# -- the protocol -----------------------------------------------------------------------------


def test_parse_label_tolerates_case_whitespace_quotes_and_a_full_stop() -> None:
    labels = ["ham", "spam"]
    assert [parse_label(a, labels) for a in ['  "Spam". ', "`HAM`", "'ham'", "spam\n"]] == [
        "spam",
        "ham",
        "ham",
        "spam",
    ]
    assert [parse_label(a, labels) for a in ["spam or ham", "it is spam", "", "spa", "hams"]] == [None] * 5


def test_a_prompt_with_an_unknown_placeholder_is_a_config_error(store: SqlStore, judge_url: str) -> None:
    bad = judge("gpt-judge", judge_url, prompt="Classify {text} into {labels}")
    with pytest.raises(
        Invalid, match=r"unknown prompt placeholder\(s\) \['text'\]; known: \['labels', 'payload', 'x', 'y'\]"
    ):
        ProjectConfig.from_dict({**test_loop.CONFIG, "model_annotators": [bad]})
    with pytest.raises(Invalid, match=r"placeholder \{x\.real\} must be a plain name"):
        ProjectConfig.from_dict(
            {**test_loop.CONFIG, "model_annotators": [judge("j", judge_url, prompt="{x.real}")]}
        )
    with pytest.raises(Invalid, match="labels not in the project's labels"):
        ProjectConfig.from_dict(
            {**test_loop.CONFIG, "model_annotators": [judge("j", judge_url, labels=["a", "z"])]}
        )
    with pytest.raises(Invalid):
        Workspace(store).create_project({**test_loop.CONFIG, "model_annotators": [bad]})
    assert Workspace(store).projects() == []  # nothing written


def test_the_judge_is_called_over_the_chat_completions_wire_format(
    store: SqlStore, judge_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", KEY)
    loop = project(
        store, [judge("gpt-judge", f"{judge_url}/good/", api_key_env="JUDGE_KEY", system="Be terse.")]
    )
    Judge.seen.clear()
    data = test_loop.points(3)
    report = loop.ingest([r for r, _ in data])
    assert {o.route for o in report.outcomes} == {Route.REVIEW}
    assert [s["path"] for s in Judge.seen] == ["/good/chat/completions"] * 3
    assert {s["auth"] for s in Judge.seen} == {f"Bearer {KEY}"}
    first = Judge.seen[0]["body"]
    x, y = data[0][0]["payload"]["x"], data[0][0]["payload"]["y"]
    assert first == {
        "model": "judge-1",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": f"Point ({x}, {y}). Which one of a, b, c is it? Answer with the label only.",
            },
        ],
        "temperature": 0,
    }
    assert machine_rows(loop) == [(r["external_id"], "gpt-judge", y, "labelled") for r, y in data]
    # the key lives in the environment only: not in the config, the events or the machine labels
    stored = json.dumps(loop.config.model_dump(mode="json")) + json.dumps(
        [e.data for e in loop.events(limit=500)]
    )
    stored += json.dumps(machine_rows(loop))
    assert KEY not in stored and "JUDGE_KEY" in stored
    answered = [e.data for e in loop.events(limit=500) if e.action == "model_annotator.answered"]
    assert answered == [
        {"kind": "chat", "items": 3, "labelled": 3, "unparseable": 0, "failed": 0, "not_asked": 0}
    ]


# -- consensus, lineage, pre-labels -----------------------------------------------------------

DS = {
    "consensus": {"method": "dawid_skene"},
    "tiers": [{"tier": 1, "name": "all", "required_annotations": 2}],
    "routing": {"accept_threshold": 0.9, "audit_rate": 0.0, "bands": [{"min_confidence": 0.0, "tier": 1}]},
}


def test_judges_join_consensus_with_a_fitted_skill_and_never_resolve_alone(
    store: SqlStore, judge_url: str
) -> None:
    loop = project(
        store,
        [judge("good-judge", f"{judge_url}/good"), judge("bad-judge", f"{judge_url}/bad", prelabel=False)],
        **DS,
    )
    data = test_loop.points(30)
    truth = {r["external_id"]: y for r, y in data}
    loop.ingest([r for r, _ in data])
    rows = machine_rows(loop)
    assert len(rows) == 60 and all(status == "labelled" for *_, status in rows)
    # machine votes alone resolve nothing: every task still waits for its two human annotations
    assert loop.resolutions() == [] and loop.status().open_tasks_by_tier == {1: 30}
    # pre-labels: the good judge's label is shown with the task; the bad judge is not a pre-labeller
    assignment = loop.next_task("ann1")
    assert assignment is not None
    assert [(p.annotator, p.label) for p in assignment.prelabels] == [
        ("good-judge", truth[assignment.item.external_id])
    ]
    loop.release(assignment.lease.id, "ann1")
    # humans: ann1 always right, ann2 wrong on every third item
    rng = np.random.default_rng(0)
    busy = True
    while busy:
        busy = False
        for who in ("ann1", "ann2"):
            if (a := loop.next_task(who)) is None:
                continue
            label = truth[a.item.external_id]
            if who == "ann2" and int(a.item.external_id[1:]) % 3 == 0:
                label = str(rng.choice([c for c in "abc" if c != label]))
            loop.submit(a.lease.id, who, label)
            busy = True
    resolved = {r.item_id: r.label for r in loop.resolutions(limit=100)}
    assert len(resolved) == 30
    with store.unit_of_work() as uow:
        ds = fit_dawid_skene(loop._ctx, uow)
        items = {i.id: i.external_id for i in uow.items.get_many(list(resolved))}
    assert set(ds.skills_) == {"ann1", "ann2", "machine:good-judge", "machine:bad-judge"}
    assert ds.skills_["machine:good-judge"] > 0.99 and ds.skills_["machine:bad-judge"] < 0.01
    assert 0.6 < ds.skills_["ann2"] < 0.75
    assert all(truth[items[i]] == label for i, label in resolved.items())
    # lineage: machine labels are marked, human ones too
    lineage = loop.lineage_of_item(data[0][0]["external_id"])
    marks = sorted((a["annotator"], a["machine"], a.get("kind")) for a in lineage["annotations"])
    assert marks == [
        ("ann1", False, None),
        ("ann2", False, None),
        ("bad-judge", True, "chat"),
        ("good-judge", True, "chat"),
    ]


def test_without_a_judge_nothing_changes(store: SqlStore) -> None:
    loop = Workspace(store).create_project({**test_loop.CONFIG, **DS})
    loop.ingest([r for r, _ in test_loop.points(3)])
    assert machine_rows(loop) == [] and not [
        e for e in loop.events() if e.action.startswith("model_annotator")
    ]


# -- failures are recorded, the humans still review -------------------------------------------


@pytest.mark.parametrize(
    ("mode", "status", "detail"),
    [
        (
            "garbage",
            "failed",
            "ModelUnavailable: chat endpoint answered something other than a chat completion",
        ),
        ("error", "failed", "ModelUnavailable: chat endpoint answered HTTP 500"),
        ("slow", "failed", "ModelUnavailable: no answer from the chat endpoint: TimeoutError: timed out"),
        ("down", "failed", "ModelUnavailable: no answer from the chat endpoint: ConnectionRefusedError"),
        ("unsure", "unparseable", "b or c?"),
    ],
)
def test_a_judge_that_fails_is_recorded_and_the_items_stay_with_the_humans(
    store: SqlStore, judge_url: str, mode: str, status: str, detail: str
) -> None:
    url = "http://127.0.0.1:9" if mode == "down" else f"{judge_url}/{mode}"  # port 9: nothing listens
    loop = project(store, [judge("gpt-judge", url, timeout_s=0.3)])
    started = time.monotonic()
    report = loop.ingest([r for r, _ in test_loop.points(5)])
    elapsed = time.monotonic() - started
    assert report.created == 5 and {(o.route, o.reason) for o in report.outcomes} == {
        (Route.REVIEW, "no_model")
    }
    assert loop.status().open_tasks_by_tier == {1: 5} and loop.resolutions() == []
    rows = machine_rows(loop)
    (event,) = [e.data for e in loop.events(limit=500) if e.action == "model_annotator.answered"]
    if status == "failed":  # asked once, then no more in this batch: one timeout at most
        assert [(s, label) for _, _, label, s in rows] == [("failed", None)] and elapsed < 1.5
        assert (event["failed"], event["not_asked"], event["labelled"]) == (1, 4, 0)
        assert event["error"].startswith(detail)
    else:
        assert [(s, label) for _, _, label, s in rows] == [("unparseable", None)] * 5
        assert event["unparseable"] == 5
    lineage = loop.lineage_of_item("p0")
    (machine,) = [a for a in lineage["annotations"] if a["machine"]]
    assert machine["detail"].startswith(detail) and machine["label"] is None
    # the humans work the queue as usual
    assert test_loop.label_all(loop, {r["external_id"]: y for r, y in test_loop.points(5)}) == 10
    assert len(loop.resolutions()) == 5


def test_a_batch_spends_at_most_its_budget_on_a_judge(store: SqlStore, judge_url: str) -> None:
    loop = project(store, [judge("gpt-judge", f"{judge_url}/pause", batch_budget_s=0.5)])  # 0.2 s a call
    started = time.monotonic()
    loop.ingest([r for r, _ in test_loop.points(10)])
    assert time.monotonic() - started < 1.2
    (event,) = [e.data for e in loop.events(limit=500) if e.action == "model_annotator.answered"]
    assert 1 <= event["labelled"] <= 3 and event["not_asked"] >= 6
    assert event["labelled"] + event["failed"] + event["not_asked"] == 10
    assert loop.status().open_tasks_by_tier == {1: 10}


def test_a_judge_without_a_chat_client_is_recorded(store: SqlStore, judge_url: str) -> None:
    loop = Workspace(store).create_project({**test_loop.CONFIG, "model_annotators": [judge("j", judge_url)]})
    loop.ingest([r for r, _ in test_loop.points(2)])
    assert machine_rows(loop) == [("p0", "j", None, "failed")]


# -- a registered model version as annotator --------------------------------------------------


def test_a_model_version_annotates_with_its_predicted_label(store: SqlStore) -> None:
    annotators = [
        {"name": "v1", "kind": "model_version", "version": 1},
        {"name": "v9", "kind": "model_version", "version": 9},  # never registered: recorded
    ]
    loop = project(store, annotators)
    X = np.array([[0, 0], [12, 0], [0, 12]] * 5, dtype=float)
    loop.use_model(LogisticRegression().fit(X, ["b", "c", "a"] * 5), force=True)  # a confused model
    loop.ingest([{"external_id": "q", "payload": {"x": 0.0, "y": 0.0}}])  # confident "b": auto-accepted
    data = [({"external_id": "r", "payload": {"x": 6.0, "y": 6.0}}, "?")]
    report = loop.ingest([r for r, _ in data])
    assert report.outcomes[0].route is Route.REVIEW
    rows = machine_rows_of(loop, "r")
    assert rows[0] == ("v1", report.outcomes[0].label, "labelled", None)
    assert rows[1][:3] == ("v9", None, "failed") and "model version 9" in str(rows[1][3])
    assert machine_rows_of(loop, "q") == []  # auto-accepted items are not asked


def machine_rows_of(loop: Loop, external_id: str) -> list[tuple[str, str | None, str, str | None]]:
    lineage = loop.lineage_of_item(external_id)
    return [
        (a["annotator"], a["label"], a["status"], a["detail"]) for a in lineage["annotations"] if a["machine"]
    ]

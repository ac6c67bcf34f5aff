"""Schemathesis against the served OpenAPI spec: generated requests, as the admin, on a seeded DB.

Every operation gets ``EXAMPLES`` generated cases; in about half of them the path parameters
are swapped for seeded resources (project ``toy``, a live lease, dataset and model versions,
a webhook …) so that generated bodies and queries reach the use cases, not just the 404 of a
random project name. No response may be a server error, and every response must match the
status codes, content types and schemas the spec declares.

``test_all_phases`` runs the schemathesis CLI — examples, coverage, fuzzing and stateful
phases, another seed — over HTTP against the spec exactly as served, and counts at the server.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from loopwright.service import create_app
from service_world import Seeded, World, build_world

EXAMPLES = 30
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
NEGATIVE_EXAMPLES = 10
NEGATIVE_CHECKS = [not_a_server_error, status_code_conformance]  # invalid input: any documented 4xx


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build_world(f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'world.db'}")
    yield w
    w.ws.close()


def seeded_params(path: str, s: Seeded) -> dict[str, Any]:
    """Real values for the path parameters of ``path`` in project ``s``."""
    return {
        "name": s.name,
        "lease_id": s.lease_id,
        "ref": s.dataset if "/datasets/" in path else 1,
        "a": s.dataset,
        "b": s.dataset,
        "version": 1,
        "annotator": "sim1",
        "external_id": "p0",
        "webhook_id": s.webhook_id,
        "delivery_id": s.delivery_id,
        "item_id": s.item_id,
        "task_id": s.task_id,
    }


@dataclass
class Tally:
    """What the generated requests got: counts, server errors, spec mismatches."""

    sent: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def record(self, op: APIOperation, case: schemathesis.Case, response: Any, negative: bool) -> None:
        self.sent[op.label] += 1
        self.statuses[response.status_code] += 1
        where = (
            f"{op.label} -> {response.status_code}: {case.path_parameters} {case.query} {case.body!r:.200}"
        )
        if response.status_code >= 500:
            self.server_errors.append(where)
        try:
            case.validate_response(response, checks=NEGATIVE_CHECKS if negative else CHECKS)
        except (FailureGroup, Failure) as exc:  # keep going: report them all at the end
            for f in exc.exceptions if isinstance(exc, FailureGroup) else [exc]:
                self.nonconforming.append(f"{where}\n    {f.title}: {f.message[:300]}")


def exercise(
    op: APIOperation, cases: st.SearchStrategy[Any], n: int, call: Any, tally: Tally, negative: bool
) -> None:
    """Send ``n`` generated cases of ``op`` (fewer when the strategy runs out of new ones)."""

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: schemathesis.Case) -> None:
        tally.record(op, case, call(case), negative)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
        assert negative, op.label


def test_generated_requests(world: World) -> None:
    app = create_app(world.ws, authenticator=world.auth, webhooks=False)
    spec = TestClient(app).get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)  # as served: no rewriting
    schema.app, schema.location = app, "/openapi.json"  # what from_asgi sets
    headers = world.headers("root")
    tally = Tally()

    def call(case: schemathesis.Case) -> Any:
        return case.call(headers=headers)

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        op = result.ok()
        names = {p.name for p in op.path_parameters}
        real = {k: v for k, v in seeded_params(op.path, world.projects["toy"]).items() if k in names}
        cases = op.as_strategy()
        if real:  # set at generation: mutating a case later trips schemathesis issue #4099
            cases = st.one_of(cases, op.as_strategy(path_parameters=real))
        exercise(op, cases, EXAMPLES, call, tally, negative=False)
        invalid = op.as_strategy(GenerationMode.NEGATIVE, path_parameters=real or None)
        exercise(op, invalid, NEGATIVE_EXAMPLES, call, tally, negative=True)

    total = sum(tally.sent.values())
    print(f"{total} requests to {len(tally.sent)} operations; statuses {sorted(tally.statuses.items())}")
    assert total >= 1000, f"only {total} requests: {tally.sent}"
    assert len(tally.sent) == sum(len(ops) for ops in spec["paths"].values())  # every operation
    assert tally.server_errors == [], "\n".join(tally.server_errors[:20])
    assert tally.nonconforming == [], f"{len(tally.nonconforming)} of {total}:\n" + "\n".join(
        tally.nonconforming[:20]
    )


ALL_PHASES_SEED = 20261202  # not the derandomized generation above
ALL_PHASES_EXAMPLES = 40  # per operation and phase: about 3,300 requests, 1.5 minutes
MIN_REQUESTS = 3000
CLI_CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


class Counted:
    """ASGI wrapper: every request the server answers, and the ones it answered 5xx."""

    def __init__(self, app: Any) -> None:
        self.app, self.requests = app, 0
        self.server_errors: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.requests += 1
                if message["status"] >= 500:
                    self.server_errors.append(f"{scope['method']} {scope['path']} -> {message['status']}")
            await send(message)

        await self.app(scope, receive, counting_send)


@contextlib.contextmanager
def served_on_loopback(app: Any) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def cli_config(s: Seeded) -> str:
    """Seeded values for path parameters, drawn often (not always: random ones are tried too)."""
    values: dict[str, list[Any]] = {
        "name": [s.name],
        "lease_id": [s.lease_id],
        "ref": [s.dataset, "1", "champion"],
        "a": [s.dataset],
        "b": [s.dataset],
        "version": [1, "1"],
        "annotator": ["sim1"],
        "external_id": ["p0"],
        "webhook_id": [s.webhook_id],
        "delivery_id": [s.delivery_id],
        "item_id": [s.item_id],
        "task_id": [s.task_id],
    }
    lines = []
    for key, vals in values.items():
        lines += [f"[dictionaries.{key}]", f"values = {json.dumps(vals)}"]
    lines.append("[parameters]")
    lines += [f'"path.{key}" = {{ dictionary = "{key}", probability = 0.7 }}' for key in values]
    return "\n".join(lines) + "\n"


def test_all_phases(world: World, tmp_path: Path) -> None:
    """Every schemathesis phase over the served spec: no 5xx, every response as documented."""
    app = Counted(create_app(world.ws, authenticator=world.auth, webhooks=False))
    config = tmp_path / "schemathesis.toml"
    config.write_text(cli_config(world.projects["toy"]))
    report = tmp_path / "report.json"
    cli = Path(sys.executable).with_name("schemathesis")
    with served_on_loopback(app) as url:
        # one worker: hypothesis describes strategies with ast, which CPython 3.11 trips on in threads
        command = [str(cli), "--config-file", str(config), "run", f"{url}/openapi.json"]
        command += ["--phases", "examples,coverage,fuzzing,stateful", "--seed", str(ALL_PHASES_SEED)]
        command += ["-n", str(ALL_PHASES_EXAMPLES), "-w", "1", "-c", CLI_CHECKS, "--no-shrink"]
        command += ["-H", f"Authorization: Bearer {world.tokens['root']}"]
        command += ["--report", "json", "--report-json-path", str(report), "--output-truncate", "true"]
        run = subprocess.run(  # in tmp_path: its cache directory stays out of the tree
            command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
        )
    summary = json.loads(report.read_text())
    print(
        f"schemathesis CLI: {app.requests} requests served; test cases {summary['test_cases']};"
        f" phases {summary['phases']}"
    )
    tail = run.stdout[-6000:]
    assert app.requests >= MIN_REQUESTS, tail
    assert app.server_errors == [], app.server_errors[:20]
    assert summary["failures"] == [], tail
    assert summary["errors"] == [], tail
    assert summary["phases"]["fuzzing"]["status"] == "success", tail
    assert summary["phases"]["stateful"]["status"] == "success", tail
    assert run.returncode == 0, tail

"""Server work of one annotator cycle without HTTP: CPU ms per next → submit, in-process.

Per backend: a fresh database (SQLite file or a new PostgreSQL schema) seeded like
``load.py`` (no model, one tier, overlap 1), then the ``next`` and ``submit`` route functions
called directly with a cached caller (authentication, the use cases, the blind view and the
response body as FastAPI makes it: a returned ``Response`` as is, anything else validated against
the route's response model and serialised; no uvicorn, no HTTP parsing), sequentially in one thread. Reported:
the median over ``--blocks`` blocks of ``--cycles`` cycles of process CPU per cycle, and the SQL
statements of one cycle. Less noisy than ``load.py`` on a shared machine: one thread, no client
in the process, no scheduler between client and server.

``--compare SRC`` runs it again with ``PYTHONPATH=SRC`` (e.g. ``git archive HEAD src`` unpacked
in a temp dir) in a child process, alternating, so both sides share the machine's state.

    .venv/bin/python bench/cycle_cpu.py [--compare /tmp/base/src] [--backends postgres sqlite]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import PG_URL, database, load_average, seed


def measure(backend: str, pg_url: str, cycles: int, blocks: int) -> dict[str, Any]:
    from fastapi import Response
    from fastapi.encoders import jsonable_encoder
    from fastapi.routing import APIRoute
    from sqlalchemy import event

    from loopwright import Workspace
    from loopwright.service import SqlAuthenticator
    from loopwright.service.routes import review
    from loopwright.store.sql import SqlStore

    with database(backend, pg_url) as url:
        token = seed(url, "load", cycles * (blocks + 1) + 100, 1)[0]
        store = SqlStore(url)
        ws, auth = Workspace(store), SqlAuthenticator(store)

        def caller() -> Any:
            who = auth.resolve(token)
            assert who is not None, "the seeded token must resolve"
            return who

        routes = {r.endpoint.__name__: r for r in review.router.routes if isinstance(r, APIRoute)}

        def body(route: str, out: Any) -> bytes:
            """What FastAPI sends: a Response as is; else validated against the route's
            response model, then serialised (``serialize_response``'s fast path)."""
            if isinstance(out, Response):
                return bytes(out.body)
            field = routes[route].response_field
            assert field is not None, route
            value, errors = field.validate(jsonable_encoder(out), {}, loc=("response",))
            assert not errors, errors
            return field.serialize_json(value, exclude_unset=True)

        def cycle() -> None:
            out = body("next_task", review.next_task("load", ws, caller(), review.NextTaskIn()))
            lease = json.loads(out)["lease"]["id"]
            body("submit", review.submit(lease, review.SubmitIn(label="pos"), ws, caller()))

        for _ in range(30):  # lazy imports, caches, prepared statements
            cycle()
        statements: list[str] = []
        listening = [True]

        def on_execute(conn: Any, cursor: Any, sql: str, *_: Any) -> None:
            if listening[0]:
                statements.append(sql)

        event.listen(store.engine, "before_cursor_execute", on_execute)
        cycle()
        listening[0] = False
        per_block = []
        for _ in range(blocks):
            start = time.process_time()
            for _ in range(cycles):
                cycle()
            per_block.append(1000 * (time.process_time() - start) / cycles)
        store.close()
    return {
        "cpu_ms_per_cycle": round(statistics.median(per_block), 2),
        "blocks": [round(b, 2) for b in per_block],
        "statements": len(statements),
        "load": load_average(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=PG_URL)
    parser.add_argument("--backends", nargs="+", default=["postgres", "sqlite"])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--compare", help="the src directory of the code before")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out = {b: measure(b, args.pg, args.cycles, args.blocks) for b in args.backends}
        print(json.dumps(out))
        return
    results: dict[str, dict[str, Any]] = {"before": {}, "after": {}}
    for backend in args.backends:
        if args.compare:
            cmd = [sys.executable, __file__, "--child", "--pg", args.pg, "--backends", backend]
            cmd += ["--cycles", str(args.cycles), "--blocks", str(args.blocks)]
            env = {**os.environ, "PYTHONPATH": args.compare}
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            results["before"].update(json.loads(done.stdout.strip().splitlines()[-1]))
        results["after"][backend] = measure(backend, args.pg, args.cycles, args.blocks)
        print(backend, json.dumps({k: v.get(backend) for k, v in results.items()}), flush=True)
    target = Path(__file__).resolve().parent / "results" / "cycle_cpu.json"
    target.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

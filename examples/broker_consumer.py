"""Trigger a training pipeline from loopwright's events on NATS JetStream.

Run the publisher (``loopwright serve`` with ``LOOPWRIGHT_BROKER_URL=nats://127.0.0.1:4222``, or
``loopwright events publish --broker nats://127.0.0.1:4222``), then::

    python examples/broker_consumer.py --broker nats://127.0.0.1:4222 --every 50

A durable pull consumer (``trainer``) reads ``loopwright.*.model.retrain_due`` and
``loopwright.*.item.resolved``. It counts resolved items per project and calls
:func:`train` when the project says a retrain is due, or every ``--every`` resolved items. A
message is acked only after its work is done, so a consumer killed mid-way gets it again; the
``Nats-Msg-Id`` (``evt_<event id>``, the webhooks' id too) makes handling idempotent: an id
seen before is acked and skipped. Keep ``seen`` somewhere durable in a real pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections import Counter
from typing import Any

import nats
from nats.js.api import ConsumerConfig


def train(project: str, reason: str) -> None:
    """Your training pipeline (an Airflow/Dagster/Kubeflow run, a job submission, ...)."""
    print(f"training pipeline for {project!r} started: {reason}")


async def consume(
    broker: str, stream: str, prefix: str, every: int, idle_stop: float | None = None
) -> Counter[str]:
    """Consume until interrupted (or ``idle_stop`` seconds with nothing new); resolved counts."""
    nc = await nats.connect(broker)
    js = nc.jetstream()
    subjects = [f"{prefix}.*.model.retrain_due", f"{prefix}.*.item.resolved"]
    sub = await js.pull_subscribe(
        "",
        durable="trainer",
        stream=stream,
        config=ConsumerConfig(filter_subjects=subjects, ack_wait=60),
    )
    resolved: Counter[str] = Counter()
    seen: set[str] = set()
    idle = 0.0
    try:
        while idle_stop is None or idle < idle_stop:
            try:
                msgs = await sub.fetch(50, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                idle += 1.0
                continue
            idle = 0.0
            for msg in msgs:
                handle(msg.headers or {}, json.loads(msg.data), resolved, seen, every)
                await msg.ack()  # after the work: a crash before this means redelivery
    finally:
        await nc.close()
    return resolved


def handle(
    headers: dict[str, Any], body: dict[str, Any], resolved: Counter[str], seen: set[str], every: int
) -> None:
    msg_id = headers.get("Nats-Msg-Id", "")
    if msg_id in seen:
        return  # delivered again (e.g. after a restart before the ack): already handled
    seen.add(msg_id)
    project, action = body["data"]["project"], body["type"]
    if action == "model.retrain_due":
        train(project, "the project says a retrain is due")
    elif action == "item.resolved":
        resolved[project] += 1
        if resolved[project] % every == 0:
            train(project, f"{resolved[project]} items resolved")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", default="nats://127.0.0.1:4222")
    ap.add_argument("--stream", default="LOOPWRIGHT")
    ap.add_argument("--prefix", default="loopwright")
    ap.add_argument("--every", type=int, default=100, help="train after this many resolved items")
    args = ap.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops it
        asyncio.run(consume(args.broker, args.stream, args.prefix, args.every))


if __name__ == "__main__":
    main()

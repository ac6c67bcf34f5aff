"""`loopwright events` (the audit log, as before) and `loopwright events publish --broker URL`:
the event log published to NATS JetStream from a process of its own (the server does the same
in the background when ``LOOPWRIGHT_BROKER_URL`` is set)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console

from loopwright.api import connect
from loopwright.cli import lineage
from loopwright.cli.options import DbOption, JsonOption, ProjectOption, existing_db

err = Console(stderr=True)
events_app = typer.Typer(
    help="The append-only audit log; `events publish` sends it to a broker.",
    invoke_without_command=True,
)


@events_app.callback()
def events(
    ctx: typer.Context,
    db: DbOption = None,
    project: ProjectOption = None,
    after: Annotated[int, typer.Option(help="Only events with an id above this.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many events.")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. model.promoted.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The append-only audit log: every state change with actor, action, subject and data."""
    if ctx.invoked_subcommand is None:
        lineage.events(db=db, project=project, after=after, limit=limit, action=action, as_json=as_json)


@events_app.command("publish")
def publish(
    broker: Annotated[str, typer.Option(help="NATS server with JetStream, e.g. nats://127.0.0.1:4222.")],
    db: DbOption = None,
    stream: Annotated[str, typer.Option(help="JetStream stream (created if missing).")] = "LOOPWRIGHT",
    prefix: Annotated[str, typer.Option(help="Subject prefix: <prefix>.<project>.<action>.")] = "loopwright",
    once: Annotated[
        bool, typer.Option("--once", help="Publish what is waiting and exit (exit 2 if the broker is down).")
    ] = False,
    retry: Annotated[float, typer.Option(min=0.1, help="Seconds between tries, broker down.")] = 5.0,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Events per round (one cursor move).")] = 200,
    lease: Annotated[
        float, typer.Option(min=1.0, help="Seconds the cursor stays leased to a publisher that died.")
    ] = 60.0,
) -> None:
    """Publish every event after this sink's cursor to JetStream, at least once (Nats-Msg-Id
    evt_<id> de-duplicates), then keep publishing new ones until Ctrl-C."""
    import asyncio  # here, not at start-up: every other command skips it

    from loopwright.integrations.broker import NatsPublisher, check_url

    check_url(broker)
    ws = connect(existing_db(db))
    publisher = NatsPublisher(
        ws.store, broker, stream=stream, prefix=prefix, retry=retry, batch=batch, lease=lease
    )
    if once:

        async def drain() -> int:
            total = 0
            try:
                while (done := await publisher.publish_once()).published:
                    total += done.published
            finally:
                await publisher.close()
            return total

        try:
            total = asyncio.run(drain())
        finally:
            ws.close()
        err.print(f"published {total} events to {broker} (stream {stream})")
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    err.print(f"publishing events to {broker} (stream {stream}, subjects {prefix}.>); Ctrl-C stops")
    try:
        asyncio.run(publisher.run())
    except KeyboardInterrupt:
        pass
    finally:
        ws.close()

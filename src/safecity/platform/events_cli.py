"""``safecity events relay | status | types``: the outbox relay and its health."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from safecity.platform.bus import make_bus
from safecity.platform.consumers import registered_consumers, start_registered
from safecity.platform.errors import SafeCityError
from safecity.platform.events import event_types
from safecity.platform.relay import Relay, outbox_status
from safecity.platform.runtime import Runtime, build_runtime

app = typer.Typer(help="Events: relay the outbox to the bus, show the outbox's status.")
out = Console()


def _runtime() -> Runtime:
    import safecity.models  # noqa: F401  (every table and the event types they register)

    return build_runtime()


async def _relay(
    runtime: Runtime, *, once: bool, consumers: bool, batch_size: int, poll: float
) -> int:
    bus = make_bus(runtime.settings, sessions=runtime.sessions)
    relay = Relay(sessions=runtime.sessions, bus=bus, batch_size=batch_size, poll_interval=poll)
    try:
        if once:
            return await relay.drain(timeout=120)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        if consumers:
            subs = await start_registered(bus, runtime.sessions)
            out.print(f"consumers: {', '.join(s.consumer for s in subs) or '(none registered)'}")
        out.print(f"relaying the outbox to {runtime.settings.bus_url}; Ctrl-C to stop")
        await relay.run(stop)
        return 0
    finally:
        await bus.close()


@app.command("relay")
def relay_command(
    once: bool = typer.Option(False, "--once", help="Publish what is pending, then exit."),
    consumers: bool = typer.Option(
        False, "--consumers", help="Also run every registered consumer in this process."
    ),
    batch_size: int = typer.Option(500, min=1, max=10_000, help="Events per publish."),
    poll: float = typer.Option(0.2, min=0.01, help="Idle poll interval (seconds)."),
) -> None:
    """Publish committed outbox events to the bus, in order, until stopped."""
    runtime = _runtime()
    try:
        published = asyncio.run(
            _relay(runtime, once=once, consumers=consumers, batch_size=batch_size, poll=poll)
        )
    except TimeoutError:
        raise SafeCityError("the relay could not publish everything pending within 120 s") from None
    finally:
        runtime.close()
    if once:
        typer.echo(f"published {published} event(s)")


@app.command("status")
def status_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Pending events, the age of the oldest, and the error holding the relay up."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            status = outbox_status(session)
    finally:
        runtime.close()
    if as_json:
        data = {
            "pending": status.pending,
            "sent": status.sent,
            "failing": status.failing,
            "oldest_pending_at": status.oldest_pending_at.isoformat()
            if status.oldest_pending_at
            else None,
            "oldest_pending_age_s": status.oldest_pending_age_s,
            "last_error": status.last_error,
            "last_error_event_id": status.last_error_event_id,
            "bus_url": runtime.settings.bus_url,
        }
        typer.echo(json.dumps(data))
        return
    table = Table(title="outbox", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("bus", escape(runtime.settings.bus_url))
    table.add_row("pending", str(status.pending))
    table.add_row("sent", str(status.sent))
    table.add_row("failing", str(status.failing))
    age = status.oldest_pending_age_s
    table.add_row("oldest pending", "-" if age is None else f"{age:.1f} s")
    table.add_row("last error", escape(status.last_error or "-"))
    table.add_row("consumers registered", str(len(registered_consumers())))
    out.print(table)


@app.command("types")
def types_command() -> None:
    """Registered event types (name, version, description)."""
    _runtime().close()
    table = Table(title="event types")
    for column in ("type", "version", "description"):
        table.add_column(column)
    for t in event_types():
        table.add_row(escape(t.name), str(t.version), escape(t.description))
    out.print(table)

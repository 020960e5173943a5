"""``safecity notify status | send-test | dispatch``: the notification outbox."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from safecity.platform import notify
from safecity.platform.db import new_id, transaction
from safecity.platform.errors import SafeCityError
from safecity.platform.notify_senders import mask_address, senders_for
from safecity.platform.runtime import Runtime, build_runtime

app = typer.Typer(help="Notifications (SMS, e-mail): status, a test message, dispatch now.")
out = Console()


def _runtime() -> Runtime:
    import safecity.models  # noqa: F401  (every table)

    return build_runtime()


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)


@app.command("status")
def status_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    limit: int = typer.Option(10, min=1, max=100, help="Recent failures to show."),
) -> None:
    """Counts by status and channel, what is due, and recent failures (no addresses)."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            st = notify.status(session, limit=limit)
    finally:
        runtime.close()
    settings = runtime.settings
    senders = {"email": settings.notify_sender, "sms": settings.notify_sms_sender}
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "counts": [c.__dict__ for c in st.counts],
                    "totals": {name: st.total(name) for name in notify.STATUSES},
                    "due_now": st.due_now,
                    "oldest_due_at": st.oldest_due_at.isoformat() if st.oldest_due_at else None,
                    "senders": senders,
                    "recent_failures": [f.model_dump(mode="json") for f in st.recent_failures],
                }
            )
        )
        return
    table = Table(title="notifications")
    table.add_column("channel")
    for name in notify.STATUSES:
        table.add_column(name, justify="right")
    for channel in notify.CHANNELS:
        table.add_row(
            channel,
            *(
                str(sum(c.count for c in st.counts if c.channel == channel and c.status == name))
                for name in notify.STATUSES
            ),
        )
    out.print(table)
    out.print(
        f"due now: {st.due_now} (oldest since {_fmt(st.oldest_due_at)}); "
        f"senders: e-mail={senders['email']}, sms={senders['sms']}",
        markup=False,
    )
    if st.recent_failures:
        failures = Table(title="recent failures")
        for column in ("id", "channel", "template", "status", "attempts", "error"):
            failures.add_column(column)
        for f in st.recent_failures:
            failures.add_row(
                f.id,
                f.channel,
                escape(_fmt(f.template)),
                f.status,
                f"{f.attempts}/{f.max_attempts}",
                escape(_fmt(f.last_error)),
            )
        out.print(failures)


@app.command("send-test")
def send_test(
    channel: str = typer.Option(..., "--channel", help="sms or email."),
    to: str = typer.Option(..., "--to", help="Phone number or e-mail address."),
    subject: str = typer.Option("SafeCity test message", help="E-mail subject."),
) -> None:
    """Enqueue a test message and send it now through the configured sender."""
    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            item = notify.enqueue(
                session,
                channel=channel,
                to=to,
                subject=subject,
                body="This is a test message from SafeCity. No action is needed.",
                template="notify.test",
                purpose="sender test by an operator",
                idempotency_key=f"notify.test:{new_id()}",
            )
            notification_id = item.id
        senders = senders_for(runtime.settings)
        report = notify.dispatch(
            runtime.sessions,
            senders=senders,
            backoff=notify.Backoff.from_settings(runtime.settings),
            ids=[notification_id],
        )
    finally:
        runtime.close()
    masked = mask_address(to)
    if report.sent:
        sender = senders[item.channel].name
        typer.echo(f"notification {notification_id} to {masked}: sent ({sender} sender)")
        return
    error = report.errors[0][1] if report.errors else "not sent"
    state = "will be retried" if report.retrying else "failed"
    raise SafeCityError(f"notification {notification_id} to {masked} {state}: {error}")


@app.command("dispatch")
def dispatch_command() -> None:
    """Send what is due now (the notify.dispatch job does this every minute)."""
    runtime = _runtime()
    try:
        report = notify.dispatch(
            runtime.sessions,
            senders=senders_for(runtime.settings),
            backoff=notify.Backoff.from_settings(runtime.settings),
        )
    finally:
        runtime.close()
    typer.echo(f"sent {report.sent}, retrying {report.retrying}, failed {report.failed}")

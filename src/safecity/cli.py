"""The ``safecity`` command: serve, demo, migrate, users, orgs, audit and each domain's commands.

Errors a user can cause end as one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer
from rich.console import Console

from safecity.platform.errors import InvalidInput, SafeCityError
from safecity.settings import get_settings

app = typer.Typer(
    name="safecity",
    help="SafeCity public-safety operations platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@app.command()
def migrate(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database schema to REVISION (default: head)."""
    from safecity.platform.migrations import upgrade

    upgrade(revision)
    typer.echo(f"database at {revision}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    workers: int = typer.Option(1, help="Worker processes."),
    embedded_workers: bool = typer.Option(
        True,
        "--embedded-workers/--no-embedded-workers",
        help="Run the outbox relay, consumers and job scheduler in the API process. "
        "Turn off when `safecity events relay` and `safecity jobs worker` run separately.",
    ),
) -> None:
    """Run the API and the console."""
    import os

    import uvicorn

    if embedded_workers and workers > 1:
        raise InvalidInput("--embedded-workers needs --workers 1; run the relay and jobs apart")
    os.environ["SAFECITY_EMBEDDED_WORKERS"] = "true" if embedded_workers else "false"
    get_settings.cache_clear()

    uvicorn.run(
        "safecity.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
    )


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="Start the server."),
    simulate: bool = typer.Option(
        True, "--sim/--no-sim", help="Start the city simulator feeding sensor traffic."
    ),
) -> None:
    """Migrate, seed the demo city and its users (every role), print logins, serve."""
    from safecity.demo import prepare, print_logins
    from safecity.platform.runtime import build_runtime

    runtime = build_runtime()
    try:
        logins = prepare(runtime)
    finally:
        runtime.close()
    url = f"http://{host}:{port}"
    print_logins(logins, Console(width=max(Console().width, 140)), url=url)
    if not serve_after:
        return
    simulator = fraud_feeder = None
    if simulate:
        # The city simulator runs as its own process and feeds the platform over HTTP.
        log = (get_settings().var_dir / "sim.log").open("a")
        simulator = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "safecity",
                "sim",
                "run",
                "--url",
                url,
                "--wait",
                "120",
                "--sensors",
                "500",
                "--rate",
                "20",
                "--minutes",
                "720",
                "--truth",
                str(get_settings().var_dir / "sim-truth.jsonl"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        Console().print(f"city simulator feeding {url} (log: {log.name})")
        # The fraud feeder plays a scam in real time every ten minutes (issue 9's demo).
        fraud_log = (get_settings().var_dir / "fraud-feed.log").open("a")
        fraud_feeder = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "safecity",
                "fraud",
                "feed",
                "--url",
                url,
                "--wait",
                "120",
                "--minutes",
                "720",
            ],
            stdout=fraud_log,
            stderr=subprocess.STDOUT,
        )
        Console().print(f"fraud feeder playing a scam every 10 min (log: {fraud_log.name})")
    try:
        serve(host=host, port=port, workers=1, embedded_workers=True)
    finally:
        for process in (simulator, fraud_feeder):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


def _register_subcommands() -> None:
    """Each area registers its own Typer sub-app here."""
    from safecity.platform import jobs_cli

    app.add_typer(jobs_cli.app, name="jobs")

    from safecity.platform import geo_cli

    app.add_typer(geo_cli.app, name="geo")

    from safecity.orgs import cli as orgs_cli

    app.add_typer(orgs_cli.app, name="orgs")

    from safecity.security import cli as users_cli

    app.add_typer(users_cli.app, name="users")

    from safecity.security import audit_cli

    app.add_typer(audit_cli.app, name="audit")

    from safecity.platform import events_cli

    app.add_typer(events_cli.app, name="events")

    from safecity.platform import notify_cli

    app.add_typer(notify_cli.app, name="notify")

    from safecity.sensing import rules_cli

    app.add_typer(rules_cli.app, name="rules")

    from safecity.sensing import cli as sensors_cli

    app.add_typer(sensors_cli.app, name="sensors")

    from safecity.sim import cli as sim_cli

    app.add_typer(sim_cli.app, name="sim")

    from safecity.crowd import cli as crowd_cli

    app.add_typer(crowd_cli.app, name="crowd")

    from safecity.linkage import cli as linkage_cli

    app.add_typer(linkage_cli.app, name="linkage")

    from safecity.fraud import cli as fraud_cli

    app.add_typer(fraud_cli.app, name="fraud")

    from safecity.traffic import cli as traffic_cli

    app.add_typer(traffic_cli.app, name="traffic")


_register_subcommands()


def main() -> None:
    try:
        app()
    except SafeCityError as exc:
        err.print(f"error: {exc.detail}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)

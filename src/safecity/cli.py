"""The ``safecity`` command: serve, demo, migrate, users, orgs, audit and each domain's commands.

Errors a user can cause end as one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import importlib
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
    import os

    from safecity.cases import demo_desk
    from safecity.crowd import demo as crowd_demo
    from safecity.demo import prepare, print_logins, print_lookup
    from safecity.platform.runtime import build_runtime

    # The demo duty desk (cases from simulated alerts) runs only here: registered in this
    # process, whose embedded scheduler runs it, and switched on by its setting.
    os.environ["SAFECITY_DEMO_DUTY_DESK"] = "true"
    os.environ["SAFECITY_DEMO_CROWD"] = "true"  # the Bund crowd's feeder, likewise
    get_settings.cache_clear()
    demo_desk.register()
    crowd_demo.register()
    runtime = build_runtime()
    try:
        setup = prepare(runtime)
    finally:
        runtime.close()
    url = f"http://{host}:{port}"
    console = Console(width=max(Console().width, 140))
    print_logins(setup.logins, console, url=url)
    print_lookup(setup.lookup, console, url=url)
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


#: Each area's Typer sub-app: command name -> (module, attribute). Only the group a command
#: line names is imported (``safecity jobs worker`` does not load LightGBM or fpdf2, which
#: matters when a supervisor restarts a worker); help and tests load them all.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "jobs": ("safecity.platform.jobs_cli", "app"),
    "geo": ("safecity.platform.geo_cli", "app"),
    "orgs": ("safecity.orgs.cli", "app"),
    "users": ("safecity.security.cli", "app"),
    "audit": ("safecity.security.audit_cli", "app"),
    "events": ("safecity.platform.events_cli", "app"),
    "notify": ("safecity.platform.notify_cli", "app"),
    "rules": ("safecity.sensing.rules_cli", "app"),
    "sensors": ("safecity.sensing.cli", "app"),
    "sim": ("safecity.sim.cli", "app"),
    "crowd": ("safecity.crowd.cli", "app"),
    "linkage": ("safecity.linkage.cli", "app"),
    "fraud": ("safecity.fraud.cli", "app"),
    "traffic": ("safecity.traffic.cli", "app"),
    "eservices": ("safecity.eservices.cli", "app"),
    "cases": ("safecity.cases.cli", "app"),
    "keys": ("safecity.eservices.registry_cli", "keys_app"),
}


def _register_subcommands(argv: list[str] | None = None) -> None:
    """Add the sub-apps ``argv[1]`` needs: its group, none for a top-level command (serve,
    demo...), or all of them (help, a typo, tests)."""
    first = argv[1] if argv and len(argv) > 1 else None
    top_level = {
        c.name or (c.callback.__name__.replace("_", "-") if c.callback else "")
        for c in app.registered_commands
    }
    if first in top_level:
        return
    for name, (module, attribute) in SUBCOMMANDS.items():
        if first not in SUBCOMMANDS or name == first:
            app.add_typer(getattr(importlib.import_module(module), attribute), name=name)


_register_subcommands(sys.argv if Path(sys.argv[0]).name == "safecity" else None)


def main() -> None:
    try:
        app()
    except SafeCityError as exc:
        err.print(f"error: {exc.detail}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)

"""The ``safecity`` command: serve, demo, migrate, users, orgs, audit and each domain's commands.

Errors a user can cause end as one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from safecity.platform.errors import SafeCityError

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
) -> None:
    """Run the API and the console."""
    import uvicorn

    uvicorn.run(
        "safecity.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
    )


def _register_subcommands() -> None:
    """Each area registers its own Typer sub-app here."""


_register_subcommands()


def main() -> None:
    try:
        app()
    except SafeCityError as exc:
        err.print(f"error: {exc.detail}", markup=False, highlight=False)
        sys.exit(exc.exit_code)

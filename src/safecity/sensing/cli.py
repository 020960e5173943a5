"""``safecity sensors import | list | show | generate``: the sensor registry from the shell.

Bad input ends as one line on stderr and a non-zero exit (see :func:`safecity.cli.main`).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform.cli_progress import progress_bar
from safecity.platform.db import transaction
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime, build_runtime
from safecity.sensing import registry_import, service
from safecity.sensing.models import Sensor
from safecity.sensing.schemas import SensorRead

app = typer.Typer(help="Sensor registry: import, list, show, generate synthetic registries.")
out = Console()
err = Console(stderr=True)

PROGRESS_FROM = 1_000  # rows; smaller files import without a progress bar


def _runtime() -> Runtime:
    return build_runtime()


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="A .csv or .geojson file of sensors."),
    crs: str = typer.Option(
        ..., "--crs", help="Coordinate system of the file's points: wgs84 | gcj02 | bd09."
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="csv | geojson (default: from the file name)."
    ),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Import the valid rows and report the bad ones."
    ),
) -> None:
    """Validate FILE completely, then create or update its sensors in one transaction."""
    service.check_crs(crs)
    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    kind = registry_import.format_of(file.name, fmt)
    runtime = _runtime()
    try:
        with (
            file.open("rb") as source,
            progress_bar(out, file.name, show_from=PROGRESS_FROM) as progress,
            transaction(runtime.sessions) as session,
        ):
            result = registry_import.import_sensors(
                session=session,
                source=source,
                filename=file.name,
                crs=crs,
                fmt=kind,
                skip_invalid=skip_invalid,
                progress=progress,
            )
    finally:
        runtime.close()
    for problem in result.problems[:20]:
        err.print(f"skipped {problem}", markup=False, highlight=False, soft_wrap=True)
    if result.problem_count > 20:
        err.print(f"skipped {result.problem_count - 20} more invalid row(s)", highlight=False)
    out.print(
        f"imported {result.total} sensor(s) from {result.filename} ({result.crs}): "
        f"{result.created} created, {result.updated} updated, {result.skipped} skipped, "
        f"{result.unassigned} outside every station area, in {result.seconds:.1f} s",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@app.command("list")
def list_sensors(
    type_: str | None = typer.Option(None, "--type", help="Only this sensor type."),
    status: str | None = typer.Option(None, help="active | maintenance | retired"),
    org: str | None = typer.Option(None, help="Only sensors of this station (org code)."),
    limit: int = typer.Option(50, min=1, max=10_000, help="At most this many."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Sensors, ordered by id."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            query = service.visible_query()
            if type_ is not None:
                query = query.where(Sensor.type == service.check_type(type_))
            if status is not None:
                query = query.where(Sensor.status == service.check_status(status))
            if org is not None:
                query = query.where(Sensor.org_id == orgs.get_by_code(session=session, code=org).id)
            rows = [
                SensorRead.model_validate(s, from_attributes=True).model_dump(mode="json")
                for s in session.scalars(query.order_by(Sensor.id).limit(limit))
            ]
            codes = _org_codes(session, {r["org_id"] for r in rows if r["org_id"]})
    finally:
        runtime.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table()
    for column in ("id", "type", "status", "station", "lng", "lat", "compound", "gateway"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        values = (
            row["id"],
            row["type"],
            row["status"],
            codes.get(row["org_id"], "-"),
            f"{row['lng']:.6f}",
            f"{row['lat']:.6f}",
            row["compound"] or "-",
            row["gateway_id"] or "-",
        )
        table.add_row(*(Text(str(v)) for v in values))
    out.print(table)


def _org_codes(session: Session, ids: set[str]) -> dict[str, str]:
    return {org_id: orgs.get(session=session, org_id=org_id).code for org_id in sorted(ids)}


@app.command("show")
def show(sensor_id: str = typer.Argument(..., help="The sensor's device id.")) -> None:
    """One sensor as JSON."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            sensor = service.get(session=session, sensor_id=sensor_id)
            data = SensorRead.model_validate(sensor, from_attributes=True).model_dump(mode="json")
            data["station_code"] = _org_codes(session, {sensor.org_id} if sensor.org_id else set())
            data["station_code"] = data["station_code"].get(sensor.org_id)
    finally:
        runtime.close()
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


@app.command("generate")
def generate(
    n: int = typer.Argument(..., min=1, max=10_000_000, help="How many sensors."),
    out_file: Path = typer.Option(..., "--out", help="File to write (.csv or .geojson)."),
    crs: str = typer.Option("wgs84", "--crs", help="Coordinate system to write: wgs84|gcj02|bd09"),
    fmt: str | None = typer.Option(None, "--format", help="csv | geojson (default: from --out)."),
    seed: int = typer.Option(1, help="Random seed (same seed, same registry)."),
) -> None:
    """Write a synthetic registry: compounds inside the demo city's districts, a realistic
    mix of sensor types (synthetic data, for benchmarks and the demo)."""
    kind = registry_import.format_of(out_file.name, fmt)
    registry_import.generate(n, out_file, fmt=kind, crs=crs, seed=seed)
    out.print(f"wrote {n} synthetic sensor(s) to {out_file} ({crs})", markup=False, highlight=False)


@app.command("dead-letters")
def dead_letters(
    reason: str | None = typer.Option(None, help="Only this rejection reason."),
    connector: str | None = typer.Option(None, help="Only this connector (http, mqtt, nats)."),
    limit: int = typer.Option(50, min=1, max=10_000, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Messages the connectors rejected (the sensing_dead_letters table)."""
    from sqlalchemy import select

    from safecity.sensing.ops_models import DeadLetterRow

    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            query = select(DeadLetterRow)
            if reason is not None:
                query = query.where(DeadLetterRow.reason == reason)
            if connector is not None:
                query = query.where(DeadLetterRow.connector == connector)
            query = query.order_by(DeadLetterRow.received_at.desc()).limit(limit)
            rows = [
                {
                    "received_at": r.received_at.isoformat(),
                    "connector": r.connector,
                    "reason": r.reason,
                    "sensor_id": r.sensor_id,
                    "type": r.type,
                    "source": r.source,
                    "detail": r.detail,
                }
                for r in session.scalars(query)
            ]
    finally:
        runtime.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} dead letter(s)")
    for column in ("received (UTC)", "connector", "reason", "sensor", "type", "detail"):
        table.add_column(column)
    for row in rows:
        values = [row[k] for k in ("received_at", "connector", "reason", "sensor_id", "type")]
        table.add_row(*(Text(str(v or "-")) for v in [*values, row["detail"]]))
    out.print(table)


@app.command("issue-key")
def issue_key(
    group: str = typer.Option(..., "--group", help="The device group the key may post for."),
    name: str = typer.Option("", help="A label for the key."),
    org: str | None = typer.Option(None, help="Org code the key belongs to (default: the top)."),
) -> None:
    """Create an HTTP ingest key for one device group; prints the token once."""
    from safecity.security import audit
    from safecity.sensing import groupkeys

    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            org_id = orgs.get_by_code(session=session, code=org).id if org else None
            key = groupkeys.issue_key(
                session, group=group, actor=audit.SYSTEM, org_id=org_id, name=name
            )
    finally:
        runtime.close()
    err.print(f"key {key.username} for device group {key.device_group} (shown once):")
    typer.echo(key.token)


@app.command("nats-worker")
def nats_worker(
    partitions: int = typer.Option(8, "--partitions", min=1, max=1024, help="Partitions N."),
    url: str = typer.Option("nats://127.0.0.1:4222", help="NATS server URL."),
    prefix: str = typer.Option(
        "safecity.sensors", help="Subjects <prefix>.ingest.> and <prefix>.part.<p>; the group."
    ),
    worker_id: str | None = typer.Option(
        None, "--worker-id", help="Stable id: a restart under it takes its leases back at once."
    ),
    rules: Path | None = typer.Option(None, help="A rule file instead of the shipped rules."),
    batch: int = typer.Option(500, min=1, max=10_000, help="Messages per fetch."),
    lease_ttl: float = typer.Option(15.0, min=1, help="Seconds a partition lease lasts."),
    ack_wait: float = typer.Option(30.0, min=0.5, help="Seconds before JetStream redelivers."),
    checkpoint_interval: float = typer.Option(
        1.0, min=0, help="Seconds between checkpoints of batches without alerts."
    ),
    no_ingest: bool = typer.Option(False, "--no-ingest", help="Only run the rule stage."),
    no_rules: bool = typer.Option(False, "--no-rules", help="Only run the ingest stage."),
    status_every: float = typer.Option(5.0, help="Seconds between status lines (0: none)."),
) -> None:
    """One process of a NATS worker group: ingest (validate → partitioned stream) and rule
    engines for the partitions it leases; run several for a consumer group."""
    from safecity.sensing.connectors.nats import NatsConfig
    from safecity.sensing.nats_cli import run_worker

    config = NatsConfig(
        url=url,
        prefix=prefix,
        partitions=partitions,
        batch_size=batch,
        lease_ttl_s=lease_ttl,
        ack_wait_s=ack_wait,
        checkpoint_interval_s=checkpoint_interval,
    )
    run_worker(
        config,
        worker_id=worker_id,
        rules=rules,
        ingest=not no_ingest,
        rules_stage=not no_rules,
        status_every=status_every,
        console=out,
    )


@app.command("mqtt-worker")
def mqtt_worker(
    host: str = typer.Option("127.0.0.1", help="MQTT broker host."),
    port: int = typer.Option(1883, min=1, max=65535, help="MQTT broker port."),
    client_id: str = typer.Option(
        "safecity-sensing", "--client-id", help="Fixed id: the broker keeps its session."
    ),
    topic_prefix: str = typer.Option("safecity/sensors", help="Devices publish below it."),
    share_group: str | None = typer.Option(
        None, "--share-group", help="Shared subscription group: processes split the traffic."
    ),
    batch: int = typer.Option(500, min=1, max=65535, help="Events per hand-off."),
    status_every: float = typer.Option(10.0, help="Seconds between status lines (0: none)."),
) -> None:
    """The MQTT connector feeding the pipeline (published rules, hot reloaded) until a
    signal; nothing is acknowledged to the broker before the pipeline took it."""
    from safecity.sensing.connectors.mqtt import MqttConfig
    from safecity.sensing.mqtt_worker import run_mqtt_worker

    try:
        config = MqttConfig(
            host=host,
            port=port,
            client_id=client_id,
            topic_prefix=topic_prefix,
            share_group=share_group,
            batch_size=batch,
        )
    except ValueError as exc:
        raise InvalidInput(str(exc).splitlines()[0]) from None
    run_mqtt_worker(config, status_every=status_every, console=out)

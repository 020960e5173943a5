"""Fixtures for the sensing connector tests: a private Mosquitto, a TCP proxy, a publisher.

``mosquitto(shipped=True)`` starts a broker of the test's own on a free port: with the
shipped configuration (``safecity/sensing/data/mosquitto.conf``, only its listener port and
persistence directory changed) or with Mosquitto's defaults (``shipped=False``). It never
touches the shared broker at 127.0.0.1:1883. Without the ``mosquitto`` binary the tests
skip on a developer machine and fail when CI=true.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import service_unavailable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shipped_config_text() -> str:
    path = importlib.resources.files("safecity.sensing") / "data" / "mosquitto.conf"
    return path.read_text(encoding="utf-8")


def private_config(text: str, *, port: int, data_dir: Path) -> str:
    """The shipped configuration with its listener port and persistence dir replaced."""
    text, listeners = re.subn(
        r"^listener 1883 127\.0\.0\.1$", f"listener {port} 127.0.0.1", text, flags=re.M
    )
    text, locations = re.subn(
        r"^persistence_location .*$", f"persistence_location {data_dir}/", text, flags=re.M
    )
    assert (listeners, locations) == (1, 1), "shipped mosquitto.conf changed its layout"
    return text


@dataclass
class Broker:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if found is None:
        service_unavailable("Mosquitto", "no mosquitto binary on PATH or in /usr/sbin")
        raise AssertionError("unreachable")
    return found


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Factory: ``mosquitto(shipped=True)`` starts a private broker; all stop at teardown."""
    binary = _mosquitto_binary()
    started: list[Broker] = []

    def start(*, shipped: bool = True) -> Broker:
        port = free_port()
        workdir = tmp_path / f"mosquitto-{port}"
        workdir.mkdir()
        if shipped:
            text = private_config(shipped_config_text(), port=port, data_dir=workdir)
        else:  # Mosquitto's defaults: only a listener (2.0 needs one for remote access)
            text = f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            text += "\nuser root\n"  # as root Mosquitto would switch to 'mosquitto'
        conf = workdir / "mosquitto.conf"
        conf.write_text(text)
        log = workdir / "mosquitto.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT
            )
        broker = Broker(port=port, process=process, log=log)
        started.append(broker)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"mosquitto exited ({process.returncode}):\n{broker.log_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return broker
            time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on {port}:\n{broker.log_text()}")

    yield start
    for broker in started:
        broker.process.terminate()
        try:
            broker.process.wait(10)
        except subprocess.TimeoutExpired:
            broker.process.kill()
            broker.process.wait(5)


# --- a TCP proxy the test can cut ---------------------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target port; ``cut()`` drops every connection and
    refuses new ones until ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._cut = False
        self._running = True
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 2)
            except OSError:
                client.close()
                continue
            self.accepted += 1
            with self._lock:
                self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self._running = False
        self.cut()
        self._listener.close()
        self._thread.join(2)


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[int], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        proxy = TcpProxy(target_port)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


# --- a fast publisher -----------------------------------------------------------------------


@dataclass
class PublishResult:
    sent: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def event_body(seq: int, time_text: str, *, payload: dict[str, object] | None = None) -> bytes:
    """A raw heartbeat event; sensor id and type come from the topic."""
    body = {"time": time_text, "seq": seq, "payload": payload or {"battery_pct": 80}}
    return json.dumps(body).encode()


def publish_events(
    port: int,
    count: int,
    *,
    sensor_id: str = "hb-1",
    type_name: str = "sensor.heartbeat",
    start: int = 0,
    result: PublishResult | None = None,
    bodies: list[tuple[str, bytes]] | None = None,
) -> PublishResult:
    """Publish ``count`` QoS 1 events as fast as paho goes; wait for every PUBACK."""
    result = result or PublishResult()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"pub-{secrets.token_hex(4)}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    now = datetime.now(UTC).isoformat()
    topic = f"safecity/sensors/{sensor_id}/{type_name}"
    messages = bodies or [(topic, event_body(i, now)) for i in range(start, start + count)]
    began = time.monotonic()
    infos = [client.publish(t, body, qos=1) for t, body in messages]
    for info in infos:
        info.wait_for_publish(60)
        if info.rc != mqtt.MQTT_ERR_SUCCESS or not info.is_published():
            result.failures.append(f"mid {info.mid}: rc {info.rc}")
    result.seconds = time.monotonic() - began
    result.sent = len(infos)
    client.disconnect()
    client.loop_stop()
    return result

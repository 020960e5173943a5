"""The SMTP sender against a real SMTP server (aiosmtpd) run inside the test: plain,
STARTTLS with login, implicit TLS, a refused recipient, a server that is down."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr
from typer.testing import CliRunner

from safecity.cli import app as cli_app
from safecity.platform import notify, notify_cli
from safecity.platform.db import make_session_factory, transaction, utcnow
from safecity.platform.notify import Notification
from safecity.platform.notify_senders import (
    OutgoingMessage,
    PermanentSendError,
    SendError,
    SmtpSender,
    senders_for,
)
from safecity.platform.runtime import Runtime

TO = "li.si.canary@example.com"
REFUSED = "nobody@example.com"
BODY = "Case SC-2024-000123 moved to: investigating. 进展已更新。"


@dataclass
class Mailbox:
    """The in-test server's handler: keeps what it accepted."""

    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address == REFUSED:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(
            (envelope, message_from_bytes(raw, EmailMessage, policy=default_policy))
        )
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"mailer",
            b"s3cret",
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server replies 535


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext
    ca_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1 and both sides' SSL contexts."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return Tls(server=server, client=client, ca_file=cert_file)


@dataclass
class Server:
    mailbox: Mailbox
    port: int


def start(mailbox: Mailbox, **options: Any) -> Iterator[Server]:
    # The server's own log quotes addresses (it is a test double, not our code): quiet it.
    server_log = logging.getLogger("mail.log")
    level = server_log.level
    server_log.setLevel(logging.WARNING)
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield Server(mailbox=mailbox, port=port)
    finally:
        controller.stop()
        server_log.setLevel(level)


@pytest.fixture
def plain_server() -> Iterator[Server]:
    yield from start(Mailbox())


@pytest.fixture
def starttls_server(tls: Tls) -> Iterator[Server]:
    mailbox = Mailbox()
    yield from start(
        mailbox,
        tls_context=tls.server,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_required=True,
    )


@pytest.fixture
def smtps_server(tls: Tls) -> Iterator[Server]:
    yield from start(Mailbox(), ssl_context=tls.server)


def message(to: str = TO, **kwargs: Any) -> OutgoingMessage:
    return OutgoingMessage(
        id=kwargs.get("id", "n0123456789abcdef"),
        channel="email",
        to=to,
        subject=kwargs.get("subject", "Your case was updated"),
        body=BODY,
    )


def test_delivers_a_plain_message(plain_server: Server) -> None:
    sender = SmtpSender(
        host="127.0.0.1", port=plain_server.port, from_addr="SafeCity <noreply@safecity.test>"
    )
    provider_id = sender.send(message())
    assert provider_id == "<n0123456789abcdef@safecity.test>"
    [(envelope, received)] = plain_server.mailbox.messages
    assert envelope.mail_from == "noreply@safecity.test"
    assert envelope.rcpt_tos == [TO]
    assert received["To"] == TO
    assert received["Subject"] == "Your case was updated"
    assert received["Message-ID"] == provider_id
    body = received.get_body()
    assert body is not None
    assert body.get_content().strip() == BODY  # UTF-8 survives


def test_starttls_and_login(starttls_server: Server, tls: Tls) -> None:
    sender = SmtpSender(
        host="127.0.0.1",
        port=starttls_server.port,
        from_addr="noreply@safecity.test",
        username="mailer",
        password="s3cret",
        starttls=True,
        ssl_context=tls.client,
    )
    sender.send(message())
    assert starttls_server.mailbox.logins == ["mailer"]
    assert [e.rcpt_tos for e, _ in starttls_server.mailbox.messages] == [[TO]]


def test_without_starttls_the_server_refuses_and_it_is_retried(starttls_server: Server) -> None:
    sender = SmtpSender(
        host="127.0.0.1", port=starttls_server.port, from_addr="noreply@safecity.test"
    )
    with pytest.raises(SendError) as info:
        sender.send(message())
    assert not isinstance(info.value, PermanentSendError)
    assert starttls_server.mailbox.messages == []


def test_a_wrong_password_is_a_retryable_error(starttls_server: Server, tls: Tls) -> None:
    sender = SmtpSender(
        host="127.0.0.1",
        port=starttls_server.port,
        from_addr="noreply@safecity.test",
        username="mailer",
        password="wrong",
        starttls=True,
        ssl_context=tls.client,
    )
    with pytest.raises(SendError) as info:
        sender.send(message())
    assert not isinstance(info.value, PermanentSendError)
    assert "535" in info.value.detail


def test_implicit_tls(smtps_server: Server, tls: Tls) -> None:
    sender = SmtpSender(
        host="127.0.0.1",
        port=smtps_server.port,
        from_addr="noreply@safecity.test",
        tls=True,
        ssl_context=tls.client,
    )
    sender.send(message())
    assert len(smtps_server.mailbox.messages) == 1


def test_an_untrusted_certificate_is_not_accepted(smtps_server: Server) -> None:
    sender = SmtpSender(
        host="127.0.0.1", port=smtps_server.port, from_addr="noreply@safecity.test", tls=True
    )
    with pytest.raises(SendError) as info:
        sender.send(message())
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.detail
    assert smtps_server.mailbox.messages == []


def test_a_refused_recipient_is_a_permanent_error(plain_server: Server) -> None:
    sender = SmtpSender(host="127.0.0.1", port=plain_server.port, from_addr="a@safecity.test")
    with pytest.raises(PermanentSendError) as info:
        sender.send(message(to=REFUSED))
    assert "550" in info.value.detail


def test_a_server_that_is_down_is_a_retryable_error() -> None:
    sender = SmtpSender(host="127.0.0.1", port=free_port(), from_addr="a@safecity.test", timeout=2)
    with pytest.raises(SendError) as info:
        sender.send(message())
    assert not isinstance(info.value, PermanentSendError)


def test_sms_is_not_sent_by_e_mail() -> None:
    sender = SmtpSender(host="127.0.0.1", port=25, from_addr="a@safecity.test")
    sms = OutgoingMessage(id="x", channel="sms", to="13800138000", subject="", body="hi")
    with pytest.raises(PermanentSendError):
        sender.send(sms)


# --------------------------------------------------------------------------- end to end


def smtp_runtime(runtime: Runtime, port: int, **settings: Any) -> Runtime:
    """The test database, configured for the SMTP sender."""
    configured = runtime.settings.model_copy(
        update={
            "notify_sender": "smtp",
            "notify_smtp_host": "127.0.0.1",
            "notify_smtp_port": port,
            "notify_smtp_from": "SafeCity <noreply@safecity.test>",
            **settings,
        }
    )
    return Runtime(
        settings=configured, engine=runtime.engine, sessions=make_session_factory(runtime.engine)
    )


@pytest.mark.db
def test_the_dispatch_job_delivers_by_smtp_and_a_refusal_fails_it_scrubbed(
    runtime: Runtime, plain_server: Server
) -> None:
    rt = smtp_runtime(runtime, plain_server.port)
    with transaction(rt.sessions) as s:
        ok = notify.enqueue(
            s,
            channel="email",
            to=TO,
            subject="Case update",
            body=BODY,
            purpose="case progress",
            idempotency_key="cases:1:stage:2",
        )
        refused = notify.enqueue(
            s,
            channel="email",
            to=REFUSED,
            subject="Case update",
            body=BODY,
            purpose="case progress",
            idempotency_key="cases:2:stage:2",
        )
    report = notify.dispatch(rt.sessions, senders=senders_for(rt.settings), now=utcnow())
    assert (report.sent, report.failed) == (1, 1)
    assert [e.rcpt_tos for e, _ in plain_server.mailbox.messages] == [[TO]]
    with rt.sessions() as s:
        sent = s.get(Notification, ok.id)
        dead = s.get(Notification, refused.id)
    assert sent is not None
    assert dead is not None
    assert (sent.sender, sent.provider_id) == ("smtp", f"<{ok.id}@safecity.test>")
    assert dead.status == "failed"
    assert dead.last_error is not None
    assert "550" in dead.last_error
    assert REFUSED not in dead.last_error  # the server quoted it; we mask it
    assert "n***@example.com" in dead.last_error


@pytest.mark.db
def test_cli_send_test_delivers_through_starttls(
    runtime: Runtime,
    starttls_server: Server,
    tls: Tls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt = smtp_runtime(
        runtime,
        starttls_server.port,
        notify_smtp_starttls=True,
        notify_smtp_user="mailer",
        notify_smtp_password=SecretStr("s3cret"),
        notify_smtp_ca_file=tls.ca_file,
    )
    monkeypatch.setattr(notify_cli, "_runtime", lambda: rt)
    result = CliRunner().invoke(cli_app, ["notify", "send-test", "--channel", "email", "--to", TO])
    assert result.exit_code == 0, result.output
    assert "sent (smtp sender)" in result.output
    assert TO not in result.output
    assert "l***@example.com" in result.output
    [(envelope, received)] = starttls_server.mailbox.messages
    assert envelope.rcpt_tos == [TO]
    assert received["Subject"] == "SafeCity test message"

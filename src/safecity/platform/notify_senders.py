"""Notification senders: one small protocol, a log sender (default) and an SMTP sender.

The dispatcher (:mod:`safecity.platform.notify`) hands each due notification to the
sender configured for its channel as an :class:`OutgoingMessage`. A sender delivers it
or raises :class:`SendError` (transient: retried with backoff) or
:class:`PermanentSendError` (e.g. a recipient the server refuses with 5xx: not retried).
Any other exception counts as transient. A sender returns the provider's message id
(SMTP ``Message-ID``, a gateway's receipt id) or ``None``.

Which sender (``SAFECITY_NOTIFY_SENDER``, ``SAFECITY_NOTIFY_SMS_SENDER``):

- e-mail: ``log`` (default) or ``smtp`` (:class:`SmtpSender`, settings
  ``SAFECITY_NOTIFY_SMTP_*``);
- SMS: ``log`` until an SMS gateway is added: a gateway implements :class:`SmsSender`
  (``send_sms``) and registers a factory with :func:`register_sms_gateway`; the setting
  then names it.

The log sender never writes the address or the body in clear: its log line carries the
notification id, channel, template, a masked address (:func:`mask_address`) and the body's
length. It sends nothing; use it in development and demos.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal, Protocol

from safecity.platform.db import utcnow
from safecity.platform.errors import ConfigurationError, ServiceUnavailable
from safecity.settings import Settings

log = logging.getLogger("safecity.notify")

Channel = Literal["sms", "email"]
CHANNELS: tuple[Channel, ...] = ("sms", "email")


@dataclass(frozen=True)
class OutgoingMessage:
    """One notification as a sender sees it (``to`` and ``body`` are personal data)."""

    id: str
    channel: Channel
    to: str
    subject: str
    body: str
    template: str | None = None
    attempt: int = 1

    def __repr__(self) -> str:  # never print the address or the body by accident
        return (
            f"OutgoingMessage(id={self.id!r}, channel={self.channel!r}, "
            f"to={mask_address(self.to)!r}, template={self.template!r}, attempt={self.attempt})"
        )


class SendError(ServiceUnavailable):
    """Delivery failed; the dispatcher retries later (with exponential backoff)."""

    permanent = False


class PermanentSendError(SendError):
    """Delivery can never succeed (e.g. the recipient is refused); not retried."""

    permanent = True


class Sender(Protocol):
    """Delivers one message or raises; returns the provider's message id, if any."""

    name: str

    def send(self, message: OutgoingMessage) -> str | None: ...


class SmsSender(Protocol):
    """What an SMS gateway adapter implements (register it with :func:`register_sms_gateway`).

    ``to`` is the number as stored (digits, optionally with a leading ``+``); raise
    :class:`SendError` or :class:`PermanentSendError` on failure. ``message_id`` is the
    notification id: pass it to the gateway as its deduplication key where it has one,
    since a crash between sending and recording the outcome sends the message again.
    """

    name: str

    def send_sms(self, *, to: str, text: str, message_id: str) -> str | None: ...


# --------------------------------------------------------------------------- masking

_DIGITS = re.compile(r"\d")


def mask_address(address: str) -> str:
    """An address safe for logs: ``z***@example.com``, ``*******8000``."""
    address = address.strip()
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}***@{domain}" if local else f"***@{domain}"
    digits = "".join(_DIGITS.findall(address))
    if len(digits) <= 4:
        return "***"
    return "*" * (len(digits) - 4) + digits[-4:]


def scrub_address(text: str, address: str) -> str:
    """``text`` with every occurrence of ``address`` (any case) masked."""
    if not address:
        return text
    return re.sub(re.escape(address), mask_address(address), text, flags=re.IGNORECASE)


# --------------------------------------------------------------------------- senders


class LogSender:
    """Writes one structured log line per message and sends nothing (the default).

    The line has the notification id, channel, template, a masked address and the body's
    length — never the address or the body in clear.
    """

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def send(self, message: OutgoingMessage) -> str | None:
        self._log.info(
            "notification %s (%s) written to the log instead of being sent",
            message.id,
            message.channel,
            extra={
                "notification_id": message.id,
                "channel": message.channel,
                "template": message.template,
                "to_masked": mask_address(message.to),
                "body_chars": len(message.body),
                "attempt": message.attempt,
                "sender": self.name,
            },
        )
        return f"log:{message.id}"


class SmsGatewaySender:
    """Adapts an :class:`SmsSender` gateway to the :class:`Sender` protocol."""

    def __init__(self, gateway: SmsSender) -> None:
        self.gateway = gateway
        self.name = gateway.name

    def send(self, message: OutgoingMessage) -> str | None:
        if message.channel != "sms":
            raise PermanentSendError(f"the {self.name} gateway sends SMS only")
        return self.gateway.send_sms(to=message.to, text=message.body, message_id=message.id)


class SmtpSender:
    """Sends e-mail through an SMTP server (stdlib ``smtplib``), one connection a message.

    ``starttls`` upgrades a plain connection (submission port 587); ``tls`` connects with
    implicit TLS (SMTPS, port 465). The ``Message-ID`` is derived from the notification
    id, so a message sent again after a crash carries the same id and mail clients can
    tell it is a duplicate.
    """

    name = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int = 25,
        from_addr: str,
        username: str = "",
        password: str = "",
        starttls: bool = False,
        tls: bool = False,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if starttls and tls:
            raise ConfigurationError("SMTP: choose STARTTLS or implicit TLS, not both")
        _, sender_address = parseaddr(from_addr)
        if "@" not in sender_address or any(c in from_addr for c in "\r\n"):
            raise ConfigurationError("SMTP: the from address is not an e-mail address")
        self.host = host
        self.port = port
        self.from_addr = from_addr
        self.username = username
        self._password = password
        self.starttls = starttls
        self.tls = tls
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._domain = sender_address.rpartition("@")[2] or "safecity.localhost"

    def build(self, message: OutgoingMessage) -> EmailMessage:
        email = EmailMessage()
        email["From"] = self.from_addr
        email["To"] = message.to
        email["Subject"] = message.subject
        email["Date"] = format_datetime(utcnow())
        email["Message-ID"] = f"<{message.id}@{self._domain}>"
        email.set_content(message.body)
        return email

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.tls:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self._context()
            )
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout)

    def send(self, message: OutgoingMessage) -> str | None:
        if message.channel != "email":
            raise PermanentSendError("the SMTP sender sends e-mail only")
        email = self.build(message)
        try:
            with self._connect() as smtp:
                if self.starttls:
                    smtp.starttls(context=self._context())
                if self.username:
                    smtp.login(self.username, self._password)
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            responses = "; ".join(
                f"{code} {_text(reply)}" for code, reply in exc.recipients.values()
            )
            error = f"SMTP recipient refused: {responses}"
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentSendError(error) from None
            raise SendError(error) from None
        except (smtplib.SMTPAuthenticationError, smtplib.SMTPSenderRefused) as exc:
            # The server's configuration or ours: retry, an operator may fix it.
            raise SendError(f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}") from None
        except smtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}"
            if isinstance(exc, smtplib.SMTPDataError) and 500 <= exc.smtp_code < 600:
                raise PermanentSendError(error) from None
            raise SendError(error) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"SMTP {type(exc).__name__}: {exc}") from None
        return str(email["Message-ID"])


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


# --------------------------------------------------------------------------- configuration

SmsGatewayFactory = Callable[[Settings], SmsSender]
_sms_gateways: dict[str, SmsGatewayFactory] = {}


def register_sms_gateway(name: str, factory: SmsGatewayFactory) -> None:
    """Make ``SAFECITY_NOTIFY_SMS_SENDER=<name>`` use ``factory(settings)``."""
    if name == "log":
        raise ValueError("'log' is the built-in SMS sender")
    _sms_gateways[name] = factory


def unregister_sms_gateway(name: str) -> None:
    _sms_gateways.pop(name, None)


def smtp_sender(settings: Settings) -> SmtpSender:
    context: ssl.SSLContext | None = None
    if settings.notify_smtp_ca_file is not None:
        try:
            context = ssl.create_default_context(cafile=str(settings.notify_smtp_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"SMTP CA file unusable: {exc}") from None
    return SmtpSender(
        host=settings.notify_smtp_host,
        port=settings.notify_smtp_port,
        from_addr=settings.notify_smtp_from,
        username=settings.notify_smtp_user,
        password=settings.notify_smtp_password.get_secret_value(),
        starttls=settings.notify_smtp_starttls,
        tls=settings.notify_smtp_tls,
        timeout=settings.notify_smtp_timeout,
        ssl_context=context,
    )


def senders_for(settings: Settings) -> dict[str, Sender]:
    """The sender of each channel, as configured."""
    email: Sender = smtp_sender(settings) if settings.notify_sender == "smtp" else LogSender()
    sms: Sender
    if settings.notify_sms_sender == "log":
        sms = LogSender()
    else:
        factory = _sms_gateways.get(settings.notify_sms_sender)
        if factory is None:
            raise ConfigurationError(
                f"no SMS gateway named {settings.notify_sms_sender!r} is registered"
            )
        sms = SmsGatewaySender(factory(settings))
    return {"email": email, "sms": sms}

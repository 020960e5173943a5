"""Settings from ``SAFECITY_*`` environment variables, with embedded defaults.

With no configuration at all SafeCity runs on a SQLite file under ``./var/`` and the
in-process bus. ``SAFECITY_DATABASE_URL`` and ``SAFECITY_BUS_URL`` switch to PostgreSQL
and NATS JetStream.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFECITY_", extra="ignore")

    var_dir: Path = Field(default=Path("var"), description="Where embedded state lives.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite in var_dir.")
    bus_url: str = Field(default="memory://", description="memory:// or nats://host:port")
    bus_stream_prefix: str = Field(default="SAFECITY", description="JetStream stream name prefix.")
    key_dir: Path | None = Field(
        default=None, description="Secret keys (audit HMAC, signing); outside the database."
    )
    embedded_workers: bool = Field(
        default=False,
        description="Run the outbox relay, bus consumers and job scheduler inside the API "
        "process (one-process setup; `safecity serve` turns it on).",
    )
    demo_duty_desk: bool = Field(
        default=False,
        description="Run the demo duty desk job (cases from simulated alerts; `safecity demo`).",
    )
    demo_crowd: bool = Field(
        default=False,
        description="Run the demo crowd feeder job (the Bund's simulated counts; `safecity demo`).",
    )
    max_body_bytes: int = 1_048_576
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12  # a console session ends this long after login
    api_token_hours: int = 8  # bearer tokens from POST /api/auth/tokens
    lockout_attempts: int = 5
    lockout_minutes: int = 15
    audit_checkpoint_every: int = 100
    tile_url: str = Field(default="", description="Map tile URL template; empty = no tiles.")
    cookie_secure: bool = False
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    default_language: str = "zh"
    log_json: bool = True
    metrics_token: str = Field(
        default="", description="Bearer token Prometheus must send to GET /metrics; empty = open."
    )
    login_rate_per_minute: int = Field(
        default=10, ge=1, description="Login attempts per client address per minute."
    )
    # Notifications (safecity.platform.notify): e-mail goes through notify_sender, SMS
    # through notify_sms_sender (a registered gateway name; "log" until one is added).
    notify_sender: Literal["log", "smtp"] = Field(
        default="log", description="E-mail sender: log (default, sends nothing) or smtp."
    )
    notify_sms_sender: str = Field(default="log", description="SMS sender: log or a gateway.")
    notify_smtp_host: str = "localhost"
    notify_smtp_port: int = Field(default=25, ge=1, le=65535)
    notify_smtp_user: str = ""
    notify_smtp_password: SecretStr = SecretStr("")
    notify_smtp_from: str = "SafeCity <noreply@safecity.localhost>"
    notify_smtp_starttls: bool = Field(default=False, description="STARTTLS after connecting.")
    notify_smtp_tls: bool = Field(default=False, description="Implicit TLS (SMTPS, port 465).")
    notify_smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle for the SMTP server's certificate (private CA)."
    )
    notify_smtp_timeout: float = Field(default=30.0, gt=0)
    notify_max_attempts: int = Field(default=6, ge=1, le=50)
    notify_backoff_seconds: float = Field(default=30.0, gt=0, description="First retry delay.")
    notify_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    # Roadside displays (safecity.sensing.display): red-light warnings go over MQTT when a
    # broker is set ("host:port"); otherwise they are logged and kept in memory.
    display_mqtt: str = Field(default="", description="MQTT broker host:port for displays.")
    display_topic_prefix: str = "safecity/displays"
    # Blob store (safecity.platform.blobs): evidence, attachments and photos as files under
    # var_dir/blobs, or in an S3-compatible bucket. S3 credentials are never settings: boto3
    # reads them itself (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role).
    blob_backend: Literal["disk", "s3"] = Field(
        default="disk", description="disk (files under var_dir/blobs) or s3 (needs boto3)."
    )
    s3_endpoint_url: str = Field(default="", description="Empty = AWS; else MinIO/Ceph URL.")
    s3_bucket: str = Field(default="", description="Bucket for blobs (s3 backend; must exist).")
    s3_prefix: str = Field(default="", description="Key prefix, e.g. safecity/ (a / is added).")
    s3_region: str = Field(default="", description="Region; empty = boto3's (AWS_REGION).")
    accidents_insurer_urls: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Webhook URL per insurer code, as JSON ({"demo_picc": "https://..."}); '
            "insurers not named are acknowledged by the in-process demo insurer."
        ),
    )
    fraud_number_model: Path | None = Field(
        default=None,
        description="Scam-number model artifact the fraud engine uses beside its rules.",
    )
    fraud_text_model: Path | None = Field(
        default=None, description="Scam-text model artifact for consenting users' SMS (else rules)."
    )
    eservices_issuer: str = Field(
        default="https://safecity.example",
        pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$",
        max_length=120,
        description=(
            "E-certificate issuer URL (iss of credentials, status lists and trust bundles; "
            "new status lists are published under it); no trailing slash."
        ),
    )
    linkage_auto_link: float = Field(
        default=0.99, gt=0, lt=1, description="Person index: auto-link at or above."
    )
    linkage_review: float = Field(
        default=0.5, gt=0, lt=1, description="Person index: queue for review at or above."
    )

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'safecity.db').as_posix()}"

    @property
    def effective_key_dir(self) -> Path:
        return self.key_dir if self.key_dir is not None else self.var_dir / "keys"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

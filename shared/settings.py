"""Settings shared by every component, read from JIAOZHI_* environment variables at start."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SecretsSettingsSource, SettingsConfigDict

DEMO_IDENTITY_KEY = "demo-only-identity-hash-key"  # clearly-marked demo default

#: environments where demo secrets and demo accounts are allowed (automated tests count as demo)
DEMO_ENVIRONMENTS = ("demo", "test")

#: seconds uvicorn lets open requests finish after SIGTERM/SIGINT before cancelling them; with the lifespan
#: shutdown after it (bounded to ~5 s) a component ends within 7 s of the signal: inside the launcher's 7.5 s
#: before SIGKILL (deploy/supervisor.py) and Kubernetes' 20 s grace period
HTTP_DRAIN_S = 2
#: seconds uvicorn keeps an idle HTTP connection open (services and the gateway). Callers that pool connections
#: must drop theirs sooner (the gateway's client: half of it): a request sent on a connection the server is just
#: closing fails without an answer (issue 17's 502 on intake: aiohttp's 30 s against uvicorn's default 5 s)
KEEP_ALIVE_S = 65
#: default port of each component when it runs alone on one machine
DEFAULT_PORTS = {"gateway": 8000, "classification": 8001, "tracing": 8002, "dispatch": 8003, "assessment": 8004}


class Settings(BaseSettings):
    """What every component needs: where data lives, the broker, token keys."""

    model_config = SettingsConfigDict(env_prefix="JIAOZHI_", extra="ignore")

    component: ClassVar[str] = "shared"

    environment: Literal["demo", "development", "test", "production"] = "demo"
    data_dir: Path = Field(Path("var"), description="SQLite files and the NATS store live here")
    database_url: str | None = Field(
        None, description="one URL for every service; on PostgreSQL each service gets its own schema"
    )
    nats_url: str = "nats://127.0.0.1:4233"
    nats_user: str | None = Field(None, description="this component's NATS user (see deploy/nats_auth.py)")
    nats_password: SecretStr | None = None
    nats_tls_ca: Path | None = Field(None, description="CA file to verify the NATS server by; set, it turns TLS on")
    nats_tls_cert: Path | None = Field(None, description="client certificate, for a server that asks for one")
    nats_tls_key: Path | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    log_level: str = "INFO"
    access_log: bool = Field(False, description="one JSON line per HTTP request (method, path, status, time)")
    tracing: bool = Field(False, description="make and carry OpenTelemetry spans (trace ids in the logs) even "
                                             "with no exporter; an OTEL_* exporter variable turns it on too")
    jwt_public_keys: str = Field(
        "", description="JWK set (JSON) of the gateway's public Ed25519 keys that tokens are verified with; two "
                        "during a key rotation. Public only: no component but the gateway holds a private key")
    jwt_issuer: str = "jiaozhi-gateway"
    jwt_audience: str = "jiaozhi"
    token_ttl_s: int = 3600
    refresh_ttl_s: int = Field(30 * 86400, description="refresh tokens (mobile app) live this long")
    jwt_internal_audience: str = Field("jiaozhi-internal", description="audience of gateway→service tokens")
    identity_hash_key: SecretStr = SecretStr(DEMO_IDENTITY_KEY)
    timezone: str = "Asia/Shanghai"
    outbox_poll_s: float = Field(0.5, description="how often the relay looks for rows nobody announced")
    consumer_batch: int = 100
    consumer_max_deliver: int = Field(
        5, ge=2, description="a consumed event is delivered at most this often, then parked as a dead letter")
    consumer_backoff_s: list[float] = Field(
        [1.0, 5.0, 30.0, 120.0], description="wait before redelivery n (the last value repeats); fewer values "
                                             "than consumer_max_deliver")
    stream_replicas: int = Field(1, ge=1, le=5, description="copies of each stream (1 embedded, 3 in the cluster)")
    stream_max_age_days: float = Field(30.0, gt=0, description="events older than this leave the stream")
    stream_max_bytes: int = Field(1 << 30, gt=0, description="each stream keeps at most this many bytes (oldest go)")
    stream_duplicate_window_s: float = Field(
        600.0, gt=0, description="a re-publish with the same Nats-Msg-Id within this is dropped (outbox re-sends)")
    shutdown_s: float = Field(5.0, description="a component stops within this (loops, NATS, database pool)")
    retention_outbox_sent_days: float = Field(
        7.0, ge=0, description="sent outbox rows are pruned after this many days (0: never); a restore re-sends "
                               "the rows still kept, so this bounds how far back in-flight events are recovered")
    retention_inbox_days: float = Field(
        30.0, ge=0, description="inbox rows (events already handled) are pruned after this many days (0: never); "
                                "must outlast the outbox's sent rows, the 10-minute duplicate window and any outage")
    retention_interval_s: float = Field(3600.0, gt=0, description="how often each replica prunes")
    retention_batch: int = Field(5000, ge=1, description="rows deleted per transaction while pruning")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Variables may also be files named after them in JIAOZHI_SECRETS_DIR (a mounted Kubernetes Secret);
        an environment variable of the same name wins."""
        folder = os.environ.get("JIAOZHI_SECRETS_DIR")
        if folder:
            file_secret_settings = SecretsSettingsSource(settings_cls, secrets_dir=folder)
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    def nats_options(self) -> dict[str, Any]:
        """`nats.connect` keywords: this component's user, its own inbox prefix, TLS when configured."""
        options: dict[str, Any] = {"inbox_prefix": f"_INBOX_{self.component}"}
        if self.nats_user:
            options["user"] = self.nats_user
            options["password"] = self.nats_password.get_secret_value() if self.nats_password else ""
        if self.nats_tls_ca or self.nats_tls_cert:
            import ssl

            context = ssl.create_default_context(cafile=self.nats_tls_ca)
            if self.nats_tls_cert:
                context.load_cert_chain(self.nats_tls_cert, self.nats_tls_key)
            options["tls"] = context
        return options

    @model_validator(mode="after")
    def _refuse_demo_secrets_outside_the_demo(self) -> Settings:
        if self.environment not in DEMO_ENVIRONMENTS:
            if self.identity_hash_key.get_secret_value() == DEMO_IDENTITY_KEY:
                raise ValueError(f"JIAOZHI_IDENTITY_HASH_KEY must be set when JIAOZHI_ENVIRONMENT={self.environment}")
        return self

    @model_validator(mode="after")
    def _public_keys_are_public(self) -> Settings:
        try:
            jwks = json.loads(self.jwt_public_keys) if self.jwt_public_keys.strip() else {"keys": []}
            keys = jwks["keys"] if isinstance(jwks, dict) else jwks
            private = any("d" in key for key in keys)
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"JIAOZHI_JWT_PUBLIC_KEYS must be a JWK set (JSON): {exc}") from exc
        if private:
            raise ValueError("JIAOZHI_JWT_PUBLIC_KEYS must hold public keys only: it holds a private one")
        return self

    @model_validator(mode="after")
    def _backoff_shorter_than_deliveries(self) -> Settings:
        if not self.consumer_backoff_s or len(self.consumer_backoff_s) >= self.consumer_max_deliver:
            raise ValueError("JIAOZHI_CONSUMER_BACKOFF_S needs 1 to JIAOZHI_CONSUMER_MAX_DELIVER - 1 values")
        return self

    @model_validator(mode="after")
    def _inbox_outlasts_the_outbox(self) -> Settings:
        # a restore re-sends every outbox row still kept; the inbox must still know the ones already handled
        inbox, outbox = self.retention_inbox_days, self.retention_outbox_sent_days
        if inbox and (not outbox or inbox < outbox + 1):
            raise ValueError("JIAOZHI_RETENTION_INBOX_DAYS must be 0 (keep forever) or at least a day longer than "
                             "JIAOZHI_RETENTION_OUTBOX_SENT_DAYS (which must then not be 0)")
        return self


class ServiceSettings(Settings):
    """A service's settings. A subclass may redeclare `own_database_url` with the alias
    JIAOZHI_<SERVICE>_DATABASE_URL so one service can live elsewhere than the rest."""

    own_database_url: str | None = None

    def database(self) -> str:
        """The URL this service stores its data at."""
        if self.own_database_url:
            return self.own_database_url
        if self.database_url and self.database_url.startswith("sqlite"):
            return _per_service_sqlite(self.database_url, self.component)
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{self.component}.db').resolve()}"


def _per_service_sqlite(url: str, service: str) -> str:
    """One SQLite file per service from a shared SQLite URL (x.db → x-dispatch.db): no shared tables."""
    head, sep, path = url.partition(":///")
    if not sep or path in ("", ":memory:"):
        return url
    stem, dot, suffix = path.rpartition(".")
    return f"{head}{sep}{stem}-{service}.{suffix}" if dot and "/" not in suffix else f"{head}{sep}{path}-{service}"

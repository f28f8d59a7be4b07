"""Settings from the environment (``ZAPLINE_*``); no config file needed.

Every variable is listed in the README's configuration table; keep the two in step.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from desk.permissions import AGENT_SEES
from desk.ratelimit import Limit, parse_limit
from engine import EngineOptions

DEV_JWT_SECRET = "zapline-dev-secret-change-me-0123456789"
DEFAULT_DATABASE_URL = "sqlite:///./zapline.db"


class ConfigError(Exception):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None or value == "" else value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _get(env, name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _get(env, name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _seconds(env: Mapping[str, str], name: str, default: float, top: float) -> float:
    value = _float(env, name, default)
    if not 0 <= value <= top:  # also refuses nan
        raise ConfigError(f"{name} must be between 0 and {top:g} seconds, got {value!r}")
    return value


def _limit(env: Mapping[str, str], name: str, default: str) -> Limit:
    raw = _get(env, name, default)
    try:
        return parse_limit(raw)
    except ValueError:
        raise ConfigError(f"{name} must be RATE/BURST, e.g. {default!r}; got {raw!r}") from None


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(env: Mapping[str, str], name: str, default: str) -> float:
    """Seconds of a duration such as ``90d``, ``12h``, ``30m``, ``45s``; a bare number is days."""
    raw = _get(env, name, default).strip().lower()
    unit = raw[-1:] if raw[-1:] in _UNITS else "d"
    number = raw[:-1] if raw[-1:] in _UNITS else raw
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"{name} must be a duration such as 90d, 12h or 0 (forever); got {raw!r}")
    return value * _UNITS[unit]


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = _get(env, name, choices[0])
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}")
    return raw


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name, "1" if default else "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 0/1/true/false, got {raw!r}")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of one Zapline process."""

    env: str = "prod"
    host: str = "127.0.0.1"
    port: int = 3333
    socket_port: int = 3334
    public_socket_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    jwt_secret: str = ""
    log_level: str = "info"
    log_format: str = "json"
    cors_origins: tuple[str, ...] = ()
    ws_compression: bool = False
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    max_payload: int = 1_000_000
    outbox_limit: int = 1 << 20
    stall_timeout: float = 10.0
    header_timeout: float = 10.0
    idle_timeout: float = 60.0
    max_connections: int = 20_000
    webhook_max_bytes: int = 1 << 20
    workers: int = 32
    queue_size: int = 10_000
    whatsapp_api_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = "v21.0"
    send_rate: float = 80.0
    metrics_token: str | None = None
    drain_timeout: float = 10.0
    recovery_grace: float = 5.0
    broker_channel: str = "zapline:fanout"
    node_id: str = ""
    recovery_window: float = 120.0
    event_retention: float = 86400.0
    storage_outage_timeout: float = 3600.0
    inbox_sweep_interval: float = 30.0
    inbox_retention: float = 86400.0
    presence_grace: float = 10.0
    unread_interval: float = 2.0
    commit_interval: float = 0.005
    agent_sees: str = "assigned_and_unassigned"
    rate_socket: Limit = Limit(20, 40)
    rate_agent: Limit = Limit(40, 80)
    rate_api: Limit = Limit(100, 200)
    pending_status_ttl: float = 600.0
    pending_change_ttl: float = 86400.0
    media_cache_mb: float = 256.0
    media_dir: str | None = None
    media_timeout: float = 30.0
    audit_retention: float = 90 * 86400.0
    audit_flush_interval: float = 0.5
    demo: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_dev(self) -> bool:
        """True in the development profile (``ZAPLINE_ENV=dev``)."""
        return self.env == "dev"

    def allowed_origins(self) -> tuple[str, ...]:
        """Browser origins allowed to long-poll: ``ZAPLINE_CORS_ORIGINS``, else the API's own."""
        if self.cors_origins:
            return self.cors_origins
        hosts = (
            {"127.0.0.1", "localhost"}
            if self.host in ("127.0.0.1", "0.0.0.0", "::", "")
            else {self.host}
        )
        return tuple(sorted(f"http://{h}:{self.port}" for h in hosts))

    def engine_options(self) -> EngineOptions:
        """The Socket.IO engine's options derived from these settings."""
        return EngineOptions(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_payload=self.max_payload,
            outbox_limit=self.outbox_limit,
            stall_timeout=self.stall_timeout,
            header_timeout=self.header_timeout,
            idle_timeout=self.idle_timeout,
            max_connections=self.max_connections,
            cors_origins=self.allowed_origins(),
            compression=self.ws_compression,
        )

    def socket_url(self) -> str:
        """Where browsers reach the Socket.IO listener."""
        if self.public_socket_url:
            return self.public_socket_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.socket_port}"

    def media_directory(self) -> str:
        """Where media live: ``ZAPLINE_MEDIA_DIR``, else next to the SQLite file
        (``zapline.db`` -> ``zapline-media/``), else ``./zapline-media``."""
        if self.media_dir:
            return self.media_dir
        prefix = "sqlite:///"
        if self.database_url.startswith(prefix):
            path = self.database_url[len(prefix) :].split("?", 1)[0]
            if path and path != ":memory:":
                folder, _, name = path.rpartition("/")
                stem = name.rsplit(".", 1)[0] or "zapline"
                return f"{folder or '.'}/{stem}-media"
        return "./zapline-media"

    def describe_database(self) -> str:
        """The database URL without its password, for logs."""
        url = self.database_url
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
        return url


def load_settings(env: Mapping[str, str] | None = None, *, require_secret: bool = True) -> Settings:
    """Read ``Settings`` from ``env`` (default ``os.environ``).

    Raises ``ConfigError`` when a value is malformed, or when ``JWT_SECRET`` is unset outside
    the dev profile (and ``require_secret`` is true).
    """
    env = os.environ if env is None else env
    profile = _get(env, "ZAPLINE_ENV", "prod").lower()
    if profile not in ("dev", "prod", "test"):
        raise ConfigError(f"ZAPLINE_ENV must be dev, test or prod, got {profile!r}")
    secret = _get(env, "JWT_SECRET", "")
    if not secret:
        if profile == "dev":
            secret = DEV_JWT_SECRET
        elif require_secret:
            raise ConfigError(
                "JWT_SECRET is not set. Set it to a long random string "
                "(e.g. `export JWT_SECRET=$(python -c 'import secrets;print(secrets.token_urlsafe(48))')`), "
                "or run with ZAPLINE_ENV=dev to use the development secret."
            )
    origins = tuple(
        o.strip() for o in _get(env, "ZAPLINE_CORS_ORIGINS", "").split(",") if o.strip()
    )
    database = env.get("ZAPLINE_DATABASE_URL") or env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    log_level = _get(env, "ZAPLINE_LOG_LEVEL", "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"ZAPLINE_LOG_LEVEL must be debug, info, warning or error, got {log_level!r}"
        )
    return Settings(
        env=profile,
        host=_get(env, "ZAPLINE_HOST", "127.0.0.1"),
        port=_int(env, "ZAPLINE_PORT", 3333),
        socket_port=_int(env, "ZAPLINE_SOCKET_PORT", 3334),
        public_socket_url=env.get("ZAPLINE_PUBLIC_SOCKET_URL") or None,
        database_url=database,
        redis_url=env.get("ZAPLINE_REDIS_URL") or env.get("REDIS_URL") or None,
        jwt_secret=secret,
        log_level=log_level,
        log_format=_get(env, "ZAPLINE_LOG_FORMAT", "json" if profile != "dev" else "text"),
        cors_origins=origins,
        ws_compression=_bool(env, "ZAPLINE_WS_COMPRESSION", False),
        ping_interval=_float(env, "ZAPLINE_PING_INTERVAL", 25.0),
        ping_timeout=_float(env, "ZAPLINE_PING_TIMEOUT", 20.0),
        max_payload=_int(env, "ZAPLINE_MAX_PAYLOAD", 1_000_000),
        outbox_limit=_int(env, "ZAPLINE_OUTBOX_LIMIT", 1 << 20),
        stall_timeout=_float(env, "ZAPLINE_STALL_TIMEOUT", 10.0),
        header_timeout=_float(env, "ZAPLINE_HEADER_TIMEOUT", 10.0),
        idle_timeout=_float(env, "ZAPLINE_IDLE_TIMEOUT", 60.0),
        max_connections=_int(env, "ZAPLINE_MAX_CONNECTIONS", 20_000),
        webhook_max_bytes=_int(env, "ZAPLINE_WEBHOOK_MAX_BYTES", 1 << 20),
        workers=_int(env, "ZAPLINE_WORKERS", 32),
        queue_size=_int(env, "ZAPLINE_QUEUE_SIZE", 10_000),
        whatsapp_api_url=_get(env, "ZAPLINE_WHATSAPP_API_URL", "https://graph.facebook.com").rstrip(
            "/"
        ),
        whatsapp_api_version=_get(env, "ZAPLINE_WHATSAPP_API_VERSION", "v21.0"),
        send_rate=_float(env, "ZAPLINE_SEND_RATE", 80.0),
        metrics_token=env.get("ZAPLINE_METRICS_TOKEN") or None,
        drain_timeout=_float(env, "ZAPLINE_DRAIN_TIMEOUT", 10.0),
        recovery_grace=_float(env, "ZAPLINE_RECOVERY_GRACE", 5.0),
        broker_channel=_get(env, "ZAPLINE_BROKER_CHANNEL", "zapline:fanout"),
        node_id=_get(env, "ZAPLINE_NODE_ID", ""),
        recovery_window=_float(env, "ZAPLINE_RECOVERY_WINDOW", 120.0),
        event_retention=_float(env, "ZAPLINE_EVENT_RETENTION", 86400.0),
        storage_outage_timeout=_float(env, "ZAPLINE_STORAGE_OUTAGE_TIMEOUT", 3600.0),
        inbox_sweep_interval=_float(env, "ZAPLINE_INBOX_SWEEP_INTERVAL", 30.0),
        inbox_retention=_float(env, "ZAPLINE_INBOX_RETENTION", 86400.0),
        presence_grace=_float(env, "ZAPLINE_PRESENCE_GRACE", 10.0),
        unread_interval=_float(env, "ZAPLINE_UNREAD_INTERVAL", 2.0),
        commit_interval=_seconds(env, "ZAPLINE_COMMIT_INTERVAL", 0.005, 1.0),
        agent_sees=_choice(env, "ZAPLINE_AGENT_SEES", AGENT_SEES),
        rate_socket=_limit(env, "ZAPLINE_RATE_SOCKET", "20/40"),
        rate_agent=_limit(env, "ZAPLINE_RATE_AGENT", "40/80"),
        rate_api=_limit(env, "ZAPLINE_RATE_API", "100/200"),
        pending_status_ttl=_float(env, "ZAPLINE_PENDING_STATUS_TTL", 600.0),
        pending_change_ttl=_float(env, "ZAPLINE_PENDING_CHANGE_TTL", 86400.0),
        media_cache_mb=_float(env, "ZAPLINE_MEDIA_CACHE_MB", 256.0),
        media_dir=env.get("ZAPLINE_MEDIA_DIR") or None,
        media_timeout=_float(env, "ZAPLINE_MEDIA_TIMEOUT", 30.0),
        audit_retention=_duration(env, "ZAPLINE_AUDIT_RETENTION", "90d"),
        audit_flush_interval=_float(env, "ZAPLINE_AUDIT_FLUSH_INTERVAL", 0.5),
        demo=_bool(env, "ZAPLINE_DEMO", profile == "dev"),
    )

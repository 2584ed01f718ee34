"""Configuration, read from the environment once, by the composition root.

Our users' previous names (WHATSAPP_*) and units (milliseconds) are kept; ours are WAFLEET_*. A bad value stops
start-up with one line naming the variable and what it expects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    reconnect_delay_ms: int
    max_reconnect_attempts: int
    max_sessions: int
    multi_tenant: bool
    default_company_id: str
    company_id_pattern: re.Pattern[str]
    allowed_phone_pattern: re.Pattern[str]
    log_level: str
    admin_token: str | None
    database_url: str
    data_dir: str
    host: str
    port: int
    sandbox: bool
    reconnect_max_delay_ms: int
    restart_window_ms: int
    restart_reset_after_ms: int
    replaced_cooloff_ms: int
    qr_first_ms: int
    qr_next_ms: int
    boot_rate: float
    journal_batch: int
    statsd_host: str | None
    statsd_port: int
    statsd_prefix: str
    http_pool: int
    sse_heartbeat_ms: int
    redis_url: str | None
    web_sessions_per_host: int
    encryption_key: str | None
    graph_url: str
    graph_version: str
    cloud_throughput: float
    web_link: bool
    max_qr_attempts: int
    max_pairing_per_hour: int
    pairing_cooldown_ms: int
    strict_transitions: bool = False  # WAFLEET_STRICT_TRANSITIONS: an illegal state edge raises
    http_header_timeout_ms: int = 10_000
    http_body_timeout_ms: int = 30_000
    http_idle_timeout_ms: int = 60_000
    sse_max_per_company: int = 10
    sse_max_streams: int = 1000
    auth_failure_limit: int = 10
    auth_failure_window_ms: int = 60_000
    page_session_ttl_ms: int = 7 * 86_400_000
    webhook_secret: str | None = None  # WHATSAPP_WEBHOOK_SECRET: Meta app secret, signs webhooks
    verify_token: str | None = None  # WHATSAPP_VERIFY_TOKEN: the webhook verify handshake
    health_check_interval_ms: int = 30000  # WHATSAPP_HEALTH_CHECK_INTERVAL: a health round
    connection_timeout_ms: int = 60000  # WHATSAPP_CONNECTION_TIMEOUT: longest start
    health_probe_timeout_ms: int = 10000  # WAFLEET_HEALTH_PROBE_TIMEOUT: a link's answer to a probe
    health_concurrency: int = 50  # WAFLEET_HEALTH_CONCURRENCY: probes in flight at once
    cloud_check_interval_ms: int = 600000  # WAFLEET_CLOUD_CHECK_INTERVAL: a Cloud number's recheck
    metrics_interval_ms: int = 60000  # WHATSAPP_METRICS_INTERVAL: figures saved, thresholds judged
    metrics_window_ms: int = 300000  # WAFLEET_METRICS_WINDOW: rates, percentiles and thresholds
    alert_error_rate: float = 0.1  # WHATSAPP_ALERT_ERROR_RATE: share of operations that failed
    alert_disconnect_rate: float = 0.1  # WHATSAPP_ALERT_DISCONNECT_RATE: share of sessions dropped
    alert_memory_mb: float = 1024.0  # WHATSAPP_ALERT_MEMORY_MB: resident memory
    webhook_max_body: int = 4 * 1024 * 1024  # WAFLEET_WEBHOOK_MAX_BODY, bytes (Meta: up to 3 MB)
    webhook_status_hold_ms: int = 86_400_000  # WAFLEET_WEBHOOK_STATUS_HOLD: early statuses kept
    webhook_busy_share: int = 10  # WAFLEET_WEBHOOK_BUSY_SHARE: % of time processing takes in a burst
    webhook_burst_backlog: int = 10_000  # WAFLEET_WEBHOOK_BURST_BACKLOG: rows; past it, no stepping aside
    send_concurrency: int = 64  # WAFLEET_SEND_CONCURRENCY: companies sent to at once
    send_quantum: int = 50  # WAFLEET_SEND_QUANTUM: messages a company sends before yielding its turn
    send_limits: SendLimits = field(default_factory=lambda: SendLimits())
    encrypt_messages: bool = False  # WHATSAPP_ENCRYPT_MESSAGES: message texts sealed at rest
    guide: GuideSettings = field(default_factory=lambda: GuideSettings())
    batch_window_ms: int = 2000  # WAFLEET_BATCH_WINDOW: a customer's burst is answered as one turn
    handoff_minutes: int = 30  # WAFLEET_HANDOFF_MINUTES: the assistant's silence after a human wrote
    conversation_idle_ms: int = 600_000  # WAFLEET_CONVERSATION_IDLE: a quiet chat's actor ends
    booking_complete_every_ms: int = 60_000  # WAFLEET_BOOKING_COMPLETE_EVERY: ended -> completed
    outbound: Outbound | None = None  # company webhooks, alert webhook, notification email


@dataclass(frozen=True)
class SendLimits:
    """What a company may send: a rate limit shared by nodes, and numbers nobody may message."""

    rate_per_company: int = 100  # WHATSAPP_RATE_LIMIT_PER_COMPANY: messages per window
    rate_window_ms: int = 60000  # WHATSAPP_RATE_LIMIT_WINDOW
    blocked_numbers: tuple[str, ...] = ()  # WHATSAPP_BLOCKED_NUMBERS: for every company
    blocklist_max: int = 10_000  # WAFLEET_BLOCKLIST_MAX: numbers on one company's own list


@dataclass(frozen=True)
class GuideSettings:
    """The rest of our users' previous configuration guide (see the README for each one)."""

    session_ttl_ms: int = 3_600_000  # WHATSAPP_SESSION_TTL: idle in-memory session data
    auth_state_ttl_ms: int = 7_200_000  # WHATSAPP_AUTH_STATE_TTL: idle in-memory auth state
    cleanup_interval_ms: int = 60_000  # WHATSAPP_CLEANUP_INTERVAL: how often idle entries go
    keepalive_interval_ms: int = 30_000  # WHATSAPP_KEEPALIVE_INTERVAL: link keep-alive pings
    use_pairing_code: bool = False  # WHATSAPP_USE_PAIRING_CODE: initialize's default method
    provider: str | None = None  # WHATSAPP_PROVIDER: default link of new companies
    validate_webhooks: bool = True  # WHATSAPP_VALIDATE_WEBHOOKS
    log_to_file: bool = False  # WHATSAPP_LOG_TO_FILE
    log_path: str = "logs/whatsapp.log"  # WHATSAPP_LOG_PATH
    debug_sessions: bool = False  # WHATSAPP_DEBUG_SESSIONS: session and fleet loggers at debug
    debug_baileys: bool = False  # WHATSAPP_DEBUG_BAILEYS: the WhatsApp Web link's loggers at debug


@dataclass(frozen=True)
class Outbound:
    """Outbound deliveries: company webhooks, the alert webhook, pairing-code emails."""

    allow_private: bool = False  # WAFLEET_WEBHOOK_ALLOW_PRIVATE: http and private addresses too
    timeout_ms: int = 10000  # WAFLEET_WEBHOOK_TIMEOUT: one attempt, connect to last byte
    retry_budget_ms: int = 86_400_000  # WAFLEET_WEBHOOK_RETRY_BUDGET: then dead-lettered
    retry_base_ms: int = 1000  # WAFLEET_WEBHOOK_RETRY_BASE: full-jitter backoff base
    retry_max_ms: int = 3_600_000  # WAFLEET_WEBHOOK_RETRY_MAX: longest single wait
    concurrency: int = 100  # WAFLEET_WEBHOOK_CONCURRENCY: endpoints delivered to at once
    poll_ms: int = 1000  # WAFLEET_WEBHOOK_POLL: look for due deliveries at least this often
    per_company: int = 10  # WAFLEET_WEBHOOKS_PER_COMPANY: endpoints a company may register
    alert_webhook: str | None = None  # WHATSAPP_ALERT_WEBHOOK, when WHATSAPP_ALERTING_ENABLED
    alert_secret: str | None = None  # WAFLEET_ALERT_WEBHOOK_SECRET: signs alert deliveries
    smtp_url: str | None = None  # WAFLEET_SMTP_URL: smtp://user:pass@host:port
    smtp_from: str = "wafleet@localhost"  # WAFLEET_SMTP_FROM
    keep_ms: int = 7 * 86_400_000  # WAFLEET_WEBHOOK_KEEP: delivered rows are pruned after

    def __repr__(self) -> str:  # never show the SMTP password or the alert secret
        return "Outbound(...)"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number >= {minimum}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name}: expected a whole number >= {minimum}, got {raw!r}")
    return value


def _percent(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default, minimum=1)
    if value > 100:
        raise ConfigError(f"{name}: expected a percentage from 1 to 100, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a positive number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name}: expected a positive number, got {raw!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {raw!r}")


def _pattern(env: Mapping[str, str], name: str, default: str) -> re.Pattern[str]:
    raw = env.get(name) or default
    try:
        return re.compile(raw)
    except re.error as exc:
        raise ConfigError(f"{name}: expected a regular expression, got {raw!r} ({exc})") from None


def _encryption_key(env: Mapping[str, str]) -> str | None:
    """WAFLEET_ENCRYPTION_KEY: one key, or several (comma-separated, newest first) during a
    rotation. WHATSAPP_ENCRYPTION_KEY (our users' previous name) is read when ours is unset."""
    raw = (env.get("WAFLEET_ENCRYPTION_KEY") or "").strip()
    if not raw:
        raw = (env.get("WHATSAPP_ENCRYPTION_KEY") or "").strip()
    if not raw:
        return None
    from wafleet.storage.crypto import Cipher

    try:
        Cipher.from_key(raw)
    except ValueError as exc:
        text = str(exc)
        raise ConfigError(
            text if text.startswith("WAFLEET_ENCRYPTION_KEY") else f"WAFLEET_ENCRYPTION_KEY: {text}"
        ) from None
    return raw


def _encrypt_messages(env: Mapping[str, str]) -> bool:
    on = _bool(env, "WHATSAPP_ENCRYPT_MESSAGES", False)
    if on and _encryption_key(env) is None:
        raise ConfigError(
            "WHATSAPP_ENCRYPT_MESSAGES: needs WAFLEET_ENCRYPTION_KEY (base64 of 32 random bytes)"
        )
    return on


def _redis_url(env: Mapping[str, str]) -> str | None:
    raw = (env.get("REDIS_URL") or "").strip()
    if not raw:
        return None
    if not re.match(r"^(redis|rediss|unix)://", raw):
        raise ConfigError("REDIS_URL: expected redis://host:port/db (or rediss://, unix://)")
    return raw


def _blocked_numbers(env: Mapping[str, str], phone_pattern: re.Pattern[str]) -> tuple[str, ...]:
    raw = env.get("WHATSAPP_BLOCKED_NUMBERS") or ""
    numbers: list[str] = []
    for item in raw.split(","):
        number = item.strip().removeprefix("+")
        if not number:
            continue
        if not phone_pattern.fullmatch(number):
            raise ConfigError(
                f"WHATSAPP_BLOCKED_NUMBERS: {item.strip()!r} does not match WHATSAPP_ALLOWED_PHONE_PATTERN "
                f"({phone_pattern.pattern}); expected comma-separated numbers with country code"
            )
        if number not in numbers:
            numbers.append(number)
    return tuple(numbers)


# WHATSAPP_PROVIDER: our users' previous names for the links; ``baileys`` (a WhatsApp Web
# library) is our ``web`` link.
PROVIDERS = {"baileys": "web", "web": "web", "cloud": "cloud", "sandbox": "sandbox"}


def _guide(env: Mapping[str, str], sandbox: bool) -> GuideSettings:
    provider_raw = (env.get("WHATSAPP_PROVIDER") or "").strip().lower()
    if provider_raw and provider_raw not in PROVIDERS:
        raise ConfigError(f"WHATSAPP_PROVIDER: expected one of {', '.join(PROVIDERS)}, got {provider_raw!r}")
    validate_webhooks = _bool(env, "WHATSAPP_VALIDATE_WEBHOOKS", True)
    if not validate_webhooks and not sandbox:
        raise ConfigError(
            "WHATSAPP_VALIDATE_WEBHOOKS: false is only allowed with the sandbox on (WAFLEET_SANDBOX=true): "
            "unsigned webhooks would let anyone inject messages into any company"
        )
    log_path = (env.get("WHATSAPP_LOG_PATH") or "logs/whatsapp.log").strip()
    for name in ("WHATSAPP_ISOLATE_AUTH", "WHATSAPP_VALIDATE_COMPANY"):
        if not _bool(env, name, True):
            raise ConfigError(f"{name}: false is not supported: companies are always isolated and validated")
    return GuideSettings(
        session_ttl_ms=_int(env, "WHATSAPP_SESSION_TTL", 3_600_000, minimum=1000),
        auth_state_ttl_ms=_int(env, "WHATSAPP_AUTH_STATE_TTL", 7_200_000, minimum=1000),
        cleanup_interval_ms=_int(env, "WHATSAPP_CLEANUP_INTERVAL", 60_000, minimum=100),
        keepalive_interval_ms=_int(env, "WHATSAPP_KEEPALIVE_INTERVAL", 30_000, minimum=1000),
        use_pairing_code=_bool(env, "WHATSAPP_USE_PAIRING_CODE", False),
        provider=PROVIDERS[provider_raw] if provider_raw else None,
        validate_webhooks=validate_webhooks,
        log_to_file=_bool(env, "WHATSAPP_LOG_TO_FILE", False),
        log_path=log_path,
        debug_sessions=_bool(env, "WHATSAPP_DEBUG_SESSIONS", False),
        debug_baileys=_bool(env, "WHATSAPP_DEBUG_BAILEYS", False),
    )


def _outbound(env: Mapping[str, str]) -> Outbound:
    alerting = _bool(env, "WHATSAPP_ALERTING_ENABLED", False)
    alert_webhook = (env.get("WHATSAPP_ALERT_WEBHOOK") or "").strip() or None
    if alerting and alert_webhook is None:
        raise ConfigError("WHATSAPP_ALERT_WEBHOOK: required when WHATSAPP_ALERTING_ENABLED is true")
    if alert_webhook is not None and not re.match(r"^https?://[^/\s]+", alert_webhook):
        raise ConfigError("WHATSAPP_ALERT_WEBHOOK: expected an https:// URL")
    smtp_url = (env.get("WAFLEET_SMTP_URL") or "").strip() or None
    if smtp_url is not None and not re.match(r"^smtps?://([^@/\s]+@)?[^@/:\s]+(:[0-9]{1,5})?/?$", smtp_url):
        raise ConfigError("WAFLEET_SMTP_URL: expected smtp://user:pass@host:port (or smtps://)")
    smtp_from = (env.get("WAFLEET_SMTP_FROM") or "wafleet@localhost").strip()
    if not re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+", smtp_from):
        raise ConfigError(f"WAFLEET_SMTP_FROM: expected an email address, got {smtp_from!r}")
    return Outbound(
        allow_private=_bool(env, "WAFLEET_WEBHOOK_ALLOW_PRIVATE", False),
        timeout_ms=_int(env, "WAFLEET_WEBHOOK_TIMEOUT", 10000, minimum=100),
        retry_budget_ms=_int(env, "WAFLEET_WEBHOOK_RETRY_BUDGET", 86_400_000, minimum=0),
        retry_base_ms=_int(env, "WAFLEET_WEBHOOK_RETRY_BASE", 1000, minimum=1),
        retry_max_ms=_int(env, "WAFLEET_WEBHOOK_RETRY_MAX", 3_600_000, minimum=1),
        concurrency=_int(env, "WAFLEET_WEBHOOK_CONCURRENCY", 100, minimum=1),
        poll_ms=_int(env, "WAFLEET_WEBHOOK_POLL", 1000, minimum=10),
        per_company=_int(env, "WAFLEET_WEBHOOKS_PER_COMPANY", 10, minimum=1),
        alert_webhook=alert_webhook if alerting else None,
        alert_secret=env.get("WAFLEET_ALERT_WEBHOOK_SECRET") or None,
        smtp_url=smtp_url,
        smtp_from=smtp_from,
        keep_ms=_int(env, "WAFLEET_WEBHOOK_KEEP", 7 * 86_400_000, minimum=0),
    )


def load(env: Mapping[str, str], *, demo: bool = False) -> Settings:
    level = (env.get("WHATSAPP_LOG_LEVEL") or "info").strip().lower()
    if level not in ("debug", "info", "warning", "warn", "error", "critical"):
        raise ConfigError(f"WHATSAPP_LOG_LEVEL: expected debug, info, warning or error, got {level!r}")
    data_dir = env.get("WAFLEET_DATA_DIR") or "data"
    database_url = env.get("DATABASE_URL") or f"sqlite:///{data_dir}/wafleet.db"
    if not re.match(r"^(sqlite|postgres|postgresql)://", database_url):
        raise ConfigError(
            "DATABASE_URL: expected sqlite:///path/to/file.db or postgresql://user:pass@host:port/db"
        )
    company_pattern = _pattern(env, "WHATSAPP_COMPANY_ID_PATTERN", r"^[a-zA-Z0-9_-]+$")
    default_company = env.get("DEFAULT_COMPANY_ID") or "default"
    if not company_pattern.fullmatch(default_company) or len(default_company) > 64:
        raise ConfigError("DEFAULT_COMPANY_ID: expected an id matching WHATSAPP_COMPANY_ID_PATTERN")
    statsd_host = env.get("STATSD_HOST", "127.0.0.1").strip() or None
    port = _int(env, "WAFLEET_PORT", 8080, minimum=0)
    if port > 65535:
        raise ConfigError(f"WAFLEET_PORT: expected a port number 0-65535, got {port}")
    phone_pattern = _pattern(env, "WHATSAPP_ALLOWED_PHONE_PATTERN", r"^[0-9]{10,15}$")
    sandbox = _bool(env, "WAFLEET_SANDBOX", demo)
    http_pool = _int(env, "WAFLEET_HTTP_POOL", 2000, minimum=1)
    # Streams hold a pool slot each for their whole life: by default at most half the pool.
    sse_max_streams = _int(env, "WAFLEET_SSE_MAX_STREAMS", min(1000, max(1, http_pool // 2)), minimum=1)
    if sse_max_streams >= http_pool:
        raise ConfigError(
            f"WAFLEET_SSE_MAX_STREAMS: expected fewer than WAFLEET_HTTP_POOL ({http_pool}), "
            f"got {sse_max_streams}: streams would leave no room for other requests"
        )
    admin_token = env.get("WAFLEET_ADMIN_TOKEN") or None
    if admin_token is not None and len(admin_token) < 16:
        raise ConfigError("WAFLEET_ADMIN_TOKEN: expected at least 16 characters")
    return Settings(
        reconnect_delay_ms=_int(env, "WHATSAPP_RECONNECT_DELAY", 5000, minimum=1),
        max_reconnect_attempts=_int(env, "WHATSAPP_MAX_RECONNECT_ATTEMPTS", 10, minimum=1),
        max_sessions=_int(env, "WHATSAPP_MAX_SESSIONS", 1000, minimum=1),
        multi_tenant=_bool(env, "WHATSAPP_MULTI_TENANT", True),
        default_company_id=default_company,
        company_id_pattern=company_pattern,
        allowed_phone_pattern=phone_pattern,
        log_level="warning" if level == "warn" else level,
        admin_token=admin_token,
        database_url=database_url,
        data_dir=data_dir,
        host=env.get("WAFLEET_HOST") or "127.0.0.1",
        port=port,
        sandbox=sandbox,
        reconnect_max_delay_ms=_int(env, "WAFLEET_RECONNECT_MAX_DELAY", 300000, minimum=1),
        restart_window_ms=_int(env, "WAFLEET_RESTART_WINDOW", 600000, minimum=1),
        restart_reset_after_ms=_int(env, "WAFLEET_RESTART_RESET_AFTER", 60000, minimum=1),
        replaced_cooloff_ms=_int(env, "WAFLEET_REPLACED_COOLOFF", 30000),
        qr_first_ms=_int(env, "WAFLEET_QR_FIRST_TIMEOUT", 60000, minimum=100),
        qr_next_ms=_int(env, "WAFLEET_QR_TIMEOUT", 20000, minimum=100),
        boot_rate=_float(env, "WAFLEET_BOOT_RATE", 500.0),
        journal_batch=_int(env, "WAFLEET_JOURNAL_BATCH", 1000, minimum=1),
        statsd_host=statsd_host,
        statsd_port=_int(env, "STATSD_PORT", 8125, minimum=1),
        statsd_prefix=env.get("STATSD_PREFIX") or "wafleet",
        http_pool=http_pool,
        http_header_timeout_ms=_int(env, "WAFLEET_HTTP_HEADER_TIMEOUT", 10_000, minimum=100),
        http_body_timeout_ms=_int(env, "WAFLEET_HTTP_BODY_TIMEOUT", 30_000, minimum=100),
        http_idle_timeout_ms=_int(env, "WAFLEET_HTTP_IDLE_TIMEOUT", 60_000, minimum=100),
        sse_max_per_company=_int(env, "WAFLEET_SSE_MAX_PER_COMPANY", 10, minimum=1),
        sse_max_streams=sse_max_streams,
        auth_failure_limit=_int(env, "WAFLEET_AUTH_FAILURE_LIMIT", 10, minimum=1),
        auth_failure_window_ms=_int(env, "WAFLEET_AUTH_FAILURE_WINDOW", 60_000, minimum=1000),
        page_session_ttl_ms=_int(env, "WAFLEET_PAGE_SESSION_TTL", 7 * 86_400_000, minimum=60_000),
        sse_heartbeat_ms=_int(env, "WAFLEET_SSE_HEARTBEAT", 15000, minimum=100),
        redis_url=_redis_url(env),
        web_sessions_per_host=_int(env, "WAFLEET_WEB_SESSIONS_PER_HOST", 200, minimum=1),
        encryption_key=_encryption_key(env),
        graph_url=(env.get("WAFLEET_GRAPH_URL") or "https://graph.facebook.com").rstrip("/"),
        graph_version=env.get("WAFLEET_GRAPH_VERSION") or "v21.0",
        cloud_throughput=_float(env, "WAFLEET_CLOUD_THROUGHPUT", 80.0),
        web_link=_bool(env, "WAFLEET_WEB_LINK", True),
        strict_transitions=_bool(env, "WAFLEET_STRICT_TRANSITIONS", False),
        max_qr_attempts=_int(env, "WHATSAPP_MAX_QR_ATTEMPTS", 3, minimum=1),
        max_pairing_per_hour=_int(env, "WAFLEET_MAX_PAIRING_PER_HOUR", 5, minimum=1),
        pairing_cooldown_ms=_int(env, "WAFLEET_PAIRING_COOLDOWN", 1800000, minimum=1000),
        webhook_secret=env.get("WHATSAPP_WEBHOOK_SECRET") or None,
        verify_token=env.get("WHATSAPP_VERIFY_TOKEN") or None,
        health_check_interval_ms=_int(env, "WHATSAPP_HEALTH_CHECK_INTERVAL", 30000, minimum=100),
        connection_timeout_ms=_int(env, "WHATSAPP_CONNECTION_TIMEOUT", 60000, minimum=100),
        health_probe_timeout_ms=_int(env, "WAFLEET_HEALTH_PROBE_TIMEOUT", 10000, minimum=10),
        health_concurrency=_int(env, "WAFLEET_HEALTH_CONCURRENCY", 50, minimum=1),
        cloud_check_interval_ms=_int(env, "WAFLEET_CLOUD_CHECK_INTERVAL", 600000, minimum=1000),
        metrics_interval_ms=_int(env, "WHATSAPP_METRICS_INTERVAL", 60000, minimum=100),
        metrics_window_ms=_int(env, "WAFLEET_METRICS_WINDOW", 300000, minimum=60000),
        alert_error_rate=_float(env, "WHATSAPP_ALERT_ERROR_RATE", 0.1),
        alert_disconnect_rate=_float(env, "WHATSAPP_ALERT_DISCONNECT_RATE", 0.1),
        alert_memory_mb=_float(env, "WHATSAPP_ALERT_MEMORY_MB", 1024.0),
        webhook_max_body=_int(env, "WAFLEET_WEBHOOK_MAX_BODY", 4 * 1024 * 1024, minimum=3 * 1024 * 1024),
        webhook_status_hold_ms=_int(env, "WAFLEET_WEBHOOK_STATUS_HOLD", 86_400_000, minimum=1000),
        webhook_busy_share=_percent(env, "WAFLEET_WEBHOOK_BUSY_SHARE", 10),
        webhook_burst_backlog=_int(env, "WAFLEET_WEBHOOK_BURST_BACKLOG", 10_000, minimum=0),
        send_concurrency=_int(env, "WAFLEET_SEND_CONCURRENCY", 64, minimum=1),
        send_quantum=_int(env, "WAFLEET_SEND_QUANTUM", 50, minimum=1),
        send_limits=SendLimits(
            rate_per_company=_int(env, "WHATSAPP_RATE_LIMIT_PER_COMPANY", 100, minimum=1),
            rate_window_ms=_int(env, "WHATSAPP_RATE_LIMIT_WINDOW", 60000, minimum=100),
            blocked_numbers=_blocked_numbers(env, phone_pattern),
            blocklist_max=_int(env, "WAFLEET_BLOCKLIST_MAX", 10_000, minimum=1),
        ),
        encrypt_messages=_encrypt_messages(env),
        guide=_guide(env, sandbox),
        batch_window_ms=_int(env, "WAFLEET_BATCH_WINDOW", 2000),
        handoff_minutes=_int(env, "WAFLEET_HANDOFF_MINUTES", 30),
        conversation_idle_ms=_int(env, "WAFLEET_CONVERSATION_IDLE", 600_000, minimum=1000),
        booking_complete_every_ms=_int(env, "WAFLEET_BOOKING_COMPLETE_EVERY", 60_000, minimum=100),
        outbound=_outbound(env),
    )

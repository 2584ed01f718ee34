"""Configuration: our users' previous names and defaults; a bad value stops start-up with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wafleet.http.settings import ConfigError, load


def test_defaults_follow_the_seeds() -> None:
    s = load({})
    assert (s.reconnect_delay_ms, s.max_reconnect_attempts, s.max_sessions) == (5000, 10, 1000)
    assert s.multi_tenant is True and s.sandbox is False
    assert s.database_url == "sqlite:///data/wafleet.db"
    assert (s.host, s.port) == ("127.0.0.1", 8080)
    assert (s.reconnect_max_delay_ms, s.restart_window_ms, s.restart_reset_after_ms) == (
        300000,
        600000,
        60000,
    )
    assert s.statsd_prefix == "wafleet"
    assert s.company_id_pattern.fullmatch("salon_1-a") and not s.company_id_pattern.fullmatch("a/b")
    assert s.allowed_phone_pattern.fullmatch("5511999990001") and not s.allowed_phone_pattern.fullmatch("+55")
    assert load({}, demo=True).sandbox is True
    # The configuration guide's defaults
    assert (s.send_limits.rate_per_company, s.send_limits.rate_window_ms, s.send_limits.blocked_numbers) == (
        100,
        60000,
        (),
    )
    assert s.encrypt_messages is False
    g = s.guide
    assert (g.session_ttl_ms, g.auth_state_ttl_ms, g.cleanup_interval_ms) == (3_600_000, 7_200_000, 60_000)
    assert (g.keepalive_interval_ms, s.connection_timeout_ms) == (30_000, 60_000)
    assert (g.use_pairing_code, g.provider, g.validate_webhooks) == (False, None, True)
    assert (g.log_to_file, g.log_path) == (False, "logs/whatsapp.log")
    assert load({"WHATSAPP_PROVIDER": "baileys"}).guide.provider == "web"


def test_slow_client_and_auth_limits_defaults() -> None:
    s = load({})
    assert (s.http_header_timeout_ms, s.http_body_timeout_ms, s.http_idle_timeout_ms) == (10000, 30000, 60000)
    assert (s.sse_max_per_company, s.sse_max_streams) == (10, 1000)
    assert (s.auth_failure_limit, s.auth_failure_window_ms) == (10, 60000)
    assert load({"WAFLEET_HTTP_POOL": "50"}).sse_max_streams == 25  # streams never take the pool
    with pytest.raises(ConfigError, match="WAFLEET_SSE_MAX_STREAMS: expected fewer than WAFLEET_HTTP_POOL"):
        load({"WAFLEET_HTTP_POOL": "50", "WAFLEET_SSE_MAX_STREAMS": "50"})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("WHATSAPP_RECONNECT_DELAY", "5s", "whole number"),
        ("WHATSAPP_MAX_RECONNECT_ATTEMPTS", "0", "whole number >= 1"),
        ("WHATSAPP_MULTI_TENANT", "maybe", "true or false"),
        ("WHATSAPP_COMPANY_ID_PATTERN", "([", "regular expression"),
        ("WAFLEET_PORT", "70000", "port number"),
        ("DATABASE_URL", "mysql://x", "sqlite:///"),
        ("WAFLEET_ADMIN_TOKEN", "short", "at least 16"),
        ("WHATSAPP_LOG_LEVEL", "loud", "debug, info"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({name: value})
    assert str(info.value).startswith(f"{name}:") and expected in str(info.value)


def test_bad_value_stops_startup_with_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wafleet.http.main", "serve"],
        env={"WHATSAPP_RECONNECT_DELAY": "soon", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "wafleet: WHATSAPP_RECONNECT_DELAY: expected a whole number >= 1, got 'soon'"
    ]


def test_serve_without_admin_token_refuses_unless_demo(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wafleet.http.main", "serve"],
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "WAFLEET_ADMIN_TOKEN" in proc.stderr


def test_migrate_creates_and_is_idempotent(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": f"sqlite:///{tmp_path}/m.db"}
    first = subprocess.run(
        [sys.executable, "-m", "wafleet.http.main", "migrate"], env=env, capture_output=True, text=True
    )
    second = subprocess.run(
        [sys.executable, "-m", "wafleet.http.main", "migrate"], env=env, capture_output=True, text=True
    )
    from wafleet.storage.schema import MIGRATIONS

    newest = len(MIGRATIONS)
    assert f"version {newest} (was 0)" in first.stdout and f"version {newest} (was {newest})" in second.stdout


def test_the_guides_encryption_key_name_is_read_when_ours_is_unset() -> None:
    from wafleet.storage.crypto import generate_key

    theirs, ours = generate_key(), generate_key()
    assert load({"WHATSAPP_ENCRYPTION_KEY": theirs}).encryption_key == theirs
    assert load({"WHATSAPP_ENCRYPTION_KEY": theirs, "WAFLEET_ENCRYPTION_KEY": ours}).encryption_key == ours
    assert load({"WAFLEET_ENCRYPTION_KEY": f"{ours},{theirs}"}).encryption_key == f"{ours},{theirs}"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WHATSAPP_ALERTING_ENABLED": "true"}, "WHATSAPP_ALERT_WEBHOOK: required"),
        ({"WHATSAPP_ALERTING_ENABLED": "true", "WHATSAPP_ALERT_WEBHOOK": "hooks.example"}, "https:// URL"),
        ({"WAFLEET_SMTP_URL": "mail.example:25"}, "smtp://user:pass@host:port"),
        ({"WAFLEET_SMTP_FROM": "nobody"}, "WAFLEET_SMTP_FROM"),
        ({"WAFLEET_WEBHOOK_TIMEOUT": "10s"}, "WAFLEET_WEBHOOK_TIMEOUT"),
        ({"WAFLEET_WEBHOOK_ALLOW_PRIVATE": "sure"}, "true or false"),
    ],
)
def test_outbound_settings_are_checked(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load(env)


def test_outbound_defaults_and_the_alert_webhook_only_when_enabled() -> None:
    out = load({"WHATSAPP_ALERT_WEBHOOK": "https://hooks.example/alerts"}).outbound
    assert out is not None and out.alert_webhook is None  # set but not enabled: nothing is sent
    assert (out.retry_budget_ms, out.timeout_ms, out.allow_private) == (86_400_000, 10000, False)
    enabled = load({"WHATSAPP_ALERTING_ENABLED": "true", "WHATSAPP_ALERT_WEBHOOK": "https://h.example/a"})
    assert enabled.outbound is not None and enabled.outbound.alert_webhook == "https://h.example/a"
    secret = load({"WAFLEET_SMTP_URL": "smtp://u:hunter2@mail.example:587"})
    assert "hunter2" not in repr(secret)

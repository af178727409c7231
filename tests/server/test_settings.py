"""Settings read from the environment: defaults, overrides and clear refusals."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest

from server.exceptions import SettingsError
from server.settings import DEVELOPMENT_SECRET, Settings

SECRET = "s" * 32


def test_defaults_run_a_local_demo() -> None:
    settings = Settings.from_env({})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.database_url == "sqlite:///./data/switchboard.db"
    assert settings.redis_url is None
    assert settings.secret == DEVELOPMENT_SECRET
    assert settings.secret_is_default
    assert settings.demo_mode
    assert settings.allowed_origins == ("http://localhost:8000", "http://127.0.0.1:8000")
    assert settings.tool_latency_scale == 1.0
    assert settings.node_id == f"{socket.gethostname()}-{os.getpid()}"
    assert settings.max_frame_size == 65_536
    assert settings.outbound_queue_size == 256
    assert settings.depth_cap == 3
    assert settings.turn_budget == 1.5
    assert settings.cleanup_deadline == 5.0
    assert settings.hello_timeout == 10.0
    assert settings.rate_limit == 20.0
    assert settings.rate_limit_burst == 40
    assert settings.max_connections_per_principal == 20
    assert settings.progress_interval == 0.5


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "DATABASE_URL": "postgresql+psycopg://sb:pw@db:5432/sb",
            "REDIS_URL": "redis://cache:6379/0",
            "SWITCHBOARD_SECRET": SECRET,
            "SWITCHBOARD_ALLOWED_ORIGINS": "https://chat.example.com, https://x.example.org:8443/",
            "SWITCHBOARD_TOOL_LATENCY_SCALE": "0",
            "SWITCHBOARD_NODE_ID": "node-a",
            "SWITCHBOARD_MAX_FRAME_SIZE": "131072",
            "SWITCHBOARD_OUTBOUND_QUEUE_SIZE": "64",
            "SWITCHBOARD_DEPTH_CAP": "2",
            "SWITCHBOARD_TURN_BUDGET_SECONDS": "0.25",
            "SWITCHBOARD_CLEANUP_DEADLINE_SECONDS": "2",
            "SWITCHBOARD_HELLO_TIMEOUT_SECONDS": "3.5",
            "SWITCHBOARD_RATE_LIMIT": "5",
            "SWITCHBOARD_RATE_LIMIT_BURST": "10",
            "SWITCHBOARD_MAX_CONNECTIONS_PER_PRINCIPAL": "4",
            "SWITCHBOARD_PROGRESS_INTERVAL_SECONDS": "0.1",
            "SWITCHBOARD_HEAD_TIMEOUT_SECONDS": "4",
            "SWITCHBOARD_BODY_TIMEOUT_SECONDS": "12.5",
            "SWITCHBOARD_MAX_WAITING_REQUESTS": "32",
            "SWITCHBOARD_MAX_HEAD_BYTES": "8192",
            "SWITCHBOARD_GC_THRESHOLDS": " 700, 10 ,10",
        }
    )
    assert settings == Settings(
        host="0.0.0.0",
        port=9000,
        database_url="postgresql+psycopg://sb:pw@db:5432/sb",
        redis_url="redis://cache:6379/0",
        secret=SECRET,
        secret_is_default=False,
        demo_mode=False,
        allowed_origins=("https://chat.example.com", "https://x.example.org:8443"),
        tool_latency_scale=0.0,
        node_id="node-a",
        max_frame_size=131_072,
        outbound_queue_size=64,
        depth_cap=2,
        turn_budget=0.25,
        cleanup_deadline=2.0,
        hello_timeout=3.5,
        rate_limit=5.0,
        rate_limit_burst=10,
        max_connections_per_principal=4,
        progress_interval=0.1,
        head_timeout=4.0,
        body_timeout=12.5,
        max_waiting_requests=32,
        max_head_bytes=8192,
        gc_thresholds=(700, 10, 10),
    )


def test_settings_are_frozen_and_never_show_the_secret() -> None:
    settings = Settings.from_env({"SWITCHBOARD_SECRET": SECRET})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
    assert SECRET not in repr(settings)
    assert DEVELOPMENT_SECRET not in repr(Settings.from_env({}))


def test_default_origins_follow_the_port() -> None:
    settings = Settings.from_env({"PORT": "8080"})
    assert settings.allowed_origins == ("http://localhost:8080", "http://127.0.0.1:8080")
    assert settings.origin_allowed("http://localhost:8080")
    assert not settings.origin_allowed("http://localhost:8000")
    assert not settings.origin_allowed("https://evil.example")


def test_origins_are_matched_as_browsers_send_them() -> None:
    settings = Settings.from_env(
        {"SWITCHBOARD_ALLOWED_ORIGINS": "HTTPS://Chat.Example.com:443/,,http://[::1]:8000"}
    )
    assert settings.allowed_origins == ("https://chat.example.com", "http://[::1]:8000")
    assert settings.origin_allowed("https://chat.example.com")
    assert settings.origin_allowed("http://[::1]:8000")
    assert not settings.origin_allowed("http://chat.example.com")
    assert not settings.origin_allowed("https://chat.example.com.evil.example")
    assert not settings.origin_allowed("null")
    assert not settings.origin_allowed("")


def test_demo_mode() -> None:
    assert Settings.from_env({"SWITCHBOARD_DEMO": "0"}).demo_mode
    assert not Settings.from_env({"SWITCHBOARD_SECRET": SECRET}).demo_mode
    real_demo = Settings.from_env({"SWITCHBOARD_SECRET": SECRET, "SWITCHBOARD_DEMO": "1"})
    assert real_demo.demo_mode
    assert not real_demo.secret_is_default
    assert Settings.from_env({"SWITCHBOARD_SECRET": SECRET, "SWITCHBOARD_DEMO": "true"}).demo_mode


def test_empty_variables_count_as_unset() -> None:
    settings = Settings.from_env(
        {"REDIS_URL": "", "SWITCHBOARD_SECRET": "", "PORT": " ", "DATABASE_URL": ""}
    )
    assert settings == Settings.from_env({})


def test_runtime_settings_carry_the_limits() -> None:
    runtime = Settings.from_env(
        {"SWITCHBOARD_NODE_ID": "n1", "SWITCHBOARD_DEPTH_CAP": "2"}
    ).runtime()
    assert runtime.node_id == "n1"
    assert runtime.depth_cap == 2
    assert runtime.turn_budget == 1.5
    assert runtime.cleanup_deadline == 5.0
    assert runtime.progress_interval == 0.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("PORT", "-1"),
        ("PORT", "1_000"),
        ("PORT", "80.0"),
        ("SWITCHBOARD_TOOL_LATENCY_SCALE", "-0.5"),
        ("SWITCHBOARD_TOOL_LATENCY_SCALE", "nan"),
        ("SWITCHBOARD_TOOL_LATENCY_SCALE", "inf"),
        ("SWITCHBOARD_TOOL_LATENCY_SCALE", "fast"),
        ("SWITCHBOARD_MAX_FRAME_SIZE", "10"),
        ("SWITCHBOARD_OUTBOUND_QUEUE_SIZE", "0"),
        ("SWITCHBOARD_DEPTH_CAP", "-1"),
        ("SWITCHBOARD_TURN_BUDGET_SECONDS", "0"),
        ("SWITCHBOARD_CLEANUP_DEADLINE_SECONDS", "-5"),
        ("SWITCHBOARD_HELLO_TIMEOUT_SECONDS", "soon"),
        ("SWITCHBOARD_RATE_LIMIT", "0"),
        ("SWITCHBOARD_RATE_LIMIT_BURST", "0"),
        ("SWITCHBOARD_MAX_CONNECTIONS_PER_PRINCIPAL", "many"),
        ("SWITCHBOARD_PROGRESS_INTERVAL_SECONDS", "0"),
        ("SWITCHBOARD_HEAD_TIMEOUT_SECONDS", "0"),
        ("SWITCHBOARD_BODY_TIMEOUT_SECONDS", "never"),
        ("SWITCHBOARD_MAX_WAITING_REQUESTS", "0"),
        ("SWITCHBOARD_MAX_HEAD_BYTES", "100"),
        ("SWITCHBOARD_GC_THRESHOLDS", "100"),
        ("SWITCHBOARD_GC_THRESHOLDS", "100,10"),
        ("SWITCHBOARD_GC_THRESHOLDS", "0,10,10"),
        ("SWITCHBOARD_GC_THRESHOLDS", "100,10,-1"),
        ("SWITCHBOARD_GC_THRESHOLDS", "100,ten,100"),
        ("SWITCHBOARD_DEMO", "maybe"),
        ("SWITCHBOARD_NODE_ID", "node a"),
        ("SWITCHBOARD_NODE_ID", "n" * 129),
        ("SWITCHBOARD_ALLOWED_ORIGINS", "chat.example.com"),
        ("SWITCHBOARD_ALLOWED_ORIGINS", "https://chat.example.com/app"),
        ("SWITCHBOARD_ALLOWED_ORIGINS", "ftp://chat.example.com"),
        ("SWITCHBOARD_ALLOWED_ORIGINS", "https://chat.example.com:99999"),
        ("SWITCHBOARD_ALLOWED_ORIGINS", "*"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}: ") as caught:
        Settings.from_env({name: value})
    assert caught.value.variable == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SWITCHBOARD_SECRET", "short-secret-of-31-bytes-long!!"),
        ("SWITCHBOARD_SECRET", f" {SECRET}"),
        ("SWITCHBOARD_SECRET", DEVELOPMENT_SECRET),
        ("DATABASE_URL", "mysql://root:hunter2-password@db/sb"),
        ("DATABASE_URL", "hunter2-password"),
        ("REDIS_URL", "http://:hunter2-password@cache:6379"),
        ("REDIS_URL", "hunter2-password"),
    ],
)
def test_bad_credentials_are_named_but_never_repeated(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}: ") as caught:
        Settings.from_env({name: value})
    assert value.strip() not in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "short-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "url", ["sqlite:///./data/x.db", "sqlite://", "postgresql://u@h/db", "postgres://h/db"]
)
def test_database_urls_accepted(url: str) -> None:
    assert Settings.from_env({"DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h", "unix:///run/redis.sock"])
def test_redis_urls_accepted(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def test_audit_checkpoints_on_a_schedule_need_a_key_and_a_place() -> None:
    settings = Settings.from_env(
        {
            "SWITCHBOARD_AUDIT_SIGNING_KEY": "/run/secrets/audit.pem",
            "SWITCHBOARD_AUDIT_PUBLIC_KEY": "/etc/switchboard/audit.pub",
            "SWITCHBOARD_AUDIT_CHECKPOINTS": "/mnt/worm/checkpoints",
            "SWITCHBOARD_AUDIT_CHECKPOINT_EVERY_SECONDS": "60",
        }
    )
    assert settings.audit_signing_key == Path("/run/secrets/audit.pem")
    assert settings.audit_public_key == Path("/etc/switchboard/audit.pub")
    assert settings.audit_checkpoints == Path("/mnt/worm/checkpoints")
    assert settings.audit_checkpoint_every == 60.0
    assert Settings.from_env({}).audit_checkpoint_every is None
    for missing in ("SWITCHBOARD_AUDIT_SIGNING_KEY", "SWITCHBOARD_AUDIT_CHECKPOINTS"):
        environ = {
            "SWITCHBOARD_AUDIT_SIGNING_KEY": "/k.pem",
            "SWITCHBOARD_AUDIT_CHECKPOINTS": "/c",
            "SWITCHBOARD_AUDIT_CHECKPOINT_EVERY_SECONDS": "60",
        }
        del environ[missing]
        with pytest.raises(SettingsError, match=missing):
            Settings.from_env(environ)
    with pytest.raises(SettingsError, match="CHECKPOINT_EVERY"):
        Settings.from_env(
            {
                "SWITCHBOARD_AUDIT_SIGNING_KEY": "/k.pem",
                "SWITCHBOARD_AUDIT_CHECKPOINTS": "/c",
                "SWITCHBOARD_AUDIT_CHECKPOINT_EVERY_SECONDS": "0",
            }
        )

"""The server's settings, read once from the environment (twelve-factor).

An empty variable counts as unset, so ``REDIS_URL=`` in a compose file means "no
Redis". A malformed value stops the server at start-up with a :class:`SettingsError`
that names the variable; values that may hold credentials (the secret, database and
Redis URLs) are never repeated in the message.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agents.settings import RuntimeSettings
from server.exceptions import SettingsError

# Public on purpose: anyone can sign tokens for a server that runs with it, which is
# why it switches demo mode on and is reported at start-up.
DEVELOPMENT_SECRET = "switchboard-development-secret-do-not-deploy"
DEFAULT_DATABASE_URL = "sqlite:///./data/switchboard.db"
# HS256 keys shorter than the 32-byte digest are brute-forceable (RFC 7518, 3.2).
MIN_SECRET_BYTES = 32

_NODE_ID = re.compile(r"[A-Za-z0-9_.@:\-]{1,128}")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
_REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server reads from its environment. Build with :meth:`from_env`."""

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # Kept out of the repr so that logging the settings never logs the secret.
    secret: str = field(default=DEVELOPMENT_SECRET, repr=False)
    secret_is_default: bool = True
    demo_mode: bool = True
    allowed_origins: tuple[str, ...] = ("http://localhost:8000", "http://127.0.0.1:8000")
    tool_latency_scale: float = 1.0
    node_id: str = "local"
    max_frame_size: int = 65_536
    outbound_queue_size: int = 256
    depth_cap: int = 3
    turn_budget: float = 1.5
    cleanup_deadline: float = 5.0
    hello_timeout: float = 10.0
    rate_limit: float = 20.0
    rate_limit_burst: int = 40
    max_connections_per_principal: int = 20
    progress_interval: float = 0.5
    voice_pause_grace: float = 1.5
    lease_seconds: float = 5.0
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_waiting_requests: int = 8192
    max_head_bytes: int = 65_536
    gc_full_walk_every: float = 600.0
    """How often the cycle collector considers walking the whole heap (it does once what
    is frozen has grown by a quarter: :mod:`server.collector`)."""
    gc_thresholds: tuple[int, int, int] | None = None
    """The collector's thresholds while the node runs (:func:`gc.set_threshold`); by
    default CPython's own (700, 10, 10). See :mod:`server.collector` and BENCHMARKS.md
    for what lower ones cost."""
    audit_signing_key: Path | None = None
    """The Ed25519 private key (PEM file) checkpoints are signed with; never in the database."""
    audit_public_key: Path | None = None
    audit_checkpoints: Path | None = None
    """Where checkpoints are kept: a directory (a file each) or a file (a line each)."""
    audit_checkpoint_every: float | None = None
    llm_url: str | None = None
    """An OpenAI-compatible server's base URL: the demo's agents then use the LLM brain."""
    llm_model: str = "default"
    llm_api_key: str | None = field(default=None, repr=False)
    llm_json: bool = False
    llm_timeout: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Read the settings from *environ*; raises :class:`SettingsError` on bad values."""
        env = _Environment(environ)
        port = env.integer("PORT", 8000, minimum=1, maximum=65_535)
        secret = env.secret("SWITCHBOARD_SECRET")
        demo = env.boolean("SWITCHBOARD_DEMO")
        origins = env.origins("SWITCHBOARD_ALLOWED_ORIGINS")
        return cls(
            host=env.text("HOST") or "127.0.0.1",
            port=port,
            database_url=env.database_url("DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.redis_url("REDIS_URL"),
            secret=secret or DEVELOPMENT_SECRET,
            secret_is_default=secret is None,
            # Anyone can sign tokens for a server on the public secret, so it is a demo
            # whatever SWITCHBOARD_DEMO says; with a real secret only the flag makes one.
            demo_mode=secret is None or demo is True,
            allowed_origins=origins or (f"http://localhost:{port}", f"http://127.0.0.1:{port}"),
            tool_latency_scale=env.number("SWITCHBOARD_TOOL_LATENCY_SCALE", 1.0, minimum=0.0),
            node_id=env.node_id("SWITCHBOARD_NODE_ID") or f"{socket.gethostname()}-{os.getpid()}",
            max_frame_size=env.integer("SWITCHBOARD_MAX_FRAME_SIZE", 65_536, minimum=1024),
            outbound_queue_size=env.integer("SWITCHBOARD_OUTBOUND_QUEUE_SIZE", 256, minimum=1),
            depth_cap=env.integer("SWITCHBOARD_DEPTH_CAP", 3, minimum=0),
            turn_budget=env.seconds("SWITCHBOARD_TURN_BUDGET_SECONDS", 1.5),
            cleanup_deadline=env.seconds("SWITCHBOARD_CLEANUP_DEADLINE_SECONDS", 5.0),
            hello_timeout=env.seconds("SWITCHBOARD_HELLO_TIMEOUT_SECONDS", 10.0),
            rate_limit=env.number("SWITCHBOARD_RATE_LIMIT", 20.0, minimum=0.0, exclusive=True),
            rate_limit_burst=env.integer("SWITCHBOARD_RATE_LIMIT_BURST", 40, minimum=1),
            max_connections_per_principal=env.integer(
                "SWITCHBOARD_MAX_CONNECTIONS_PER_PRINCIPAL", 20, minimum=1
            ),
            progress_interval=env.seconds("SWITCHBOARD_PROGRESS_INTERVAL_SECONDS", 0.5),
            # After the caller stops speaking, how long their transcript may take to
            # arrive before held updates are spoken (some speech-to-text is slow).
            voice_pause_grace=env.seconds("SWITCHBOARD_VOICE_PAUSE_GRACE_SECONDS", 1.5),
            # How long a conversation's home lease lasts unless renewed: how soon another
            # node may take over from a node that died (DEPLOY.md).
            lease_seconds=env.seconds("SWITCHBOARD_LEASE_SECONDS", 5.0),
            # Slow clients (server/slow_clients.py): how long a request's head and body
            # may take, how many connections may wait for a head at once (also capped
            # by the open-files limit), and how large a head may be.
            head_timeout=env.seconds("SWITCHBOARD_HEAD_TIMEOUT_SECONDS", 10.0),
            body_timeout=env.seconds("SWITCHBOARD_BODY_TIMEOUT_SECONDS", 30.0),
            max_waiting_requests=env.integer("SWITCHBOARD_MAX_WAITING_REQUESTS", 8192, minimum=1),
            max_head_bytes=env.integer("SWITCHBOARD_MAX_HEAD_BYTES", 65_536, minimum=1024),
            gc_full_walk_every=env.seconds("SWITCHBOARD_GC_FULL_WALK_SECONDS", 600.0),
            gc_thresholds=env.thresholds("SWITCHBOARD_GC_THRESHOLDS"),
            audit_signing_key=env.path("SWITCHBOARD_AUDIT_SIGNING_KEY"),
            audit_public_key=env.path("SWITCHBOARD_AUDIT_PUBLIC_KEY"),
            audit_checkpoints=env.path("SWITCHBOARD_AUDIT_CHECKPOINTS"),
            audit_checkpoint_every=env.checkpoint_every(),
            llm_url=env.http_url("SWITCHBOARD_LLM_URL"),
            llm_model=env.text("SWITCHBOARD_LLM_MODEL") or "default",
            llm_api_key=env.text("SWITCHBOARD_LLM_API_KEY"),
            llm_json=env.boolean("SWITCHBOARD_LLM_JSON") is True,
            llm_timeout=env.seconds("SWITCHBOARD_LLM_TIMEOUT_SECONDS", 30.0),
        )

    def origin_allowed(self, origin: str) -> bool:
        """Whether a WebSocket upgrade with this ``Origin`` header may proceed."""
        return _normalize_origin(origin) in self.allowed_origins

    def runtime(self) -> RuntimeSettings:
        """The runtime's share of these settings; the rest keep the runtime's defaults."""
        return RuntimeSettings(
            node_id=self.node_id,
            turn_budget=self.turn_budget,
            depth_cap=self.depth_cap,
            cleanup_deadline=self.cleanup_deadline,
            progress_interval=self.progress_interval,
        )


class _Environment:
    """Typed reads of one environment mapping; every failure names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        bound = f" between {minimum} and {maximum}" if maximum is not None else f" >= {minimum}"
        # Only ASCII digits: int() would also take "1_000", "+5" and non-Latin digits.
        if not re.fullmatch(r"[0-9]{1,18}", raw):
            raise SettingsError(name, f"must be a whole number{bound}, got {raw!r}")
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            raise SettingsError(name, f"must be{bound}, got {value}")
        return value

    def thresholds(self, name: str) -> tuple[int, int, int] | None:
        """Three whole numbers >= 1, comma-separated: the collector's three thresholds."""
        raw = self.text(name)
        if raw is None:
            return None
        parts = [part.strip() for part in raw.split(",")]
        if len(parts) != 3 or not all(re.fullmatch(r"[0-9]{1,9}", part) for part in parts):
            raise SettingsError(name, f"must be three whole numbers like 100,10,100, got {raw!r}")
        young, middle, old = (int(part) for part in parts)
        if min(young, middle, old) < 1:
            # 0 would turn the collector off: cycles would never be freed.
            raise SettingsError(name, f"must be three whole numbers >= 1, got {raw!r}")
        return young, middle, old

    def number(
        self, name: str, default: float, *, minimum: float, exclusive: bool = False
    ) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        bound = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number {bound}, got {raw!r}") from None
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            raise SettingsError(name, f"must be a finite number {bound}, got {raw!r}")
        return value

    def seconds(self, name: str, default: float) -> float:
        return self.number(name, default, minimum=0.0, exclusive=True)

    def boolean(self, name: str) -> bool | None:
        raw = self.text(name)
        if raw is None:
            return None
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(name, f"must be 1 or 0 (or true/false, yes/no, on/off), got {raw!r}")

    def secret(self, name: str) -> str | None:
        raw = self._environ.get(name)
        if not raw:
            return None
        # The value itself is never part of a message, not even a hint of it.
        if raw != raw.strip():
            raise SettingsError(name, "must not begin or end with whitespace")
        if len(raw.encode("utf-8", "surrogatepass")) < MIN_SECRET_BYTES:
            raise SettingsError(name, f"must be at least {MIN_SECRET_BYTES} bytes long")
        if raw == DEVELOPMENT_SECRET:
            raise SettingsError(name, "must not be the public development secret")
        return raw

    def path(self, name: str) -> Path | None:
        raw = self.text(name)
        return None if raw is None else Path(raw)

    def checkpoint_every(self) -> float | None:
        """How often the server signs the audit chain's head; it needs a key and a place."""
        name = "SWITCHBOARD_AUDIT_CHECKPOINT_EVERY_SECONDS"
        if self.text(name) is None:
            return None
        needed = ("SWITCHBOARD_AUDIT_SIGNING_KEY", "SWITCHBOARD_AUDIT_CHECKPOINTS")
        if any(self.text(other) is None for other in needed):
            raise SettingsError(name, f"needs {needed[0]} and {needed[1]}")
        return self.seconds(name, 1.0)

    def database_url(self, name: str) -> str | None:
        # URLs may carry a password, so the value is never echoed.
        raw = self.text(name)
        if raw is None:
            return None
        scheme = urlsplit(raw).scheme.lower()
        if "://" not in raw or scheme.split("+", 1)[0] not in _DATABASE_SCHEMES:
            raise SettingsError(name, "must be a sqlite:// or postgresql:// URL")
        return raw

    def http_url(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise SettingsError(name, "must be an http:// or https:// URL")
        return value

    def redis_url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        if "://" not in raw or urlsplit(raw).scheme.lower() not in _REDIS_SCHEMES:
            raise SettingsError(name, "must be a redis://, rediss:// or unix:// URL")
        return raw

    def node_id(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is not None and not _NODE_ID.fullmatch(raw):
            raise SettingsError(
                name, "must be 1 to 128 letters, digits or _.@:- (it is used in lease keys)"
            )
        return raw

    def origins(self, name: str) -> tuple[str, ...]:
        raw = self.text(name)
        if raw is None:
            return ()
        origins: list[str] = []
        for item in raw.split(","):
            if not item.strip():
                continue
            origin = _normalize_origin(item)
            if not origin:
                raise SettingsError(
                    name, f"{item.strip()!r} is not an origin like https://chat.example.com"
                )
            if origin not in origins:
                origins.append(origin)
        return tuple(origins)


def _normalize_origin(value: str) -> str:
    """``scheme://host[:port]`` in lower case, or ``""`` if *value* is not an origin.

    Browsers send the ``Origin`` header in this form; a trailing slash in the setting
    is forgiven so that a copied URL still matches.
    """
    value = value.strip().removesuffix("/")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return ""
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
    ):
        return ""
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    # Browsers leave out the scheme's default port, so a configured one must go too.
    if port is None or _DEFAULT_PORTS[scheme] == port:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"

"""How the app is served: uvicorn's options, the open-files limit, and the slow-client
guard (:mod:`server.slow_clients`), the same for ``switchboard serve`` and the bench."""

from __future__ import annotations

import logging
import resource
from typing import Any

import uvicorn

from server.settings import Settings
from server.slow_clients import (
    ConnectionLimits,
    guarded_http_protocol,
)
from server.websocket_protocol import BatchingWebSocketProtocol

log = logging.getLogger(__name__)

# uvicorn waits this long for open requests once the sockets are closed.
GRACEFUL_SHUTDOWN_S = 10
# Of the process's descriptors, at most this share may be held by connections that
# have not sent a request head: the rest stay for the store, sockets and requests.
WAITING_SHARE = 4
MIN_WAITING = 8
LOW_OPEN_FILES = 4096


def raise_open_files_limit() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return (soft, hard).

    Each connection holds a descriptor, and the common default soft limit (1,024) is
    far below what a server needs. An unlimited hard limit is taken as the kernel's
    cap on one process (``/proc/sys/fs/nr_open``); if raising fails, the limit stays.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _kernel_cap(soft)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        log.warning("could not raise the open files limit", extra={"limit": soft})
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _kernel_cap(fallback: int) -> int:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as nr_open:
            return int(nr_open.read().strip())
    except (OSError, ValueError):
        return fallback


def connection_limits(settings: Settings, open_files: int) -> ConnectionLimits:
    """The slow-client limits for a process that may hold *open_files* descriptors."""
    share = max(MIN_WAITING, open_files // WAITING_SHARE)
    return ConnectionLimits(
        head_timeout=settings.head_timeout,
        body_timeout=settings.body_timeout,
        max_waiting=min(settings.max_waiting_requests, share),
        max_head_bytes=settings.max_head_bytes,
    )


def uvicorn_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for *app* (``host``, ``port`` and others in *options*).

    Raises the open-files limit first and logs the figure with the limits it allows.
    """
    soft, hard = raise_open_files_limit()
    limits = connection_limits(settings, soft)
    # Below this, a few thousand clients exhaust the descriptors: worth a warning.
    level = logging.INFO if soft >= LOW_OPEN_FILES else logging.WARNING
    log.log(
        level,
        "open files limit",
        extra={"limit": soft, "hard_limit": hard, "waiting": limits.max_waiting},
    )
    return uvicorn.Config(
        app,
        http=guarded_http_protocol(limits),
        ws=BatchingWebSocketProtocol,
        lifespan="on",
        ws_max_size=settings.max_frame_size,
        ws_per_message_deflate=False,
        # Requests are logged by AccessLogMiddleware, with route templates.
        access_log=False,
        # Keep the JSON logging the caller configured; uvicorn's would print raw paths.
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **options,
    )

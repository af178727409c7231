"""The Django Channels peer (``bench/peers/channels/``): its venv, and one server of it.

:func:`channels_peer` starts a Redis of its own, then ``python -m chatpeer.serve`` in
the peer's venv on a fresh SQLite file, with the development secret and the bench's
workspace: the tokens of :func:`bench.harness.person_token` open its sockets as they
open Switchboard's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ROOT, ServerProcess
from bench.peers.redis import RedisServer, redis_server
from bench.peers.venv import ensure_venv
from bench.scenario import RunContext
from bench.workspace import BENCH_WORKSPACE
from server.settings import DEVELOPMENT_SECRET

PEER_DIR = ROOT / "bench" / "peers" / "channels"
REQUIREMENTS = PEER_DIR / "requirements.txt"
NAME = "channels"


async def channels_python(log: Callable[[str], None] = print) -> Path:
    """The peer venv's interpreter, the venv created first if needed (PyPI)."""
    return await ensure_venv(NAME, REQUIREMENTS, log)


@dataclass(frozen=True, slots=True)
class ChannelsPeer:
    server: ServerProcess
    redis: RedisServer


@asynccontextmanager
async def channels_peer(
    ctx: RunContext, python: Path, layer: str = "pubsub"
) -> AsyncIterator[ChannelsPeer]:
    """A fresh peer (its Redis, its database), ready; both stopped after.

    *layer* is channels_redis's ``pubsub`` layer (``RedisPubSubChannelLayer``) or its
    ``core`` one (``RedisChannelLayer``).
    """
    if layer not in ("pubsub", "core"):
        raise ValueError(f"no channel layer {layer!r}: pubsub or core")
    n = len(ctx.servers)
    async with (
        redis_server(ctx.workdir, ctx.path(f"redis{n}.log")) as redis,
        ctx.server(
            env={
                "PEER_REDIS_URL": redis.url,
                "PEER_CHANNEL_LAYER": layer,
                "PEER_SECRET": DEVELOPMENT_SECRET,
                "PEER_WORKSPACE": BENCH_WORKSPACE,
            },
            module=("chatpeer.serve",),
            python=str(python),
            cwd=PEER_DIR,
        ) as server,
    ):
        yield ChannelsPeer(server, redis)

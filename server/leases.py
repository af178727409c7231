"""Conversation leases in Redis: which node is each conversation's home.

A lease is one key, ``switchboard:lease:{conversation_id}``, whose value is the
holder's ``owner`` (node id and incarnation) and which expires unless renewed
(``SET NX PX``, then ``PEXPIRE`` by the holder alone; each is a Lua script, so the
check and the write are one step). The fencing number that makes a lapsed holder
harmless is not kept here but in the store (:meth:`SqlStore.take_home`), which
checks it in every commit's transaction: Redis may lose its keys (a restart without
persistence) without two homes ever both writing.

Every call is bounded by ``timeout``; a Redis that does not answer in time raises
:class:`~agents.exceptions.Unavailable` with a fixed message, never its own text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from redis.exceptions import RedisError

from agents.exceptions import Unavailable

PREFIX = "switchboard:lease:"

# KEYS[1]: the lease; ARGV: owner, ttl in ms. 1 if ours now, else 0.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: leases; ARGV: owner, ttl in ms. The 1-based indexes of those another holds.
# A lease found missing (it lapsed, or Redis restarted empty) is taken again: if
# another node took the conversation meanwhile, the store's fence refuses us anyway.
_RENEW = """
local lost = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not holder then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

FAILURES = (RedisError, OSError, TimeoutError)
"""What a Redis that is down, hung or refusing raises (a timeout included)."""

RENEW_BATCH = 500
"""Leases renewed per script call, so that one call never holds Redis for long."""


class RedisLeases:
    """:class:`~agents.ports.Leases` on Redis, through the bus's client."""

    def __init__(self, client: Any, owner: str, *, ttl: float, timeout: float = 1.0) -> None:
        self.owner = owner
        self.ttl = ttl
        self._ttl_ms = max(1, int(ttl * 1000))
        self._timeout = timeout
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def _call(self, script: Any, keys: list[str], args: list[object]) -> Any:
        try:
            with anyio.fail_after(self._timeout):
                return await script(keys=keys, args=args)
        except FAILURES as exc:
            raise Unavailable("leases unavailable") from exc

    async def acquire(self, conversation_id: str) -> bool:
        """Take the lease if free or ours; ``False`` if another holds it."""
        found = await self._call(
            self._acquire, [PREFIX + conversation_id], [self.owner, self._ttl_ms]
        )
        return bool(found)

    async def renew(self, conversation_ids: Sequence[str]) -> list[str]:
        """Extend ours (re-taking any that lapsed); return those another holds."""
        ids = list(conversation_ids)
        lost: list[str] = []
        for start in range(0, len(ids), RENEW_BATCH):
            part = ids[start : start + RENEW_BATCH]
            found = await self._call(
                self._renew, [PREFIX + c for c in part], [self.owner, self._ttl_ms]
            )
            lost.extend(part[int(i) - 1] for i in found)
        return lost

    async def release(self, conversation_id: str) -> None:
        """Give the lease up at once, if it is still ours."""
        await self._call(self._release, [PREFIX + conversation_id], [self.owner])

    async def holders(self, conversation_ids: Sequence[str]) -> dict[str, str | None]:
        """Who holds each lease, or ``None`` where it is free (lapsed or never taken)."""
        ids = list(conversation_ids)
        if not ids:
            return {}
        try:
            with anyio.fail_after(self._timeout):
                values = await self._client.mget([PREFIX + c for c in ids])
        except FAILURES as exc:
            raise Unavailable("leases unavailable") from exc
        return {
            c: (v.decode() if isinstance(v, bytes) else v) for c, v in zip(ids, values, strict=True)
        }

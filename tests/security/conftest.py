"""The security tests' fixtures: the end-to-end ones (a real ``switchboard serve``).

Sockets and HTTP clients here are asyncio's (uvicorn, websockets), so async tests run
on asyncio only; the in-process tests of this package are synchronous.
"""

from __future__ import annotations

from tests.e2e.conftest import anyio_backend, postgres_schema_url, server_factory, shared_servers

__all__ = ["anyio_backend", "postgres_schema_url", "server_factory", "shared_servers"]

"""Storage: the runtime's store and patient directory on SQLite or PostgreSQL (SQLModel).

engine = create_engine_for(settings.database_url)
create_schema(engine)          # or: await store.create_schema()
store = SqlStore(engine)       # a Store and a PatientDirectory; owns the engine
...
await store.close()
"""

from __future__ import annotations

from server.storage.engine import (
    SchemaTooNew,
    create_engine_for,
    create_schema,
    normalize_url,
    schema_version,
)
from server.storage.sql_store import SqlStore

__all__ = [
    "SchemaTooNew",
    "SqlStore",
    "create_engine_for",
    "create_schema",
    "normalize_url",
    "schema_version",
]

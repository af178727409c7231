"""One Alembic revision per schema version."""

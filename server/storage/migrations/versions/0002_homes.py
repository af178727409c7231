"""Schema 2: a conversation carries its home's fencing number; a task, whether its
follow-up was stored.

Tasks stored before schema 2 count as followed up: their follow-ups, if any, were sent
long ago, and recovery must not announce them again.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "conversations",
        sa.Column("home_fence", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column(
        "tasks",
        sa.Column("followed_up", sa.Boolean(), nullable=False, server_default=sa.true()),
    )

"""Schema 4: each event's frame as it is sent (``events.wire``), so that a replay sends
stored text instead of rebuilding every frame. Events stored before keep ``NULL`` there
and are rebuilt from their body when replayed.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("wire", sa.Text(), nullable=True))

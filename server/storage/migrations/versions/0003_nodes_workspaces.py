"""Schema 3: each process's heartbeat (``nodes``), each conversation's home owner, and
the applied workspace files (``workspaces``).

The ``workspaces`` table came with schema 2 databases made after workspace files did,
created as a missing table; it is created here only where it is missing.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("seen_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    op.add_column("conversations", sa.Column("home_owner", sa.String(), nullable=True))
    if not sa.inspect(op.get_bind()).has_table("workspaces"):
        op.create_table(
            "workspaces",
            sa.Column("id", sa.String(), nullable=False),
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("revision", sa.Integer(), nullable=False),
            sa.Column("digest", sa.String(), nullable=False),
            sa.Column("spec", sa.Text(), nullable=False),
            sa.Column("applied_at", TIMESTAMP, nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )

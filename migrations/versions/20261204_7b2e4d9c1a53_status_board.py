"""status board: the one #miners message the bot keeps pinned and edits (issue 16 §6)

Revision ID: 7b2e4d9c1a53
Revises: 3f6a1c9d2b17
Create Date: 2026-12-04 16:10:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b2e4d9c1a53"
down_revision: str | None = "3f6a1c9d2b17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "status_board",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_board")),
    )


def downgrade() -> None:
    op.drop_table("status_board")

"""alert spool cursor

Revision ID: 4e1f0c2b7a93
Revises: ac35fecb06b5
Create Date: 2026-11-28 13:20:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4e1f0c2b7a93"
down_revision: str | None = "ac35fecb06b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_spool_cursors",
        sa.Column("generation", sa.String(length=64), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_alert_spool_cursors")),
    )


def downgrade() -> None:
    op.drop_table("alert_spool_cursors")

"""release rejections: a Core Ops member stops a rollout before anyone approves it

Revision ID: 3f6a1c9d2b17
Revises: 3f1c9a7e2b64
Create Date: 2026-12-04 15:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6a1c9d2b17"
down_revision: str | None = "3f1c9a7e2b64"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rejected_by", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("rejected_by_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("rejected_at")
        batch_op.drop_column("rejected_by_name")
        batch_op.drop_column("rejected_by")

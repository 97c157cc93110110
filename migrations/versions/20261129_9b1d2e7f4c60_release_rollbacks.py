"""release rollbacks

Revision ID: 9b1d2e7f4c60
Revises: 4e1f0c2b7a93
Create Date: 2026-11-29 09:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b1d2e7f4c60"
down_revision: str | None = "4e1f0c2b7a93"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rolled_back_from", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("rolled_back_from")

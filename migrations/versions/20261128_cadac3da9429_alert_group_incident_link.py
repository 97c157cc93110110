"""alert group incident link

Revision ID: cadac3da9429
Revises: a487e6016aca
Create Date: 2026-11-28 07:13:02.639236+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "cadac3da9429"
down_revision: str | None = "a487e6016aca"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_ref", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_groups", schema=None) as batch_op:
        batch_op.drop_column("incident_ref")

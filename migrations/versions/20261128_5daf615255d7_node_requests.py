"""node requests: ids never reused, where each request's approval message is

Revision ID: 5daf615255d7
Revises: 05df2abfb63b
Create Date: 2026-11-28 15:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5daf615255d7"
down_revision: str | None = "05df2abfb63b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A re-registration replaces its row, so a request id must never come back: SQLite reuses
    # the largest rowid after a delete unless the table says AUTOINCREMENT (a full copy there;
    # PostgreSQL's sequence never reuses a value, so an in-place ALTER is enough).
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "health_nodes",
        schema=None,
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True} if sqlite else {},
    ) as batch_op:
        batch_op.add_column(sa.Column("approval_channel_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("approval_message_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("health_nodes", schema=None) as batch_op:
        batch_op.drop_column("approval_message_id")
        batch_op.drop_column("approval_channel_id")

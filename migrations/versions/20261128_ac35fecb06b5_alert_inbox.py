"""alert notifications are the webhook inbox

The webhook now answers once the body is stored; the group is updated from it afterwards.
Rows stored before this revision were processed when they arrived.

Revision ID: ac35fecb06b5
Revises: 73027127a289
Create Date: 2026-11-28 08:11:15.260460+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ac35fecb06b5"
down_revision: str | None = "73027127a289"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_alert_notifications_processed_at", ["processed_at"], unique=False)
    op.execute("UPDATE alert_notifications SET processed_at = received_at")


def downgrade() -> None:
    # Bodies still waiting are processed by the old code only if it stored them itself: keep
    # them out of the way rather than pretend they were applied.
    op.execute("DELETE FROM alert_notifications WHERE processed_at IS NULL")
    with op.batch_alter_table("alert_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_notifications_processed_at")
        batch_op.drop_column("processed_at")

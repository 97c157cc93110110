"""audit chain head: last row id, row count, HMAC key marker

Revision ID: 05df2abfb63b
Revises: 9b1d2e7f4c60
Create Date: 2026-12-04 10:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "05df2abfb63b"
down_revision: str | None = "9b1d2e7f4c60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64


def upgrade() -> None:
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("row_count", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("keyed_from", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("key_check", sa.String(length=64), nullable=True))
    _head_from_existing_rows()
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.alter_column("last_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("row_count", existing_type=sa.BigInteger(), nullable=False)


def _head_from_existing_rows() -> None:
    """A chain written before this revision gets its count and last row from the log as it is
    now (its stored hash is kept: `audit verify` compares it with the last row's)."""
    bind = op.get_bind()
    audit = sa.table("audit_log", sa.column("id", sa.BigInteger), sa.column("hash", sa.String))
    head = sa.table(
        "audit_chain_head",
        sa.column("id", sa.Integer),
        sa.column("last_hash", sa.String),
        sa.column("last_id", sa.BigInteger),
        sa.column("row_count", sa.BigInteger),
    )
    count, last_id = bind.execute(sa.select(sa.func.count(), sa.func.max(audit.c.id))).one()
    last_id = last_id or 0
    if bind.execute(sa.select(head.c.id).where(head.c.id == 1)).first() is None:
        last_hash = (
            bind.execute(sa.select(audit.c.hash).where(audit.c.id == last_id)).scalar() or GENESIS
        )
        bind.execute(head.insert().values(id=1, last_hash=last_hash))
    bind.execute(head.update().where(head.c.id == 1).values(last_id=last_id, row_count=count))


def downgrade() -> None:
    with op.batch_alter_table("audit_chain_head", schema=None) as batch_op:
        batch_op.drop_column("key_check")
        batch_op.drop_column("keyed_from")
        batch_op.drop_column("row_count")
        batch_op.drop_column("last_id")

"""access control and audit hash chain

Revision ID: 1510eef4d782
Revises: 6c5c3a55c5c7
Create Date: 2026-11-28 05:59:14.784827+00:00
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC

import sqlalchemy as sa
from alembic import op

revision: str = "1510eef4d782"
down_revision: str | None = "6c5c3a55c5c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_drift",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("member_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_drift")),
    )
    with op.batch_alter_table("access_drift", schema=None) as batch_op:
        batch_op.create_index("ix_access_drift_member_id_role", ["member_id", "role"], unique=False)

    op.create_table(
        "access_lockouts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by_name", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_lockouts")),
    )
    with op.batch_alter_table("access_lockouts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_access_lockouts_member_id_until", ["member_id", "until"], unique=False
        )

    op.create_table(
        "access_reviews",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_by_name", sa.String(length=100), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_reviews")),
    )
    op.create_table(
        "access_strikes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_strikes")),
    )
    with op.batch_alter_table("access_strikes", schema=None) as batch_op:
        batch_op.create_index("ix_access_strikes_member_id_at", ["member_id", "at"], unique=False)

    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain_head")),
    )
    op.create_table(
        "grants",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("member_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("granted_by_id", sa.BigInteger(), nullable=True),
        sa.Column("granted_by_name", sa.String(length=100), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by_id", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by_name", sa.String(length=100), nullable=True),
        sa.Column("end_reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
    )
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index(
            "ix_grants_member_id_role_status", ["member_id", "role", "status"], unique=False
        )
        batch_op.create_index("ix_grants_status_expires_at", ["status", "expires_at"], unique=False)

    op.create_table(
        "access_review_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "review_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("grant_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("member_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by_name", sa.String(length=100), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["grant_id"], ["grants.id"], name=op.f("fk_access_review_items_grant_id_grants")
        ),
        sa.ForeignKeyConstraint(
            ["review_id"],
            ["access_reviews.id"],
            name=op.f("fk_access_review_items_review_id_access_reviews"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_review_items")),
    )
    with op.batch_alter_table("access_review_items", schema=None) as batch_op:
        batch_op.create_index("ix_access_review_items_review_id", ["review_id"], unique=False)

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("prev_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("hash", existing_type=sa.String(length=64), nullable=False)


GENESIS = "0" * 64


def _canonical(row: sa.Row[tuple[object, ...]]) -> str:
    """Frozen copy of bot.domain.audit.canonical as of this revision."""
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
    content = {
        "at": at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": row.actor_id,
        "actor_name": row.actor_name,
        "action": row.action,
        "target": row.target,
        "outcome": row.outcome,
        "details": details,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _chain_existing_rows() -> None:
    """Rows written before the chain existed are chained now, in id order."""
    bind = op.get_bind()
    audit = sa.table(
        "audit_log",
        sa.column("id", sa.BigInteger),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor_id", sa.BigInteger),
        sa.column("actor_name", sa.String),
        sa.column("action", sa.String),
        sa.column("target", sa.String),
        sa.column("outcome", sa.String),
        sa.column("details", sa.JSON),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    prev = GENESIS
    for row in bind.execute(sa.select(audit).order_by(audit.c.id)).all():
        digest = hashlib.sha256((prev + _canonical(row)).encode("utf-8")).hexdigest()
        bind.execute(audit.update().where(audit.c.id == row.id).values(prev_hash=prev, hash=digest))
        prev = digest
    head = sa.table("audit_chain_head", sa.column("id", sa.Integer), sa.column("last_hash"))
    bind.execute(head.insert().values(id=1, last_hash=prev))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")

    with op.batch_alter_table("access_review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_access_review_items_review_id")

    op.drop_table("access_review_items")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index("ix_grants_status_expires_at")
        batch_op.drop_index("ix_grants_member_id_role_status")

    op.drop_table("grants")
    op.drop_table("audit_chain_head")
    with op.batch_alter_table("access_strikes", schema=None) as batch_op:
        batch_op.drop_index("ix_access_strikes_member_id_at")

    op.drop_table("access_strikes")
    op.drop_table("access_reviews")
    with op.batch_alter_table("access_lockouts", schema=None) as batch_op:
        batch_op.drop_index("ix_access_lockouts_member_id_until")

    op.drop_table("access_lockouts")
    with op.batch_alter_table("access_drift", schema=None) as batch_op:
        batch_op.drop_index("ix_access_drift_member_id_role")

    op.drop_table("access_drift")

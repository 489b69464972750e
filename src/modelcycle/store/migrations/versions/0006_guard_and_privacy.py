"""guard and privacy: named guard policies, per-key deployment allowlists and rotation, raw-text storage switch

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 04:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "guard_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_guard_policies_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_guard_policies")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_guard_policies_project_id")),
    )
    with op.batch_alter_table("guard_policies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guard_policies_project_id"), ["project_id"], unique=False
        )

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deployments", _JSON, nullable=True))
        batch_op.add_column(sa.Column("rotated_from", sa.Integer(), nullable=True))

    with op.batch_alter_table("monitor_policies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("store_raw_text", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("monitor_policies", schema=None) as batch_op:
        batch_op.drop_column("store_raw_text")

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("rotated_from")
        batch_op.drop_column("deployments")

    with op.batch_alter_table("guard_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_guard_policies_project_id"))

    op.drop_table("guard_policies")

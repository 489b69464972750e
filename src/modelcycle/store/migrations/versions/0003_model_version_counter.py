"""models.last_version: version numbers are never reused after a delete

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch_op:
        batch_op.add_column(
            sa.Column("last_version", sa.Integer(), nullable=False, server_default="0")
        )
    # Existing models continue after their highest version still stored.
    op.execute(
        "UPDATE models SET last_version = COALESCE("
        "(SELECT MAX(version) FROM model_versions WHERE model_versions.model_id = models.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("models") as batch_op:
        batch_op.drop_column("last_version")

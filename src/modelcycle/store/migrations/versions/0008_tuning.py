"""tuning: uploaded files, tuning jobs and their checkpoints

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_files_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
        sa.UniqueConstraint("file_id", name=op.f("uq_files_file_id")),
    )
    op.create_index("ix_files_project_created", "files", ["project_id", "created_at"], unique=False)

    op.create_table(
        "tune_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("base", sa.String(length=200), nullable=False),
        sa.Column("base_version_id", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("validation_dataset_version_id", sa.Integer(), nullable=True),
        sa.Column("training_file_id", sa.String(length=40), nullable=True),
        sa.Column("validation_file_id", sa.String(length=40), nullable=True),
        sa.Column("hyperparameters", _JSON, nullable=False),
        sa.Column("eval_datasets", _JSON, nullable=False),
        sa.Column("suffix", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result_model", sa.String(length=128), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.Column("artifacts", _JSON, nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("trained_tokens", sa.Integer(), nullable=True),
        sa.Column("eval_run_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_tune_jobs_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["base_version_id"],
            ["model_versions.id"],
            name=op.f("fk_tune_jobs_base_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_tune_jobs_dataset_version_id_dataset_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["validation_dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_tune_jobs_validation_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tune_jobs")),
        sa.UniqueConstraint("public_id", name=op.f("uq_tune_jobs_public_id")),
    )
    op.create_index(
        "ix_tune_jobs_project_created", "tune_jobs", ["project_id", "created_at"], unique=False
    )

    op.create_table(
        "tune_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tune_job_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("metrics", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tune_job_id"],
            ["tune_jobs.id"],
            name=op.f("fk_tune_checkpoints_tune_job_id_tune_jobs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tune_checkpoints")),
    )
    op.create_index(
        op.f("ix_tune_checkpoints_tune_job_id"), "tune_checkpoints", ["tune_job_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tune_checkpoints_tune_job_id"), table_name="tune_checkpoints")
    op.drop_table("tune_checkpoints")
    op.drop_index("ix_tune_jobs_project_created", table_name="tune_jobs")
    op.drop_table("tune_jobs")
    op.drop_index("ix_files_project_created", table_name="files")
    op.drop_table("files")

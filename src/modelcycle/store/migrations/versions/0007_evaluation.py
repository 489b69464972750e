"""evaluation: datasets and versions, eval runs and results, online evaluation

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _stamp(name: str) -> list[sa.Column[object]]:
    return [
        sa.Column(f"{name}_by", sa.String(length=100), nullable=False),
        sa.Column(f"{name}_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        *_stamp("created"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_datasets_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_datasets_project_id")),
    )
    op.create_index(op.f("ix_datasets_project_id"), "datasets", ["project_id"], unique=False)

    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("parent_version_id", sa.Integer(), nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        *_stamp("created"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name=op.f("fk_dataset_versions_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint("dataset_id", "version", name=op.f("uq_dataset_versions_dataset_id")),
    )
    op.create_index(
        op.f("ix_dataset_versions_dataset_id"), "dataset_versions", ["dataset_id"], unique=False
    )

    op.create_table(
        "dataset_samples",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("input", _JSON, nullable=False),
        sa.Column("expected", sa.Text(), nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_dataset_samples_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_samples")),
        sa.UniqueConstraint("version_id", "position", name=op.f("uq_dataset_samples_version_id")),
    )
    op.create_index(
        op.f("ix_dataset_samples_version_id"), "dataset_samples", ["version_id"], unique=False
    )

    op.create_table(
        "eval_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dataset_version_id", sa.Integer(), nullable=False),
        sa.Column("targets", _JSON, nullable=False),
        sa.Column("baseline", sa.String(length=200), nullable=True),
        sa.Column("scorers", _JSON, nullable=False),
        sa.Column("gates", _JSON, nullable=False),
        sa.Column("params", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("summary", _JSON, nullable=True),
        sa.Column("gates_passed", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("key_id", sa.Integer(), nullable=True),
        *_stamp("created"),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_eval_runs_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["dataset_versions.id"],
            name=op.f("fk_eval_runs_dataset_version_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
    )
    op.create_index(
        "ix_eval_runs_project_created", "eval_runs", ["project_id", "created_at"], unique=False
    )

    op.create_table(
        "eval_results",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trace_id", sa.String(length=32), nullable=True),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("scores", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["eval_runs.id"], name=op.f("fk_eval_results_run_id_eval_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_results")),
        sa.UniqueConstraint("run_id", "sample_id", "target", name=op.f("uq_eval_results_run_id")),
    )
    op.create_index(op.f("ix_eval_results_run_id"), "eval_results", ["run_id"], unique=False)

    op.create_table(
        "online_eval_configs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("deployment", sa.String(length=64), nullable=False),
        sa.Column("sample_rate", sa.Float(), nullable=False),
        sa.Column("scorers", _JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cursor", _JSON, nullable=True),
        *_stamp("created"),
        *_stamp("updated"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_online_eval_configs_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_online_eval_configs")),
        sa.UniqueConstraint(
            "project_id", "deployment", name=op.f("uq_online_eval_configs_project_id")
        ),
    )
    op.create_index(
        op.f("ix_online_eval_configs_project_id"),
        "online_eval_configs",
        ["project_id"],
        unique=False,
    )

    op.create_table(
        "online_scores",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("deployment", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("scorer", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trace_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_online_scores_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_online_scores")),
        sa.UniqueConstraint("trace_id", "scorer", name=op.f("uq_online_scores_trace_id")),
    )
    op.create_index(
        "ix_online_scores_project_deployment_start",
        "online_scores",
        ["project_id", "deployment", "trace_start"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_online_scores_project_deployment_start", table_name="online_scores")
    op.drop_table("online_scores")
    op.drop_index(op.f("ix_online_eval_configs_project_id"), table_name="online_eval_configs")
    op.drop_table("online_eval_configs")
    op.drop_index(op.f("ix_eval_results_run_id"), table_name="eval_results")
    op.drop_table("eval_results")
    op.drop_index("ix_eval_runs_project_created", table_name="eval_runs")
    op.drop_table("eval_runs")
    op.drop_index(op.f("ix_dataset_samples_version_id"), table_name="dataset_samples")
    op.drop_table("dataset_samples")
    op.drop_index(op.f("ix_dataset_versions_dataset_id"), table_name="dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_index(op.f("ix_datasets_project_id"), table_name="datasets")
    op.drop_table("datasets")

"""Glossary proposals: metric and trait definitions proposed and reviewed in the web app.

Revision ID: 0003_glossary_proposals
Revises: 0002_jobs
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_glossary_proposals"
down_revision = "0002_jobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "glossary_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("yaml_text", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("written_to", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_glossary_proposals")),
    )
    op.create_index("ix_glossary_proposals_status", "glossary_proposals", ["status", "id"],
                    unique=False)
    op.create_table(
        "glossary_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["proposal_id"], ["glossary_proposals.id"],
                                name=op.f("fk_glossary_comments_proposal_id_glossary_proposals")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_glossary_comments")),
    )
    op.create_index("ix_glossary_comments_proposal_id", "glossary_comments", ["proposal_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_glossary_comments_proposal_id", table_name="glossary_comments")
    op.drop_table("glossary_comments")
    op.drop_index("ix_glossary_proposals_status", table_name="glossary_proposals")
    op.drop_table("glossary_proposals")

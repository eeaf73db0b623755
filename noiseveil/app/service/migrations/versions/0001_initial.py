"""The first schema: API tokens and stored ciphertexts.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_tokens_token_hash", "tokens", ["token_hash"], unique=True)
    op.create_table(
        "images",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(128), nullable=False),
        sa.Column("scheme", sa.String(32), nullable=False),
        sa.Column("label", sa.Integer, nullable=False),
        sa.Column("class_name", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.Integer, sa.ForeignKey("tokens.id"), nullable=False),
    )
    op.create_index("ix_images_sha256", "images", ["sha256"], unique=True)
    op.create_index("ix_images_model_id", "images", ["model_id"])
    op.create_index("ix_images_label", "images", ["label"])
    op.create_index("ix_images_uploaded_at", "images", ["uploaded_at"])


def downgrade() -> None:
    op.drop_table("images")
    op.drop_table("tokens")

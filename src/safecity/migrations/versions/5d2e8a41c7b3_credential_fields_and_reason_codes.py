"""accident parties: holder name and per-field sources (fields filled from e-certificates);
e-certificates: published revocation reason codes

Revision ID: 5d2e8a41c7b3
Revises: 1c652ac5452e
Create Date: 2026-11-26 12:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5d2e8a41c7b3"
down_revision: str | None = "1c652ac5452e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("accident_parties", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("holder_name", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("field_sources", sa.JSON(), nullable=False, server_default="{}")
        )
    for table in ("eservice_certificates", "eservice_certificate_actions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("reason_code", sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table in ("eservice_certificate_actions", "eservice_certificates"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("reason_code")
    with op.batch_alter_table("accident_parties", schema=None) as batch_op:
        batch_op.drop_column("field_sources")
        batch_op.drop_column("holder_name")

"""conversation owners

Every conversation gets an owner: the SHA-256 of the API key that created it, or "local" on a
server without keys (``store.owner_of``). Conversations stored before this revision are given
the owner the store was opened with (``Store(legacy_owner=...)``): the first ``--server-key``
when keys are configured, else "local".

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    legacy = context.config.attributes.get("legacy_owner", "local")
    with op.batch_alter_table("conversations") as b:
        b.add_column(sa.Column("owner", sa.String(64), nullable=True))
    conversations = sa.table("conversations", sa.column("owner", sa.String(64)))
    op.execute(conversations.update().where(conversations.c.owner.is_(None)).values(owner=legacy))
    with op.batch_alter_table("conversations") as b:
        b.alter_column("owner", existing_type=sa.String(64), nullable=False)
        b.create_index("ix_conversations_owner", ["owner"])


def downgrade() -> None:
    with op.batch_alter_table("conversations") as b:
        b.drop_index("ix_conversations_owner")
        b.drop_column("owner")

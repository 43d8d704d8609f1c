"""dead letters: consumed events parked after their last delivery

Revision ID: a9e5d3b7c118
Revises: 5d2e0c7a91b4
Create Date: 2026-12-02 08:10:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import shared.db


revision: str = 'a9e5d3b7c118'
down_revision: Union[str, None] = '5d2e0c7a91b4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('dead_letter',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('consumer', sa.String(length=100), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('stream_seq', sa.BigInteger(), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=True),
    sa.Column('headers', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('parked_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('replayed_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('replay_outcome', sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letter')),
    sa.UniqueConstraint('consumer', 'stream_seq', name='uq_dead_letter_consumer_stream_seq')
    )
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.create_index('ix_dead_letter_parked_at', ['parked_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dead_letter', schema=None) as batch_op:
        batch_op.drop_index('ix_dead_letter_parked_at')
    op.drop_table('dead_letter')

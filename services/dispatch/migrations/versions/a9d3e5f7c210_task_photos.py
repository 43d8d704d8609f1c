"""task photos: evidence photos (clean copy and thumbnail) stored in dispatch's database

Revision ID: a9d3e5f7c210
Revises: cb2c421538db
Create Date: 2026-12-02 12:50:00.000000
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import shared.db


revision: str = 'a9d3e5f7c210'
down_revision: Union[str, None] = 'cb2c421538db'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('task_photo',
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('thumbnail', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('attached_at', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('uploaded_by', sa.String(), nullable=False),
    sa.Column('attached_action', sa.String(length=32), nullable=True),
    sa.Column('attached_milestone', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_photo')),
    sa.UniqueConstraint('task_id', 'sha256', name=op.f('uq_task_photo_task_id'))
    )
    with op.batch_alter_table('task_photo', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_photo_task_id'), ['task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_task_photo_uploaded_at'), ['uploaded_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('task_photo', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_photo_uploaded_at'))
        batch_op.drop_index(batch_op.f('ix_task_photo_task_id'))
    op.drop_table('task_photo')

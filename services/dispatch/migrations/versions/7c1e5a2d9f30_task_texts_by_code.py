"""task texts by code: model version and name, key points, milestones and measures as coded bilingual lines

Revision ID: 7c1e5a2d9f30
Revises: 3aaab8ea9c7c
Create Date: 2026-12-01 09:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from shared.texts import legacy_lines, legacy_milestone

revision: str = '7c1e5a2d9f30'
down_revision: Union[str, None] = '3aaab8ea9c7c'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TASKS = sa.table('task_order', sa.column('id', sa.String), sa.column('key_points', sa.JSON),
                 sa.column('milestones', sa.JSON), sa.column('measures', sa.JSON))


def upgrade() -> None:
    with op.batch_alter_table('task_order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('model_name', sa.JSON(), nullable=True))
    # orders issued before codes: English strings and milestones by name become coded lines with both texts
    bind = op.get_bind()
    rows = bind.execute(sa.select(TASKS.c.id, TASKS.c.key_points, TASKS.c.milestones, TASKS.c.measures)).all()
    for task_id, key_points, milestones, measures in rows:
        new = {"key_points": legacy_lines(list(key_points or []), "k"),
               "measures": legacy_lines(list(measures or []), "m"),
               "milestones": [legacy_milestone(m) for m in milestones or []]}
        if new != {"key_points": key_points, "measures": measures, "milestones": milestones}:
            bind.execute(TASKS.update().where(TASKS.c.id == task_id).values(**new))


def downgrade() -> None:
    with op.batch_alter_table('task_order', schema=None) as batch_op:
        batch_op.drop_column('model_name')
        batch_op.drop_column('model_version')

"""change stamps for replica catch-up: a commit clock and a `seq` on every table replicas mirror

Rows that exist already get seq 0: a replica loads everything at start, so they need no stamp.

Revision ID: 9b5449b7695e
Revises: d51519cc3af1
Create Date: 2026-11-26 10:19:14.722242
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '9b5449b7695e'
down_revision: Union[str, None] = 'd51519cc3af1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


MIRRORED = ("hazard_point", "model_revision", "road_section", "traced_incident")


def upgrade() -> None:
    clock = op.create_table('change_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_clock'))
    )
    op.bulk_insert(clock, [{"id": 1, "n": 0}])
    for table in MIRRORED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=False, server_default="0"))
            batch_op.create_index(batch_op.f(f'ix_{table}_seq'), ['seq'], unique=False)


def downgrade() -> None:
    for table in reversed(MIRRORED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_seq'))
            batch_op.drop_column('seq')
    op.drop_table('change_clock')

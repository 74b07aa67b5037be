"""harvest_runs.n_read: posts the platform returned, which is what X bills

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('harvest_runs') as batch:
        batch.add_column(sa.Column('n_read', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('harvest_runs') as batch:
        batch.drop_column('n_read')

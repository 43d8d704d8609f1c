"""Alembic environment of the gateway's accounts and audit tables (run on start or by `jiaozhi accounts`)."""
from gateway.models import metadata
from shared.migrations import run_env

run_env(metadata)

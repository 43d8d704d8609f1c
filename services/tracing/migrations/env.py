"""Alembic environment of the tracing service (run through `jiaozhi migrate` or on start)."""
from services.tracing.models import metadata
from shared.migrations import run_env

run_env(metadata)

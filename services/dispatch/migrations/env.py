"""Alembic environment of the dispatch service (run through `jiaozhi migrate` or on start)."""
from services.dispatch.models import metadata
from shared.migrations import run_env

run_env(metadata)

"""Alembic environment of the classification service (run through `jiaozhi migrate` or on start)."""
from services.classification.models import metadata
from shared.migrations import run_env

run_env(metadata)

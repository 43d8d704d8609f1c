"""Alembic environment of the assessment service (run through `jiaozhi migrate` or on start)."""
from services.assessment.models import metadata
from shared.migrations import run_env

run_env(metadata)

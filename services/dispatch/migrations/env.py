"""Alembic environment of the dispatch service (run through `jiaozhi migrate` or on start)."""
import services.dispatch.webhook_models  # noqa: F401  (its tables live in the same metadata)
from services.dispatch.models import metadata
from shared.migrations import run_env

run_env(metadata)

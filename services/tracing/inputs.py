"""What tracing accepts at its door beyond the schemas' types: text and numbers every database can store.

PostgreSQL refuses NUL characters in text and NaN/Infinity in JSON; neither database stores an integer past 64
bits (PostgreSQL's INTEGER stops at 2^31-1). Such input is refused as 422 here instead of failing as a 500 at
commit time.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from shared.inputs import check_storable

#: the largest count (violations, residents…) a registry record may carry: well inside a 32-bit INTEGER column
MAX_COUNT = 100_000_000
#: how deep a JSON value may nest (geometry, parameters, examples)
MAX_DEPTH = 32


class StrictIn(BaseModel):
    """Base of tracing's request bodies: unknown fields, NaN/Infinity, NUL and unpaired surrogates refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_storable(data, max_depth=MAX_DEPTH, max_int=2**53)
        return data

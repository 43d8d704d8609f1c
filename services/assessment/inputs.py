"""What assessment accepts at its door beyond the schemas' types: text, numbers and dates it can store and score.

PostgreSQL refuses NUL characters in text and NaN/Infinity in JSON; a non-finite number makes scores unshowable;
a date centuries away makes month-by-month work (dirty months, periods) explode. Such input is a 422 here.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.inputs import check_storable

#: the years a record, a history month or a period may fall in
MIN_YEAR, MAX_YEAR = 1900, 2199
#: a month label in those years
MONTH = r"^(19\d{2}|2[01]\d{2})-(0[1-9]|1[0-2])$"
#: a unit id as records name it: any text without control characters (they break reports' worksheets)
UNIT_ID = r"^[^\x00-\x1f\x7f]+$"
#: the largest measured amount a record or a history month may carry
MAX_AMOUNT = 1e9
Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False)]
MAX_DEPTH = 16


class StrictIn(BaseModel):
    """Base of assessment's request bodies: NaN/Infinity, NUL and unpaired surrogates refused."""

    model_config = ConfigDict(allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_storable(data, max_depth=MAX_DEPTH)
        return data

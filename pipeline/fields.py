"""The validated building blocks every section of an experiment file shares (``config``,
``claims``): a frozen model that refuses unknown keys and non-finite numbers, and a number that
also accepts YAML's numeric strings.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict


class Frozen(BaseModel):
    # allow_inf_nan: nan, inf and YAML's .inf are refused wherever a number is accepted
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


def _number(value: object) -> object:
    """Floats accept numbers and numeric strings (YAML reads ``3e-3`` as a string), not booleans."""
    if isinstance(value, bool):
        raise ValueError("input should be a number, not a boolean")
    return value


Number = Annotated[float, BeforeValidator(_number)]

"""A call without parameters skips pydantic only where validating ``{}`` would give ``{}``."""

from __future__ import annotations

from typing import Any

import pytest
from modelyard.api import _validate_params
from modelyard.errors import BadRequestError
from modelyard.operations import OPERATIONS
from modelyard.types import ChatParams, TextParams
from pydantic import BaseModel, ValidationError, model_validator

SCHEMAS = [ChatParams, TextParams, *dict.fromkeys(op.request for op in OPERATIONS.values() if op.request is not None)]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_no_parameters_give_what_validation_gives(schema: type[BaseModel]) -> None:
    try:
        expected = schema.model_validate({}).model_dump(exclude_unset=True)
    except ValidationError:
        with pytest.raises(BadRequestError):  # a required field is still named
            _validate_params({}, schema)
    else:
        assert _validate_params({}, schema) == expected


def test_a_model_validator_still_runs_on_no_parameters() -> None:
    class NeedsOne(BaseModel):
        a: int | None = None
        b: int | None = None

        @model_validator(mode="after")
        def one_of(self) -> Any:
            if self.a is None and self.b is None:
                raise ValueError("give a or b")
            return self

    with pytest.raises(BadRequestError, match="give a or b"):
        _validate_params({}, NeedsOne)
    assert _validate_params({"a": 1}, NeedsOne) == {"a": 1}

"""Request validation errors phrased as OpenAI phrases them, naming the param."""

from __future__ import annotations

from typing import Any

import pytest

from respgate.protocol.errors import InvalidRequest
from respgate.protocol.request import CreateResponse
from respgate.protocol.validation import parse_model


def _error(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_model(CreateResponse, {"model": "m", **body})
    return caught.value


@pytest.mark.parametrize(
    ("body", "message", "param", "code"),
    [
        (
            {"temperature": 3},
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.",
            "temperature",
            "decimal_above_max_value",
        ),
        (
            {"max_output_tokens": 5},
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got 5 instead.",
            "max_output_tokens",
            "integer_below_min_value",
        ),
        ({"bogus": 1}, "Unknown parameter: 'bogus'.", "bogus", "unknown_parameter"),
        (
            {"temperature": "hot"},
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
            "temperature",
            "invalid_type",
        ),
        (
            {"text": {"format": {"type": "yaml"}}},
            "Invalid value: 'yaml'. Supported values are: 'text', 'json_object', 'json_schema'.",
            "text.format.type",
            "invalid_value",
        ),
        ({"tools": [{"type": "function", "name": "has space"}]}, None, "tools[0].name", "invalid_value"),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f"}]},
            "Missing required parameter: 'input[0].arguments'.",
            "input[0].arguments",
            "missing_required_parameter",
        ),
        ({"metadata": {str(i): "v" for i in range(17)}}, None, "metadata", "invalid_value"),
    ],
)
def test_errors_name_the_param(body: dict[str, Any], message: str | None, param: str, code: str) -> None:
    error = _error(body)
    assert (error.param, error.code) == (param, code)
    if message is not None:
        assert error.message == message
    assert error.body()["error"]["type"] == "invalid_request_error"


def test_missing_model() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_model(CreateResponse, {"input": "hi"})
    assert caught.value.message == "Missing required parameter: 'model'."

"""Unit tests of external_api.specs: the one way a callable becomes a contract."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from external_api.errors import InvalidParams
from external_api.specs import FunctionSpec, field_errors_from_validation


def chart(
    symbol: str,
    interval: Literal["1d", "1wk"] = "1d",
    limit: Annotated[int, Field(ge=1, le=100)] = 10,
    since: dt.date | None = None,
) -> dict[str, Any]:
    """Fetch a price chart.

    Bars come back oldest first.

    Args:
        symbol: Ticker symbol, e.g. AAPL.
        interval: Bar size.
        limit: Most bars to return.
        since: First day wanted.
    """
    return {}


async def ping(self: object, *args: Any, **kwargs: Any) -> str:
    """Answer pong."""
    return "pong"


def test_spec_from_signature_and_docstring() -> None:
    spec = FunctionSpec.from_callable(chart, name="Yahoo/chart")
    assert spec.name == "Yahoo/chart"
    assert spec.description == "Fetch a price chart.\n\nBars come back oldest first."
    assert spec.is_async is False
    schema = spec.parameters_schema()
    assert schema["type"] == "object"
    assert schema["required"] == ["symbol"]
    assert schema["additionalProperties"] is False
    assert "title" not in schema
    props = schema["properties"]
    assert props["symbol"] == {"type": "string", "description": "Ticker symbol, e.g. AAPL."}
    assert props["interval"]["enum"] == ["1d", "1wk"]
    assert props["limit"]["maximum"] == 100
    assert props["since"]["anyOf"][0] == {"type": "string", "format": "date"}
    assert spec.arguments_model.__name__ == "YahooChartArguments"


def test_async_and_skipped_parameters() -> None:
    spec = FunctionSpec.from_callable(ping)
    assert spec.name == "ping"
    assert spec.is_async is True
    assert spec.parameters_schema()["properties"] == {}
    assert spec.validate(None) == {}


def test_missing_annotation_is_a_type_error() -> None:
    def untyped(x, y: int) -> int:  # type: ignore[no-untyped-def]  # the defect under test
        return y

    with pytest.raises(TypeError, match="parameter 'x' needs a type annotation"):
        FunctionSpec.from_callable(untyped)


def test_validate_converts_and_lists_each_field() -> None:
    spec = FunctionSpec.from_callable(chart, name="chart")
    assert spec.validate({"symbol": "AAPL", "since": "2024-01-02"}) == {
        "symbol": "AAPL",
        "interval": "1d",
        "limit": 10,
        "since": dt.date(2024, 1, 2),
    }
    with pytest.raises(InvalidParams) as caught:
        spec.validate({"interval": "1h", "limit": 0, "colour": "red"})
    fields = {item["field"]: item["type"] for item in caught.value.field_errors}
    assert fields == {
        "symbol": "missing",
        "interval": "literal_error",
        "limit": "greater_than_equal",
        "colour": "extra_forbidden",
    }
    assert "workspace functions" in caught.value.message
    assert caught.value.details["fields"] == [dict(item) for item in caught.value.field_errors]


@pytest.mark.parametrize("bad", [[1, 2], "symbol=AAPL", 3])
def test_validate_rejects_non_objects(bad: Any) -> None:
    spec = FunctionSpec.from_callable(chart)
    with pytest.raises(InvalidParams, match="JSON object") as caught:
        spec.validate(bad)
    assert caught.value.field_errors[0]["field"] == "(arguments)"


def test_as_dict_and_openai_tool() -> None:
    spec = FunctionSpec.from_callable(chart, name="YahooFinance/get_stock_chart")
    assert spec.as_dict() == {
        "name": "YahooFinance/get_stock_chart",
        "description": spec.description,
        "parameters": spec.parameters_schema(),
    }
    tool = spec.openai_tool()
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "YahooFinance__get_stock_chart"
    assert tool["function"]["parameters"] == spec.parameters_schema()


def test_field_errors_from_validation_root_location() -> None:
    class Model(BaseModel):
        x: int

    with pytest.raises(ValidationError) as caught:
        Model.model_validate("not a dict")
    [error] = field_errors_from_validation(caught.value)
    assert error["field"] == "(arguments)"
    assert error["type"] == "model_type"

"""The one error hierarchy: every class survives the JSON envelope and pickling."""

from __future__ import annotations

import pickle

import pytest

from external_api import errors
from external_api.errors import (
    ApiError,
    ConfigurationError,
    FieldError,
    InvalidParams,
    Overloaded,
    RateLimited,
    UpstreamError,
    error_from_payload,
)

ALL_CLASSES = [getattr(errors, name) for name in errors.__all__ if name[0].isupper()]
ERROR_CLASSES = [cls for cls in ALL_CLASSES if issubclass(cls, ApiError)]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_round_trips_through_its_envelope(cls: type[ApiError]) -> None:
    error = cls("what happened; what to do")
    rebuilt = error_from_payload(error.to_payload())
    assert type(rebuilt) is cls
    assert rebuilt.message == error.message
    assert rebuilt.status == cls.status
    assert type(pickle.loads(pickle.dumps(error))) is cls  # noqa: S301 - our own bytes


def test_type_names_are_unique_and_statuses_are_http_errors() -> None:
    names = [cls.type_name for cls in ERROR_CLASSES]
    assert len(names) == len(set(names))
    assert all(400 <= cls.status <= 599 for cls in ERROR_CLASSES)


def test_structured_attributes_survive_the_wire() -> None:
    limited = error_from_payload(RateLimited("slow down", retry_after=7.5).to_payload())
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7.5
    overloaded = error_from_payload(Overloaded("busy", retry_after=2).to_payload())
    assert isinstance(overloaded, Overloaded)
    assert overloaded.retry_after == 2
    upstream = error_from_payload(
        UpstreamError("bad gateway", status_code=502, body_excerpt="<html>").to_payload()
    )
    assert isinstance(upstream, UpstreamError)
    assert (upstream.status_code, upstream.body_excerpt) == (502, "<html>")
    invalid = InvalidParams("bad", field_errors=[FieldError("symbol", "Field required", "missing")])
    rebuilt = error_from_payload(invalid.to_payload())
    assert isinstance(rebuilt, InvalidParams)
    assert rebuilt.field_errors == [
        {"field": "symbol", "message": "Field required", "type": "missing"}
    ]


def test_unknown_type_comes_back_as_plain_api_error() -> None:
    rebuilt = error_from_payload({"type": "SomethingNew", "message": "m", "details": {"a": 1}})
    assert type(rebuilt) is ApiError
    assert (rebuilt.message, rebuilt.details) == ("m", {"a": 1})


def test_configuration_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="WORKSPACE_ENV"):
        raise ConfigurationError("set WORKSPACE_ENV to dev, staging or prod")

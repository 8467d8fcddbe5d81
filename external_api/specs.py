"""Function specs: the one place a callable's signature and docstring become a contract.

A :class:`FunctionSpec` is derived from a plain or async callable: its name, its
description (the docstring's summary), a pydantic model of its parameters (types and
defaults from the signature, per-parameter descriptions from the docstring via
docstring-parser), the JSON Schema of that model, and validation of incoming
arguments that raises :class:`~external_api.errors.InvalidParams` listing each field.

Data-source endpoints and functions exposed on the function server both use it, so
an endpoint looks the same to ``ApiClient``, ``GET /functions`` and an LLM tool list.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from external_api.errors import FieldError, InvalidParams

__all__ = ["FunctionSpec", "field_errors_from_validation"]

_SKIPPED_KINDS = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class _Arguments(BaseModel):
    """Base of every generated arguments model: unknown arguments are errors."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)


def field_errors_from_validation(error: ValidationError) -> list[FieldError]:
    """Turn a pydantic ``ValidationError`` into one :class:`FieldError` per bad field."""
    return [
        FieldError(
            field=".".join(str(part) for part in item["loc"]) or "(arguments)",
            message=item["msg"],
            type=item["type"],
        )
        for item in error.errors(include_url=False)
    ]


@dataclass(frozen=True)
class FunctionSpec:
    """The contract of one callable: name, description, parameters and validation.

    Attributes:
        name: The public name, e.g. ``"YahooFinance/get_stock_chart"``.
        description: The docstring's summary (and long description), for humans and LLMs.
        arguments_model: The pydantic model of the parameters (``extra="forbid"``).
        func: The callable itself (sync or async).
        is_async: Whether ``func`` is a coroutine function.
    """

    name: str
    description: str
    arguments_model: type[BaseModel]
    func: Callable[..., Any]
    is_async: bool = field(default=False)

    @classmethod
    def from_callable(
        cls,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        skip: tuple[str, ...] = ("self", "cls"),
    ) -> FunctionSpec:
        """Derive the spec of ``func`` from its signature and Google/NumPy/reST docstring.

        Every parameter needs a type annotation; a missing one raises ``TypeError``
        naming the parameter, so a bad spec fails at registration, not at call time.
        """
        doc = docstring_parser.parse(inspect.getdoc(func) or "")
        param_docs = {param.arg_name: param.description or "" for param in doc.params}
        hints = get_type_hints(func, include_extras=True)
        fields: dict[str, Any] = {}
        for param in inspect.signature(func).parameters.values():
            if param.name in skip or param.kind in _SKIPPED_KINDS:
                continue
            if param.name not in hints:
                raise TypeError(
                    f"{func.__qualname__}: parameter {param.name!r} needs a type annotation "
                    "so that its JSON Schema can be derived."
                )
            default = ... if param.default is inspect.Parameter.empty else param.default
            description = param_docs.get(param.name) or None
            fields[param.name] = (hints[param.name], Field(default, description=description))
        spec_name = name or func.__name__
        model_name = "".join(part.title() for part in spec_name.replace("/", "_").split("_"))
        model = create_model(f"{model_name}Arguments", __base__=_Arguments, **fields)
        description = "\n\n".join(
            part for part in (doc.short_description, doc.long_description) if part
        )
        return cls(
            name=spec_name,
            description=description,
            arguments_model=model,
            func=func,
            is_async=inspect.iscoroutinefunction(func),
        )

    def parameters_schema(self) -> dict[str, Any]:
        """Return the JSON Schema (an ``object`` schema) of the parameters."""
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        schema.setdefault("properties", {})
        schema["additionalProperties"] = False
        return schema

    def validate(self, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ``arguments`` and return them as keyword arguments for ``func``.

        Raises:
            InvalidParams: listing each invalid, missing or unknown field.
        """
        if arguments is not None and not isinstance(arguments, Mapping):
            raise InvalidParams(
                f"{self.name}: arguments must be a JSON object of named parameters, "
                f"not {type(arguments).__name__}.",
                field_errors=[FieldError("(arguments)", "expected an object", "type_error")],
            )
        try:
            model = self.arguments_model.model_validate(dict(arguments or {}))
        except ValidationError as error:
            errors = field_errors_from_validation(error)
            listed = "; ".join(f"{item['field']}: {item['message']}" for item in errors)
            raise InvalidParams(
                f"{self.name}: invalid arguments ({listed}). See its parameters with "
                "`workspace functions` or GET /functions.",
                field_errors=errors,
            ) from None
        return {name: getattr(model, name) for name in type(model).model_fields}

    def as_dict(self) -> dict[str, Any]:
        """Return ``{"name", "description", "parameters"}`` (what ``GET /functions`` lists)."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters_schema(),
        }

    def openai_tool(self) -> dict[str, Any]:
        """Return the spec in the OpenAI tool format (``{"type": "function", "function": ...}``).

        OpenAI function names allow only ``[a-zA-Z0-9_-]``, so ``/`` becomes ``__``.
        """
        return {
            "type": "function",
            "function": {
                "name": self.name.replace("/", "__"),
                "description": self.description,
                "parameters": self.parameters_schema(),
            },
        }

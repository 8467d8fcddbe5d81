"""The function server's OpenAPI 3.1 document, generated from the function specs.

Each function gets its own path ``/functions/{Source}/{endpoint}`` whose request body is
the function's parameters schema. Pydantic puts nested models and enums under
``$defs``; those are hoisted into ``components/schemas`` (prefixed with the function
name, so two functions may both define an ``Interval``) and their ``$ref``s rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from external_api import __version__
from external_api.specs import FunctionSpec

__all__ = ["openapi_document"]

_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "details"],
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        },
        "request_id": {"type": "string"},
    },
}
_EXECUTE_REQUEST = {
    "type": "object",
    "required": ["function_name"],
    "properties": {
        "request_id": {"type": "string"},
        "function_name": {"type": "string"},
        "parameters": {"type": "object"},
        "caller_name": {"type": "string"},
    },
}
_EXECUTE_REPLY = {
    "type": "object",
    "required": ["request_id", "is_error"],
    "properties": {
        "request_id": {"type": "string"},
        "result": {},
        "message": {"type": "string"},
        "is_error": {"type": "boolean"},
        "error": _ENVELOPE["properties"]["error"],  # type: ignore[index]  # literal above
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error_responses(*statuses: int) -> dict[str, Any]:
    return {str(status): _json(_ERROR_REF, "error envelope") for status in statuses}


def _hoist(schema: dict[str, Any], prefix: str, components: dict[str, Any]) -> dict[str, Any]:
    """Move ``$defs`` into ``components`` under ``prefix`` and rewrite the refs."""
    defs = schema.pop("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    f"#/components/schemas/{prefix}.{value.removeprefix('#/$defs/')}"
                    if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/")
                    else rewrite(value)
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    for name, definition in defs.items():
        components[f"{prefix}.{name}"] = rewrite(definition)
    rewritten: dict[str, Any] = rewrite(schema)
    return rewritten


def _operation(spec: FunctionSpec, components: dict[str, Any]) -> dict[str, Any]:
    prefix = re.sub(r"[^A-Za-z0-9._-]", "_", spec.name)
    summary = spec.description.split("\n", 1)[0] if spec.description else spec.name
    return {
        "post": {
            "operationId": prefix,
            "summary": summary,
            "description": spec.description,
            "tags": [spec.name.split("/", 1)[0] if "/" in spec.name else "functions"],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": _hoist(spec.parameters_schema(), prefix, components)
                    }
                },
            },
            "responses": {
                "200": _json({"type": "object", "properties": {"result": {}}}, "the result"),
                **_error_responses(400, 401, 404, 413, 422, 429, 500, 502, 503, 504),
            },
        }
    }


def openapi_document(specs: Iterable[FunctionSpec], *, secured: bool) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document for ``specs``; ``secured`` adds bearer auth."""
    components: dict[str, Any] = {"ErrorEnvelope": _ENVELOPE}
    probe = {"get": {"responses": {"200": {"description": "ok"}}, "security": []}}
    paths: dict[str, Any] = {
        "/livez": probe,
        "/readyz": {
            "get": {
                "responses": {"200": {"description": "ready"}, "503": {"description": "draining"}},
                "security": [],
            }
        },
        "/metrics": {"get": {"responses": {"200": {"description": "Prometheus text format"}}}},
        "/functions": {"get": {"responses": {"200": _json({"type": "object"}, "the specs")}}},
        "/execute": {
            "post": {
                "summary": "Call a function with the workspace protocol.",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _EXECUTE_REQUEST}},
                },
                "responses": {
                    "200": _json(_EXECUTE_REPLY, "the result"),
                    "default": _json(_EXECUTE_REPLY, "the error, with its HTTP status"),
                },
            }
        },
    }
    for spec in specs:
        paths[f"/functions/{spec.name}"] = _operation(spec, components)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "workspace function server", "version": __version__},
        "paths": paths,
        "components": {"schemas": components},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document

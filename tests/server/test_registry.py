"""The function registry: expose, lookup, lazy providers, default registry contents."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterable

import pytest

from external_api.errors import InvalidParams, UnknownEndpoint
from external_api.function_utils import (
    FunctionRegistry,
    RegisteredFunction,
    default_registry,
    expose,
)


def test_expose_plain_and_named() -> None:
    registry = FunctionRegistry()

    @registry.expose
    def double(x: int) -> int:
        """Double x."""
        return 2 * x

    @registry.expose(name="Math/halve")
    async def halve(x: float) -> float:
        """Halve x."""
        return x / 2

    assert double(2) == 4  # the decorator returns the function unchanged
    assert [entry.name for entry in registry.functions()] == ["Math/halve", "double"]
    assert registry.call("double", x=21) == 42
    assert registry.call("Math/halve", x=3) == 1.5
    with pytest.raises(InvalidParams):
        registry.call("double", x="two")
    with pytest.raises(ValueError, match="already registered"):
        registry.expose(name="double")(double)


def test_unknown_name_suggests_close_ones() -> None:
    registry = FunctionRegistry()
    registry.expose(name="Tools/search")(_noop)
    with pytest.raises(UnknownEndpoint, match="Did you mean Tools/search") as caught:
        registry.get("Tools/serch")
    assert caught.value.details == {"name": "Tools/serch", "suggestions": ["Tools/search"]}
    with pytest.raises(UnknownEndpoint) as caught:
        registry.get("zzz")
    assert "Did you mean" not in caught.value.message


def _noop() -> None:
    """Do nothing."""


def test_providers_run_lazily_once_and_failures_are_recorded() -> None:
    registry = FunctionRegistry()
    runs: list[str] = []

    def provider() -> Iterable[RegisteredFunction]:
        runs.append("ran")
        other = FunctionRegistry()
        other.expose(name="Lazy/noop")(_noop)
        return other.functions()

    def broken() -> Iterable[RegisteredFunction]:
        raise ImportError("no module named 'missing_dependency'")

    registry.add_provider("lazy", provider)
    registry.add_provider("broken", broken)
    assert runs == []
    assert asyncio.run(registry.acall("Lazy/noop")) is None
    assert [entry.name for entry in registry.functions()] == ["Lazy/noop"]
    assert runs == ["ran"]
    assert registry.load_errors == {"broken": "ImportError: no module named 'missing_dependency'"}


def test_default_registry_and_module_expose() -> None:
    registry = default_registry()
    assert default_registry() is registry

    @expose(name="Test/registry_module_expose")
    def module_level(flag: bool = False) -> bool:
        """Return the flag."""
        return flag

    assert registry.get("Test/registry_module_expose").spec.func is module_level
    assert registry.call("Test/registry_module_expose", flag=True) is True


def test_import_is_cheap() -> None:
    code = (
        "import sys, external_api.function_utils as f\n"
        "loaded = [m for m in sys.modules if m.startswith(('external_api.data_sources.', "
        "'browser', 'playwright'))]\n"
        "assert not loaded, loaded\n"
        "f.default_registry()\n"
        "assert 'external_api.data_sources.client' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

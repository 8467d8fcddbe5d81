"""workspace-toolkit's client for external data APIs and its function server.

Importing this package is cheap: it loads no data source and opens no connection.
``ApiClient`` and the error types are reached through lazy attributes so that
``import external_api`` stays fast and side-effect free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["ApiClient", "ApiError", "__version__", "get_settings"]

if TYPE_CHECKING:
    from external_api.config import get_settings
    from external_api.data_sources.client import ApiClient
    from external_api.errors import ApiError

_LAZY = {
    "ApiClient": "external_api.data_sources.client",
    "ApiError": "external_api.errors",
    "get_settings": "external_api.config",
}


def __getattr__(name: str) -> Any:
    """Import the public names of ``__all__`` on first access (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'external_api' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

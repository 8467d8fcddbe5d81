"""workspace-toolkit's client for external data APIs and its function server.

Importing this package is cheap: it loads no data source and opens no connection.
``ApiClient`` and the error types are reached through lazy attributes so that
``import external_api`` stays fast and side-effect free.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

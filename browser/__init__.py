"""workspace-toolkit's shared Playwright browser with a JavaScript error-capture extension.

The version is the distribution's single version, defined in ``external_api``.
"""

from __future__ import annotations

from external_api import __version__

__all__ = ["__version__"]

"""workspace-toolkit's shared Playwright browser with a JavaScript error-capture extension.

The version is the distribution's single version, defined in ``external_api``.
"""

from __future__ import annotations

from browser.capture import ErrorRecord
from browser.functions import ascreenshot, avisit, screenshot, visit
from browser.global_browser import GlobalBrowser, get_browser
from browser.settings import BrowserSettings
from external_api import __version__

__all__ = [
    "BrowserSettings",
    "ErrorRecord",
    "GlobalBrowser",
    "__version__",
    "ascreenshot",
    "avisit",
    "get_browser",
    "screenshot",
    "visit",
]

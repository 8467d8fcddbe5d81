"""Settings of the ``browser`` package: the one settings object, read from the environment.

Every variable is ``WORKSPACE_BROWSER_<FIELD>`` (from the environment or a ``.env`` file
in the working directory); keyword arguments win over both. Lists (hosts, schemes,
extra arguments) are comma-separated. Invalid values raise
:class:`~external_api.config.ConfigurationError` naming each variable to fix.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from external_api.config import ConfigurationError

__all__ = ["CHROMIUM_CANDIDATES", "BrowserSettings", "find_chromium", "load_settings"]

ENV_PREFIX = "WORKSPACE_BROWSER_"

CHROMIUM_CANDIDATES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
)
"""Executable names tried on ``PATH``, in order, when no executable is configured."""


def find_chromium() -> Path | None:
    """Return the first Chromium on ``PATH`` (see :data:`CHROMIUM_CANDIDATES`), or ``None``."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


class BrowserSettings(BaseSettings):
    """The effective settings of the shared browser.

    Attributes:
        executable: ``WORKSPACE_BROWSER_EXECUTABLE``: the Chromium to run; default the
            first Chromium found on ``PATH`` (e.g. ``/usr/bin/chromium``).
        headless: ``WORKSPACE_BROWSER_HEADLESS``: run without a window (default true);
            set ``false`` with a ``DISPLAY`` to watch the browser while debugging.
        max_pages: ``WORKSPACE_BROWSER_MAX_PAGES``: pages open at once; more callers wait.
        timeout: ``WORKSPACE_BROWSER_TIMEOUT``: seconds one operation may take, waiting
            for a free page included (also Playwright's default action timeout).
        launch_timeout: ``WORKSPACE_BROWSER_LAUNCH_TIMEOUT``: seconds a launch may take.
        cdp_port: ``WORKSPACE_BROWSER_CDP_PORT``: when set, Chromium also listens for the
            DevTools protocol on ``127.0.0.1:<port>`` so other processes can attach.
        allowed_hosts: ``WORKSPACE_BROWSER_ALLOWED_HOSTS``: when non-empty, the only
            hosts ``visit``/``screenshot`` may open (``*.example.com`` matches subdomains).
        allowed_schemes: ``WORKSPACE_BROWSER_ALLOWED_SCHEMES``: URL schemes they may open
            (default ``http,https``).
        max_errors: ``WORKSPACE_BROWSER_MAX_ERRORS``: error records kept per page (FIFO:
            the oldest are dropped first), in the extension and in results.
        settle: ``WORKSPACE_BROWSER_SETTLE``: seconds ``visit`` waits after the load
            state for late errors (timers, fetches, rejections).
        screenshot_dir: ``WORKSPACE_BROWSER_SCREENSHOT_DIR``: where saved screenshots go.
        extra_args: ``WORKSPACE_BROWSER_EXTRA_ARGS``: more Chromium switches.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
    )

    executable: Path | None = None
    headless: bool = True
    max_pages: int = Field(8, ge=1, le=256)
    timeout: float = Field(30.0, gt=0)
    launch_timeout: float = Field(60.0, gt=0)
    cdp_port: int | None = Field(None, ge=1, le=65535)
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    allowed_schemes: Annotated[tuple[str, ...], NoDecode] = ("http", "https")
    max_errors: int = Field(200, ge=1, le=10_000)
    settle: float = Field(0.25, ge=0, le=30)
    screenshot_dir: Path = Path(tempfile.gettempdir()) / "workspace-screenshots"
    extra_args: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("allowed_hosts", "allowed_schemes", "extra_args", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allowed_hosts", "allowed_schemes", mode="after")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(part.lower() for part in value)

    @field_validator("executable", mode="after")
    @classmethod
    def _check_executable(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        found = shutil.which(str(value))
        if found is None:
            raise ValueError(
                f"{value} is not an executable file; point it at a Chromium binary "
                "(e.g. /usr/bin/chromium) or unset it to use the first Chromium on PATH"
            )
        return Path(found)

    def resolved_executable(self) -> Path | None:
        """Return :attr:`executable`, or the first Chromium on ``PATH`` when it is unset."""
        return self.executable or find_chromium()


def load_settings(**overrides: Any) -> BrowserSettings:
    """Build :class:`BrowserSettings` from the environment, ``.env`` and ``overrides``.

    Raises:
        ConfigurationError: naming each invalid ``WORKSPACE_BROWSER_*`` variable.
    """
    try:
        return BrowserSettings(**overrides)
    except ValidationError as error:
        lines = [
            f"  {ENV_PREFIX}{'.'.join(map(str, item['loc'])).upper()}: "
            + str(item["msg"]).removeprefix("Value error, ")
            for item in error.errors(include_url=False)
        ]
        raise ConfigurationError(
            "invalid browser settings (fix these variables):\n" + "\n".join(lines)
        ) from None
